"""Where SIS data comes from: the SIS database over SQL, or a vendor's API (docs/sis-sources.md)."""
