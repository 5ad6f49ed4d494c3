"""The worker function (`main.py` is what functions-framework loads)."""
