"""Who is calling: Firebase / Identity Platform ID tokens or API keys, checked on every non-public
route."""
