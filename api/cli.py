"""The `claimlane` command: users and keys, database migrations, and the HTTP server.

    claimlane user add NAME --role customer|adjuster|admin   # prints the new API key (shown once)
    claimlane user list
    claimlane db upgrade
    claimlane serve [--host 127.0.0.1] [--port $PORT or 8000]

Settings come from the environment (CLAIMLANE_*), as for the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from api.settings import Settings


def _settings() -> Settings:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _migrated_sessions(settings: Settings):
    from storage.db import make_engine, make_sessionmaker, migrate

    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    return engine, make_sessionmaker(engine)


def _user_add(args: argparse.Namespace) -> int:
    from api.security import UserExists, create_user

    engine, sessions = _migrated_sessions(_settings())
    try:
        with sessions() as session:
            try:
                user, key = create_user(session, args.name, args.role)
                session.commit()
            except UserExists as exc:
                print(f"claimlane: {exc}", file=sys.stderr)
                return 1
            except ValueError as exc:
                print(f"claimlane: {exc}", file=sys.stderr)
                return 2
            print(key)
            print(
                f"created {user.role} {user.name!r} (id {user.id}); the key above is shown only once, "
                "store it now",
                file=sys.stderr,
            )
    finally:
        engine.dispose()
    return 0


def _user_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from storage.tables import User

    engine, sessions = _migrated_sessions(_settings())
    try:
        with sessions() as session:
            users = session.scalars(select(User).order_by(User.id)).all()
            print(f"{'id':>5}  {'name':<30} {'role':<9} {'key':<16} {'created (UTC)':<20} status")
            for u in users:
                status = "disabled" if u.disabled_at else "active"
                created = u.created_at.strftime("%Y-%m-%d %H:%M:%S") if u.created_at else ""
                print(
                    f"{u.id:>5}  {u.name:<30} {u.role:<9} {'cl_' + u.key_prefix + '_...':<16} {created:<20} {status}"
                )
    finally:
        engine.dispose()
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from storage.db import migrate, normalize_url

    settings = _settings()
    url = settings.resolved_database_url()
    migrate(url)
    print(
        f"database {normalize_url(url).render_as_string(hide_password=True)} is up to date", file=sys.stderr
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=True,
    )
    return 0


def _default_port() -> int:
    try:
        return int(os.environ.get("PORT", "8000"))
    except ValueError:
        return 8000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claimlane", description="ClaimLane: automated parcel-damage claims."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    user = commands.add_parser("user", help="manage API users").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = user.add_parser("add", help="create a user and print its API key (shown once)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["customer", "adjuster", "admin"])
    add.set_defaults(func=_user_add)
    user.add_parser("list", help="list users (no keys)").set_defaults(func=_user_list)

    db = commands.add_parser("db", help="database").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=_db_upgrade)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=_default_port(), help="default: $PORT or 8000")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(func=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from storage.db import is_unavailable

        if is_unavailable(exc):
            print(f"claimlane: database unavailable: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
