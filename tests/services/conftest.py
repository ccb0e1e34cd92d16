"""The service tests use the embedded-app fixtures of the API tests and the tiny models of known
quality of the registry tests."""

from tests.api.conftest import api, customer, make_api  # noqa: F401
from tests.models.gate_models import gate_models  # noqa: F401
