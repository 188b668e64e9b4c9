"""Build steps: SIS rows in, CALPADS records out; one module per record type."""
