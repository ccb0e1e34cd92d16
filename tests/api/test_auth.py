"""API keys, roles, and who may see which claim (other customers get 404, never 403)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from api import cli
from api.security import authenticate, create_user, generate_key, parse_key
from storage.tables import User, utcnow
from tests.api.conftest import NO_SUCH_ID, ApiHarness, assert_error


def test_keys_are_stored_as_prefix_and_sha256_only(api: ApiHarness) -> None:
    with api.services.sessions() as session:
        user, key = create_user(session, "alice", "customer")
        session.commit()
        assert parse_key(key) == user.key_prefix
        assert key.startswith(f"cl_{user.key_prefix}_") and len(key) == 3 + 8 + 1 + 32
        assert user.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in (user.key_hash, user.key_prefix)
        assert authenticate(session, f"Bearer {key}").id == user.id
        assert authenticate(session, f"bearer   {key}  ").id == user.id
        tampered = key[:-1] + ("y" if key.endswith("x") else "x")  # never the key itself
        assert authenticate(session, f"Bearer {tampered}") is None
        assert authenticate(session, key) is None
        assert authenticate(session, None) is None
        with pytest.raises(ValueError):
            create_user(session, "alice", "customer")
        with pytest.raises(ValueError):
            create_user(session, "bob", "superuser")


def test_generated_keys_parse() -> None:
    for _ in range(50):
        key, prefix = generate_key()
        assert parse_key(key) == prefix


def test_no_key_or_a_bad_key_is_401(api: ApiHarness) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer cl_00000000_" + "A" * 32},
    ):
        r = api.client.get("/v1/claims/whatever", headers=headers)
        error = assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
        assert "key" in error["message"]
    r = api.post_claim({"Authorization": "Bearer nope"})
    assert_error(r, 401)
    api.assert_nothing_stored()


def test_a_disabled_user_is_401(api: ApiHarness) -> None:
    headers = api.user()
    with api.services.sessions() as session:
        session.get(User, int(headers["X-Test-User-Id"])).disabled_at = utcnow()
        session.commit()
    assert_error(api.post_claim(headers), 401)


@pytest.mark.parametrize("role", ["adjuster", "admin"])
def test_only_customers_file_claims(api: ApiHarness, role: str) -> None:
    error = assert_error(api.post_claim(api.user(role)), 403, "forbidden")
    assert "customer" in error["message"]
    api.assert_nothing_stored()


def test_another_customer_gets_404_for_the_claim_and_its_photos(api: ApiHarness, customer) -> None:
    r = api.post_claim(customer)
    view = api.client.get(r.json()["url"], headers=customer).json()
    other = api.user()
    assert_error(api.client.get(r.json()["url"], headers=other), 404, "not_found")
    assert_error(api.client.get(view["photos"][0]["url"], headers=other), 404, "not_found")
    # Exactly what an id that does not exist gets: nothing to tell the two apart.
    unknown = api.client.get("/v1/claims/00000000-0000-0000-0000-000000000000", headers=other)
    assert unknown.json() == api.client.get(r.json()["url"], headers=other).json()


def test_cli_user_add_and_list(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CLAIMLANE_DATA_DIR", str(tmp_path / "cli"))
    assert cli.main(["user", "add", "carol", "--role", "adjuster"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert parse_key(key) is not None
    assert "shown only once" in err and key not in err
    assert cli.main(["user", "add", "carol", "--role", "customer"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["user", "list"]) == 0
    listing = capsys.readouterr().out
    assert "carol" in listing and "adjuster" in listing and key not in listing
    assert cli.main(["db", "upgrade"]) == 0
    from storage.db import make_engine, make_sessionmaker

    engine = make_engine(f"sqlite:///{tmp_path / 'cli' / 'claimlane.db'}")
    try:
        with make_sessionmaker(engine)() as session:
            assert authenticate(session, f"Bearer {key}").name == "carol"
            assert session.scalars(select(User.role)).all() == ["adjuster"]
    finally:
        engine.dispose()


def test_cli_disables_enables_and_rotates_keys_and_the_api_follows_at_once(
    make_api, tmp_path, monkeypatch, capsys
) -> None:
    api = make_api()
    monkeypatch.setenv("CLAIMLANE_DATA_DIR", str(api.settings.data_dir))
    assert cli.main(["user", "add", "dora", "--role", "customer"]) == 0
    old = capsys.readouterr().out.strip()
    headers = {"Authorization": f"Bearer {old}"}
    assert api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=headers).status_code == 404  # authenticated

    assert cli.main(["user", "disable", "dora"]) == 0
    assert "disabled" in capsys.readouterr().out
    assert_error(api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=headers), 401)
    assert cli.main(["user", "enable", "dora"]) == 0
    capsys.readouterr()
    assert api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=headers).status_code == 404

    assert cli.main(["user", "rotate-key", "dora"]) == 0
    new = capsys.readouterr().out.strip()
    assert parse_key(new) is not None and new != old
    assert_error(api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=headers), 401)  # the old key: at once
    assert (
        api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers={"Authorization": f"Bearer {new}"}).status_code
        == 404
    )
    assert cli.main(["user", "disable", "nobody"]) == 1
    assert "no user named 'nobody'" in capsys.readouterr().err
