"""HTTP API (FastAPI): one router per audience — claims (mobile app), review (adjusters), admin."""
