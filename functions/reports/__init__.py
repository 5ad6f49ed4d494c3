"""The reports function (`main.py` is what functions-framework loads)."""
