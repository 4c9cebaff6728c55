"""The Starlette application: wiring settings, database, bus and schema together."""

import asyncio
import contextlib
import gc
import logging
import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from db import migrations
from db.engine import Database
from domain.assets import Assets, GpuHolds
from domain.assets.workbook import AssetWorkbook
from domain.audit import AuditLog
from domain.bus import EventBus
from domain.caches import SharedCache
from domain.feeds import Feeds
from domain.files import Files
from domain.holds import Holds
from domain.identity import Identity, IdentityConfig, shared_jwt_secret
from domain.jobs import Jobs
from domain.locks import Locks
from domain.notify import MailConfig, Notifier
from domain.parking import Parking
from domain.parking.jobs import ParkingJobs
from domain.parts import Parts
from domain.parts.files import PartFiles
from domain.projects import DEFAULT_PROJECT_SLUG, Projects, ensure_project
from domain.ratelimit import LoginThrottle, limits_storage
from domain.settings import DEFINITIONS as RUNTIME_SETTINGS
from domain.settings import RuntimeSettings
from domain.storage import LocalStorage
from domain.transfers import Transfers
from domain.venues import Venues
from graph.context import Services
from graph.schema import Limits, build_schema
from server.downloads import download
from server.graphql import UPLOAD_HEADERS, GraphQLApp
from server.health import healthz, readyz
from server.lfs import GitLfs
from server.origin import ClientOriginMiddleware
from server.settings import SETTINGS, Settings, load_settings

logger = logging.getLogger("holdfast")

STATIC_DIR = Path(__file__).parent / "static"
BOARD_PAGE = STATIC_DIR / "board" / "index.html"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
AUDIT_PURGE_INTERVAL = timedelta(hours=1)


class RequestIdMiddleware:
    """Give every request an id (or keep a sane `X-Request-ID`) and echo it in the response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


class AbortableConnectionMiddleware:
    """Put `abort_connection` in a websocket's scope state: it drops the TCP connection at once.

    ASGI can only close politely, which waits for the client to read; a client that stopped
    reading would hold its connection and buffers forever.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope.setdefault("state", {})["abort_connection"] = transport.abort
        await self.app(scope, receive, send)


GC_THRESHOLDS = (50_000, 20, 100)
JOBS_STOP_SECONDS = 30
"""How long shutting down waits for the job pass in progress (a long job is cut off)."""


def tune_garbage_collector() -> None:
    """Full collections walk every live object: with thousands of websocket subscribers one
    took 60-75 ms here, stalling every delivery. Start-up objects live as long as the process,
    so they are frozen out of collection, and collections run far less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


def announce_admin_password(username: str, password: str) -> None:
    """Show a generated admin password once, on the console only (never through logging)."""
    print(
        f"\nCreated the admin user {username!r} with the password: {password}\n"
        "It is shown only this once: sign in and change it.\n",
        file=sys.stderr,
        flush=True,
    )


FILE_EXPIRY_INTERVAL = timedelta(minutes=5)
PARKING_MAIL_INTERVAL = timedelta(hours=1)
"""How often the parking reminder and report jobs look (each mails at most daily / monthly)."""


def download_base_url(settings: Settings) -> str | None:
    """Download links are absolute when PUBLIC_URL was set to other than its default, else
    relative to the server the client called."""
    default = next(setting.default for setting in SETTINGS if setting.name == "PUBLIC_URL")
    return settings.public_url if settings.public_url != default else None


async def start_services(settings: Settings, db: Database, bus: EventBus) -> Services:
    jwt_secret = settings.jwt_secret or await shared_jwt_secret(db)
    feeds = Feeds(
        db,
        bus,
        queue_size=settings.subscriber_queue_size,
        check_interval=settings.live_resync_interval,
    )
    holds = Holds(db, feeds)
    principals = SharedCache(bus, "principals")
    project_cache = SharedCache(bus, "projects")
    for cache in (principals, project_cache):
        await cache.start()
    projects = Projects(db, project_cache)
    jobs = Jobs(db)
    files = Files(
        db,
        link_ttl=timedelta(seconds=settings.download_ttl),
        retention=timedelta(seconds=settings.job_file_retention),
        public_url=download_base_url(settings),
        storage=LocalStorage(settings.data_dir),
        jobs=jobs,
    )
    transfers = Transfers(jobs, files)
    notifier = Notifier(
        db,
        jobs,
        MailConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            tls=settings.smtp_tls,
            sender=settings.mail_from,
            public_url=settings.public_url,
            alert_policy=settings.lock_alerts,
        ),
    )
    locks = Locks(db, holds, projects, notifier)
    gpus = GpuHolds(db, holds, notifier)
    parts = Parts(db, holds, notifier)
    await parts.stream_id()
    part_files = PartFiles(
        db,
        files,
        jobs,
        max_bytes=settings.max_part_file_bytes,
        conversion_timeout=settings.step_conversion_timeout,
    )
    parts.delete_files = part_files.delete_files_of_parts
    part_files.when_files_change(parts.files_changed)
    assets = Assets(db, gpus)
    await assets.start()
    venues = Venues(db, settings.event_default_minutes)
    parking = Parking(db, holds, notifier)
    parking_jobs = ParkingJobs(db, parking, notifier, transfers)
    identity = Identity(
        db,
        IdentityConfig(
            jwt_secret=jwt_secret,
            access_token_ttl=settings.access_token_ttl,
            refresh_token_ttl=settings.refresh_token_ttl,
            registration_open=settings.registration == "open",
            password_time_cost=settings.password_hash_time_cost,
            password_memory_kib=settings.password_hash_memory_kib,
        ),
        LoginThrottle(
            limits_storage(settings.redis_url, settings.redis_prefix),
            settings.login_rate_limit,
            settings.login_address_rate_limit,
        ),
        notifier,
        principals,
    )
    identity.when_user_leaves(locks.release_all_of_user)
    identity.when_user_leaves(gpus.release_all_of_user)
    identity.when_user_leaves(parts.release_all_of_user)
    identity.when_user_leaves(parking.release_all_of_user)
    created, generated = await identity.ensure_admin(
        settings.admin_username, settings.admin_email, settings.admin_password
    )
    if generated:
        announce_admin_password(settings.admin_username, generated)
    elif created:
        logger.info(
            "Created the admin user %r with the configured password", settings.admin_username
        )
    await ensure_project(db, DEFAULT_PROJECT_SLUG, "Default")

    def apply(values: dict) -> None:
        """Push effective runtime settings into the services that use them."""
        identity.config = replace(
            identity.config,
            access_token_ttl=values["access_token_ttl"],
            registration_open=values["registration"] == "open",
        )
        notifier.config = replace(
            notifier.config,
            host=values["smtp_host"],
            port=values["smtp_port"],
            username=values["smtp_username"],
            password=values["smtp_password"],
            tls=values["smtp_tls"],
            sender=values["mail_from"] or settings.mail_from,
            alert_policy=values["lock_alerts"],
        )
        locks.force_release_by_anyone = values["force_release_policy"] == "everyone"
        venues.default_minutes = values["event_default_minutes"]

    runtime = RuntimeSettings(
        db,
        bus,
        start_up={name: getattr(settings, name) for name in RUNTIME_SETTINGS},
        pinned=frozenset(name.lower() for name in settings.pinned) & set(RUNTIME_SETTINGS),
        apply=apply,
    )
    await runtime.start()
    parking.setting = lambda name: runtime.values[name]

    def expire_due():
        hours = runtime.values["lock_auto_release_hours"]
        warning = runtime.values["lock_expiry_warning_minutes"]
        return locks.expire_due(
            auto_release_after=timedelta(hours=hours) if hours else None,
            retention=timedelta(seconds=runtime.values["event_retention"]),
            warn_before=timedelta(minutes=warning) if warning else None,
        )

    jobs.every("lock-expiry", timedelta(seconds=settings.lock_expiry_interval), expire_due)
    jobs.every(
        "gpu-overdue",
        timedelta(seconds=settings.lock_expiry_interval),
        lambda: gpus.remind_overdue(timedelta(seconds=runtime.values["event_retention"])),
    )
    jobs.every(
        "part-events-retention",
        timedelta(seconds=settings.lock_expiry_interval),
        lambda: parts.purge(timedelta(seconds=runtime.values["event_retention"])),
    )
    jobs.every("file-expiry", FILE_EXPIRY_INTERVAL, files.purge_expired)
    jobs.every(
        "parking-expiry",
        timedelta(seconds=settings.lock_expiry_interval),
        lambda: parking.expire_due(timedelta(seconds=runtime.values["event_retention"])),
    )
    jobs.every("parking-reminders", PARKING_MAIL_INTERVAL, parking_jobs.remind_idle)
    jobs.every("parking-report", PARKING_MAIL_INTERVAL, parking_jobs.monthly_report)
    audit = AuditLog(db)
    jobs.every(
        "audit-retention",
        AUDIT_PURGE_INTERVAL,
        lambda: audit.purge(runtime.values["audit_retention_days"]),
    )
    return Services(
        identity=identity,
        projects=projects,
        locks=locks,
        holds=holds,
        assets=assets,
        gpus=gpus,
        parts=parts,
        part_files=part_files,
        venues=venues,
        parking=parking,
        parking_jobs=parking_jobs,
        jobs=jobs,
        files=files,
        transfers=transfers,
        asset_workbook=AssetWorkbook(db, transfers),
        notifier=notifier,
        settings=runtime,
        audit=audit,
        caches=(principals, project_cache),
    )


@asynccontextmanager
async def running_services(
    settings: Settings, *, run_jobs: bool
) -> AsyncIterator[tuple[Database, EventBus, Services]]:
    """Everything a process serves with, migrated and connected; the job runner if asked."""
    if settings.migrate_on_start:
        await migrations.upgrade(settings.database_url)
    db = Database(settings.database_url, settings.database_pool_size)
    bus = EventBus(settings.bus_url, settings.redis_prefix)
    services = runner = None
    try:
        await bus.connect()
        services = await start_services(settings, db, bus)
        if run_jobs:
            runner = asyncio.create_task(services.jobs.run_forever(), name="holdfast-jobs")
        tune_garbage_collector()
        yield db, bus, services
    finally:
        if runner is not None:
            services.jobs.stop()
            try:
                await asyncio.wait_for(asyncio.shield(runner), JOBS_STOP_SECONDS)
            except TimeoutError:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
        if services is not None:
            await services.settings.stop()
            await services.locks.feeds.close()
            for cache in services.caches:
                await cache.stop()
        await bus.disconnect()
        await db.dispose()


async def board(request: Request) -> FileResponse:
    """The lock board, a single-page app on the public GraphQL API (static/board/)."""
    return FileResponse(BOARD_PAGE, headers={"Cache-Control": "no-cache"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    schema = build_schema(
        Limits(
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            introspection=settings.introspection,
        )
    )
    graphql = GraphQLApp(
        schema,
        services=None,
        allowed_origins=settings.cors_origins,
        live=schema.live,
        max_upload_bytes=settings.max_upload_bytes,
    )
    lfs = GitLfs()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            running_services(settings, run_jobs=settings.run_jobs) as (db, bus, services),
            lfs.running(services),
        ):
            graphql.services = services
            app.state.db, app.state.bus, app.state.services = db, bus, services
            yield

    middleware = [
        Middleware(AbortableConnectionMiddleware),
        Middleware(RequestIdMiddleware),
        Middleware(ClientOriginMiddleware, trusted_proxies=settings.trusted_proxies),
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "X-Request-ID",
                    *UPLOAD_HEADERS,
                ],
                expose_headers=["X-Request-ID"],
                max_age=600,
            )
        )
    app = Starlette(
        routes=[
            Route("/", board),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/downloads/{token}", download, methods=["GET"]),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *lfs.routes(),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


def create_app_from_environment() -> Starlette:
    """Entry point for uvicorn's factory mode (one call per worker process)."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
