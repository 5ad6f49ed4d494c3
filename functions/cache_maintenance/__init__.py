"""The cache-maintenance function (`main.py` is what functions-framework loads)."""
