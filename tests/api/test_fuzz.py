"""No input gives a 5xx: schema-driven requests with every role's key, on SQLite and on PostgreSQL
(a few thousand here; `make chaos` sends 20,000 to each)."""

from __future__ import annotations

import pytest

from tests.api.conftest import MakeApi
from tests.fuzzing import fuzz_app, role_keys


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_generated_requests_never_get_a_5xx(
    request: pytest.FixtureRequest, make_api: MakeApi, backend: str
) -> None:
    overrides = {"database_url": request.getfixturevalue("fresh_postgres")} if backend == "postgresql" else {}
    overrides["webhook_poll_s"] = 0  # generated webhook URLs name random hosts: deliver nothing
    api = make_api(**overrides)
    counts, failures = fuzz_app(api.app, role_keys(api.services), total=2000)
    assert sum(counts.values()) >= 2000
    assert counts["5xx"] == 0, failures
