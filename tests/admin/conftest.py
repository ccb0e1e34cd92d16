"""The admin tests reuse the embedded-app fixtures of the API tests and the gate's tiny models."""

from tests.api.conftest import api, make_api  # noqa: F401
from tests.models.gate_models import gate_models  # noqa: F401
