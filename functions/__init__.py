"""One folder per deployed function; each `main.py` is a thin adapter over `shared`."""
