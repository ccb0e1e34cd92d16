"""Admin API tests (the model registry)."""
