"""`holdfast …`: run the server, apply migrations, export the schema."""

import argparse
import asyncio
import sys
from pathlib import Path

from server.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(f"holdfast: bad setting: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _check_admin_settings(settings: Settings) -> None:
    """The first admin is made at start-up: refuse values it would be refused with."""
    from domain.errors import BadUserInput
    from domain.identity import validate_email, validate_password, validate_username

    checks = [
        ("ADMIN_USERNAME", validate_username, settings.admin_username),
        ("ADMIN_EMAIL", validate_email, settings.admin_email),
    ]
    if settings.admin_password:
        checks.append(("ADMIN_PASSWORD", validate_password, settings.admin_password))
    for name, check, value in checks:
        try:
            check(value)
        except BadUserInput as error:
            print(f"holdfast: bad setting: HOLDFAST_{name}: {error.message}", file=sys.stderr)
            raise SystemExit(2) from None


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    _check_admin_settings(settings)
    if args.workers > 1 and settings.bus_url is None:
        print(
            "holdfast: --workers > 1 needs a shared bus (HOLDFAST_REDIS_URL, or HOLDFAST_BUS="
            "postgres on PostgreSQL): otherwise each worker keeps its own live events",
            file=sys.stderr,
        )
        return 2
    if args.workers > 1 and settings.database_url.startswith("sqlite"):
        print("holdfast: note: several workers on SQLite serialise every write", file=sys.stderr)
    uvicorn.run(
        "server.app:create_app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        ws_per_message_deflate=False,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    return 0


def migrate(args: argparse.Namespace) -> int:
    from db import migrations
    from server.app import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    asyncio.run(migrations.upgrade(settings.database_url, args.revision))
    print(f"holdfast: database at {args.revision}")
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run background jobs only (no HTTP), until SIGTERM or Ctrl-C."""
    import signal

    from server.app import configure_logging, running_services

    settings = _settings()
    configure_logging(settings.log_level)

    async def run() -> None:
        async with running_services(settings, run_jobs=True):
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            print("holdfast: worker running background jobs", file=sys.stderr, flush=True)
            await stop.wait()

    asyncio.run(run())
    return 0


def export_schema(args: argparse.Namespace) -> int:
    from graph.schema import schema

    sdl = str(schema) + "\n"
    if args.output:
        Path(args.output).write_text(sdl)
    else:
        sys.stdout.write(sdl)
    return 0


def demo_data(args: argparse.Namespace) -> int:
    """Fill a fresh database with a demo IT inventory (server/demo_data.py)."""
    from server.app import configure_logging
    from server.demo_data import AlreadyFilled
    from server.demo_data import demo_data as fill

    settings = _settings()
    _check_admin_settings(settings)
    configure_logging("WARNING")
    try:
        print(asyncio.run(fill(settings, args.seed)))
    except AlreadyFilled:
        print(
            "holdfast: demo-data: the inventory already has servers; demo data goes into a "
            "fresh database only (nothing was changed)",
            file=sys.stderr,
        )
        return 1
    except LookupError as error:
        print(f"holdfast: demo-data: {error}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="holdfast", description="Holdfast: who holds what.")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the server (applies pending migrations)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument(
        "--proxy-headers", action="store_true", help="trust X-Forwarded-* from the proxy"
    )
    run.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    run.set_defaults(handler=serve)

    upgrade = commands.add_parser("migrate", help="apply pending database migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=migrate)

    jobs = commands.add_parser("worker", help="run background jobs in this process only")
    jobs.set_defaults(handler=worker)

    demo = commands.add_parser(
        "demo-data", help="fill a fresh database with a demo IT inventory (migrates it first)"
    )
    demo.add_argument("--seed", type=int, help="another seed, other (as believable) data")
    demo.set_defaults(handler=demo_data)

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument("--output", "-o")
    export.set_defaults(handler=export_schema)

    from client.cli import add_commands

    add_commands(root, commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
