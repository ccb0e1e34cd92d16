"""Schema-driven fuzzing (schemathesis strategies from the OpenAPI document), shared by the test
suite (tests/api/test_fuzz.py, a few thousand requests on SQLite and PostgreSQL) and `make chaos`
(20,000 per backend). Every role's key is used, so the requests reach past authorisation."""

from __future__ import annotations

import collections
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

ROLES = ("customer", "adjuster", "admin", "integration", "lead")


def role_keys(services: Any) -> dict[str, str]:
    """A fresh user of every role; their API keys by role."""
    from api.security import create_user

    keys = {}
    with services.sessions() as session:
        for role in ROLES:
            _, keys[role] = create_user(session, f"fuzz-{role}-{uuid.uuid4().hex[:6]}", role)
        session.commit()
    return keys


def fuzz_app(app: FastAPI, keys: dict[str, str], total: int) -> tuple[collections.Counter[str], list[str]]:
    """At least `total` generated requests (every operation x every role, in seeded rounds, so a run
    is repeatable); answers counted by class ("2xx", "4xx", "5xx"), and the first 5xx described."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seed_of

    # From the app's own document, not from_asgi: that starts the app's lifespan (its dispatcher, its
    # webhook deliverer) a second time and never stops it.
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    cases = len(operations) * len(ROLES)
    counts: collections.Counter[str] = collections.Counter()
    failures: list[str] = []

    def run(client: TestClient, operation: Any, role: str, seed: int, per_case: int) -> None:
        headers = {"Authorization": f"Bearer {keys[role]}"}

        @seed_of(seed)
        @settings(
            max_examples=per_case,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(operation.as_strategy())
        def one(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
            kwargs.pop("cookies", None)  # no API operation reads cookies (the console is not in the schema)
            if isinstance(kwargs.get("data"), (bytes, str)):  # a raw body: httpx wants it as content
                kwargs["content"] = kwargs.pop("data")
            response = client.request(**kwargs)
            counts[f"{response.status_code // 100}xx"] += 1
            if response.status_code >= 500 and len(failures) < 5:
                failures.append(f"{operation.label} as {role}: {response.status_code} {response.text[:200]}")

        one()

    with TestClient(app, raise_server_exceptions=False) as client:
        rounds = 0
        while (left := total - sum(counts.values())) > 0 and rounds < 20:
            # Operations with few parameters run out of new cases, so a round may fall short; the
            # next one (another seed) sends what is left.
            per_case = max(1, -(-left // cases))
            for operation in operations:
                for role in ROLES:
                    run(client, operation, role, seed=rounds, per_case=per_case)
            rounds += 1
    return counts, failures
