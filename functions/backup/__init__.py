"""The backup function (`main.py` is what functions-framework loads)."""
