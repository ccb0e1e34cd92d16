"""The review tests reuse the embedded-app fixtures of the API tests."""

from tests.api.conftest import api, customer, make_api  # noqa: F401
