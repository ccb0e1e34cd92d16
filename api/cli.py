"""The `claimlane` command: users and keys, database migrations, and the HTTP server.

    claimlane user add NAME --role customer|adjuster|admin|integration   # prints the key (shown once)
    claimlane user list
    claimlane user disable|enable|rotate-key NAME               # rotate-key prints the new key once
    claimlane db upgrade
    claimlane serve [--host 127.0.0.1] [--port $PORT or 8000]

    claimlane model list                                     # versions, aliases, metrics
    claimlane model register DIR [--parent V] [--no-challenger]
    claimlane model promote VERSION [--override-reason TEXT] # prints the gate; exit 1 if refused
    claimlane model rollback --reason TEXT
    claimlane model challenger VERSION [--reason TEXT]
    claimlane model evalset --from MANIFEST [--split test] [--limit N] [--replace]
    claimlane model shadow-report [--challenger V] [--since ISO]
    claimlane model retrain [--quick] [--from champion|imagenet]
    claimlane dataset export --out DIR                       # adjusters' labels as a manifest
    claimlane shipments import FILE [--format csv|jsonl]     # carrier records, all or nothing

Settings come from the environment (CLAIMLANE_*), as for the server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config.runtime import use_metrics_folder
from config.settings import Settings


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


def _user_change(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from api.security import rotate_key, set_disabled

    engine, sessions = _migrated_sessions(_settings())
    try:
        with sessions() as session:
            try:
                if args.change == "rotate-key":
                    user, key = rotate_key(session, args.name)
                    session.commit()
                    print(key)
                    print(f"new key for {user.name!r}; the old key no longer works", file=sys.stderr)
                else:
                    user = set_disabled(session, args.name, args.change == "disable", datetime.now(UTC))
                    session.commit()
                    print(f"{user.name!r} is now {'disabled' if user.disabled_at else 'enabled'}")
            except LookupError as exc:
                print(f"claimlane: {exc.args[0]}", file=sys.stderr)
                return 1
    finally:
        engine.dispose()
    return 0


def _user_list(args: argparse.Namespace) -> int:
    from storage.users import all_users

    engine, sessions = _migrated_sessions(_settings())
    try:
        with sessions() as session:
            users = all_users(session)
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
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    use_metrics_folder(settings.data_dir / "metrics")  # before anything imports prometheus-client

    import uvicorn

    from config import logs
    from storage.db import migrate

    migrate(settings.resolved_database_url())  # once, before the workers start (each re-checks: a no-op)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port if args.port is not None else settings.port,
        log_level=args.log_level,
        log_config=logs.config(settings.log_format, args.log_level.upper()),
        access_log=False,  # claimlane.access writes one line per request (api.observability)
        proxy_headers=True,
        workers=args.workers if args.workers is not None else settings.web_workers,
    )
    return 0


# --------------------------------------------------------------------------------------------------
# Models: the registry, promotion, shadow mode, retraining


def _services():
    """Services for a model command. Like the API and the workers at start, make sure the registry
    has a champion (the bundled model) first, so `model list` and `model retrain` see what serves."""
    from services.context import build_services
    from services.promotion import ensure_champion

    services = build_services(_settings())
    if getattr(services, "uses_registry", False):
        ensure_champion(services)
    return services


def _cli_actor() -> str:
    import getpass

    try:
        who = getpass.getuser()
    except Exception:  # no user name in this environment (containers)
        who = "unknown"
    return f"cli:{who}"[:64]


def _fail(message: str, code: int = 1) -> int:
    print(f"claimlane: {message}", file=sys.stderr)
    return code


def _fmt_metric(value) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _model_list(args: argparse.Namespace) -> int:
    from services.promotion import overview

    services = _services()
    try:
        view = overview(services)
    finally:
        services.close()
    rows = [("version", "aliases", "created (UTC)", "parent", "AUROC", "ECE")]
    for v in view["versions"]:
        rows.append(
            (
                v["version"],
                ",".join(v["aliases"]) or "-",
                (v["created_at"] or "")[:19].replace("T", " "),
                v["parent"] or "-",
                _fmt_metric(v["metrics"].get("auroc")),
                _fmt_metric(v["metrics"].get("ece")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if len(rows) == 1:
        print("(no versions registered yet)", file=sys.stderr)
    evalset = view["evalset"]
    if evalset:
        print(
            f"fixed evaluation set: {evalset['count']} photos ({evalset['damaged']} damaged, "
            f"{evalset['graded']} graded), manifest sha256 {evalset['sha256'][:12]}",
            file=sys.stderr,
        )
    else:
        print(
            "no fixed evaluation set: install one with `claimlane model evalset --from MANIFEST`",
            file=sys.stderr,
        )
    return 0


def _model_register(args: argparse.Namespace) -> int:
    from models.registry import RegistryError
    from services.promotion import register

    services = _services()
    try:
        info = register(
            services, args.dir, actor=_cli_actor(), parent=args.parent, as_challenger=not args.no_challenger
        )
    except RegistryError as exc:
        return _fail(str(exc))
    finally:
        services.close()
    print(info.version)
    note = "" if args.no_challenger else " and set as challenger"
    print(f"registered {info.version} (parent {info.parent or '-'}){note}", file=sys.stderr)
    return 0


def _print_gate(result) -> None:
    print(result.gate.table())
    for note in result.gate.notes:
        print(f"note: {note}")


def _model_promote(args: argparse.Namespace) -> int:
    from models.registry import RegistryError
    from services.promotion import PromotionRefused, promote

    services = _services()
    try:
        result = promote(services, args.version, actor=_cli_actor(), override_reason=args.override_reason)
    except PromotionRefused as exc:
        _print_gate(exc.result)
        print(f"REFUSED: {args.version} stays a candidate; champion is still {exc.result.previous_version}")
        for failure in exc.result.gate.failures:
            print(f"  - {failure}")
        print(
            "(promote with --override-reason TEXT to overrule the gate; the reason is recorded)",
            file=sys.stderr,
        )
        return 1
    except RegistryError as exc:
        return _fail(str(exc))
    finally:
        services.close()
    _print_gate(result)
    if result.action == "override":
        print(f"OVERRIDDEN: the gate failed; {result.version} is champion (reason: {result.override_reason})")
    else:
        print(f"PROMOTED: {result.version} is champion (was {result.previous_version})")
    return 0


def _model_rollback(args: argparse.Namespace) -> int:
    from models.registry import RegistryError
    from services.promotion import registry_for, rollback

    services = _services()
    try:
        previous = registry_for(services).alias("champion")
        champion = rollback(services, actor=_cli_actor(), reason=args.reason)
    except (RegistryError, ValueError) as exc:
        return _fail(str(exc))
    finally:
        services.close()
    print(champion)
    print(f"rolled back: champion {previous} -> {champion}", file=sys.stderr)
    return 0


def _model_challenger(args: argparse.Namespace) -> int:
    from models.registry import RegistryError
    from services.promotion import set_challenger

    services = _services()
    try:
        previous = set_challenger(services, args.version, actor=_cli_actor(), reason=args.reason)
    except RegistryError as exc:
        return _fail(str(exc))
    finally:
        services.close()
    print(f"challenger: {previous or '-'} -> {args.version}", file=sys.stderr)
    return 0


def _model_evalset(args: argparse.Namespace) -> int:
    from models.registry import RegistryError
    from services.promotion import registry_for

    services = _services()
    try:
        registry = registry_for(services)
        old = registry.evalset_info()
        if old is not None and not args.replace:
            return _fail(
                f"a fixed evaluation set is installed ({old['count']} photos, sha256 {old['sha256'][:12]}); "
                "pass --replace to replace it"
            )
        info = registry.put_evalset(args.manifest, split=args.split, limit=args.limit)
    except RegistryError as exc:
        return _fail(str(exc))
    finally:
        services.close()
    print(
        f"installed the fixed evaluation set: {info['count']} photos ({info['damaged']} damaged, "
        f"{info['graded']} graded), manifest sha256 {info['sha256']}"
    )
    return 0


def _model_shadow_report(args: argparse.Namespace) -> int:
    import json

    try:
        from workers.shadow import shadow_report
    except ImportError:
        return _fail("shadow reports are not available in this build (workers.shadow is missing)")
    filters: dict = {}
    if args.challenger:
        filters["challenger_version"] = args.challenger
    if args.since:
        from datetime import UTC, datetime

        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            return _fail(f"--since must be an ISO 8601 date or time, got {args.since!r}", 2)
        filters["since"] = since if since.tzinfo else since.replace(tzinfo=UTC)
    services = _services()
    try:
        with services.sessions() as session:
            report = shadow_report(session, **filters)
    finally:
        services.close()
    print(json.dumps(report, indent=2, default=str))
    return 0


def _model_retrain(args: argparse.Namespace) -> int:
    try:
        from training.retrain import retrain
    except ImportError as exc:
        return _fail(f"retraining needs the training extra (pip install -e '.[train]'): {exc}")
    services = _services()
    try:
        result = retrain(services, quick=args.quick, base=args.base)
    finally:
        services.close()
    print(getattr(result, "version", result))
    return 0


def _dataset_export(args: argparse.Namespace) -> int:
    try:
        from training.reviewed import export_reviewed
    except ImportError as exc:
        return _fail(f"the dataset export is not available: {exc}")
    services = _services()
    try:
        result = export_reviewed(services, args.out)
    finally:
        services.close()
    if isinstance(result, dict):
        import json

        print(json.dumps(result, indent=2, default=str))
    elif result is not None:
        print(result)
    return 0


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
    add.add_argument(
        "--role", required=True, choices=["customer", "adjuster", "admin", "integration", "lead"]
    )
    add.set_defaults(func=_user_add)
    user.add_parser("list", help="list users (no keys)").set_defaults(func=_user_list)
    for action, text in (
        ("disable", "disable a user: the key fails from the next request on"),
        ("enable", "enable a disabled user again"),
        ("rotate-key", "give a user a new key (printed once); the old one fails at once"),
    ):
        sub = user.add_parser(action, help=text)
        sub.add_argument("name")
        sub.set_defaults(func=_user_change, change=action)

    db = commands.add_parser("db", help="database").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=_db_upgrade)

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT, $CLAIMLANE_PORT or 8000")
    serve.add_argument(
        "--workers", type=int, default=None, help="server processes (default: $CLAIMLANE_WEB_WORKERS or 1)"
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(func=_serve)

    model = commands.add_parser("model", help="the damage model registry").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    model.add_parser("list", help="versions, aliases and metrics").set_defaults(func=_model_list)
    reg = model.add_parser("register", help="upload a version folder (SHA256SUMS verified)")
    reg.add_argument("dir", help="a version folder: model.onnx, SHA256SUMS, calibration.json, ...")
    reg.add_argument("--parent", help="the version it was fine-tuned from")
    reg.add_argument("--no-challenger", action="store_true", help="do not make it the challenger")
    reg.set_defaults(func=_model_register)
    pro = model.add_parser("promote", help="make a version champion if the gate passes")
    pro.add_argument("version")
    pro.add_argument("--override-reason", help="promote even if the gate refuses (recorded)")
    pro.set_defaults(func=_model_promote)
    rb = model.add_parser("rollback", help="the previous champion serves again")
    rb.add_argument("--reason", required=True)
    rb.set_defaults(func=_model_rollback)
    ch = model.add_parser("challenger", help="shadow-run a version as challenger")
    ch.add_argument("version")
    ch.add_argument("--reason")
    ch.set_defaults(func=_model_challenger)
    ev = model.add_parser("evalset", help="install the fixed evaluation set of the promotion gate")
    ev.add_argument("--from", dest="manifest", required=True, help="a manifest.csv (path,grade,damaged,...)")
    ev.add_argument("--split", help="only rows of this split (e.g. test)")
    ev.add_argument("--limit", type=int, help="at most N rows (the first N)")
    ev.add_argument("--replace", action="store_true", help="replace an installed evaluation set")
    ev.set_defaults(func=_model_evalset)
    sr = model.add_parser("shadow-report", help="challenger vs champion decisions (JSON)")
    sr.add_argument("--challenger", help="only this challenger version")
    sr.add_argument("--since", help="only predictions at or after this time (ISO 8601, UTC if no zone)")
    sr.set_defaults(func=_model_shadow_report)
    rt = model.add_parser("retrain", help="fine-tune on the adjusters' labels and register a challenger")
    rt.add_argument("--quick", action="store_true", help="a short run (minutes), for trying the loop")
    rt.add_argument("--from", dest="base", default="champion", choices=["champion", "imagenet"])
    rt.set_defaults(func=_model_retrain)

    dataset = commands.add_parser("dataset", help="training data").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    exp = dataset.add_parser("export", help="export the adjusters' labelled photos as a manifest")
    exp.add_argument("--out", required=True, help="output folder (manifest.csv + images)")
    exp.set_defaults(func=_dataset_export)

    shipments = commands.add_parser("shipments", help="the carrier's shipment records").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    imp = shipments.add_parser("import", help="import a CSV or JSON-lines file, all or nothing")
    imp.add_argument("file", help="a .csv (with a header row) or .jsonl file; - for standard input")
    imp.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name")
    imp.set_defaults(func=_shipments_import)
    return parser


class _SweeperDispatcher:
    """The CLI exits at once: claims it moves back to assessing are left to the server's stale-claim
    sweeper (workers.tasks.requeue_stale_claims) rather than to a thread that would die with it."""

    def enqueue_assessment(self, claim_id: str) -> None:
        print(f"claim {claim_id} will be assessed again by the server", file=sys.stderr)

    def shutdown(self) -> None:
        pass


def _shipments_import(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from claims.errors import ClaimLaneError
    from services import shipments as shipment_service

    fmt = args.format or ("jsonl" if str(args.file).endswith((".jsonl", ".ndjson")) else "csv")
    content_type = "text/csv" if fmt == "csv" else "application/x-ndjson"
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"claimlane: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    engine, sessions = _migrated_sessions(_settings())
    try:
        with sessions() as session:
            try:
                rows = shipment_service.parse_batch(body, content_type)
                report = shipment_service.import_shipments(session, _SweeperDispatcher(), rows, "cli")
            except ClaimLaneError as exc:
                print(f"claimlane: {exc.message}", file=sys.stderr)
                for detail in exc.details or []:
                    print(f"  {json.dumps(detail, ensure_ascii=False)}", file=sys.stderr)
                return 1
        print(
            f"imported {report.rows} rows: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged; {len(report.rechecked)} waiting claims re-checked"
        )
        return 0
    finally:
        engine.dispose()


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
