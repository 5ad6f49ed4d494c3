"""The ingest function (`main.py` is what functions-framework loads)."""
