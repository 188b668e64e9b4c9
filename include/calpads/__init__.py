"""CALPADS extracts from a district's SIS, gated, diffed and published."""

__version__ = "0.1.0"
