"""Publication: caret-delimited files written whole or not at all, manifest last."""
