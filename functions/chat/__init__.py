"""The chat function (`main.py` is what functions-framework loads)."""
