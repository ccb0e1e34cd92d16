"""Fixtures of the registry and promotion tests: tiny models of known quality (see gate_models)."""

from tests.models.gate_models import gate_models  # noqa: F401
