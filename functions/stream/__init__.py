"""The stream function (`main.py` is what functions-framework loads)."""
