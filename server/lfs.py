"""The Git LFS File Locking API at `/lfs/{project}/…`, and object batches forwarded upstream.

A repository points `lfs.url` at `http(s)://holdfast/lfs/<project>`; the stock `git lfs`
client (and Unreal's Git LFS plugin, which shells out to it) then locks, lists, verifies and
unlocks here. These are the same locks as GraphQL's: same rules, same events, same
subscriptions. The wire format is what git-lfs 3.x expects (../shared/notes/git-lfs.md): string
ids, `locked_at` with a UTC offset, `owner.name` always set, 401 with `WWW-Authenticate: Basic`
when credentials are missing (a 403 is never retried), and a `message` naming the holder on 409.

git-lfs sends object transfers to the same URL, so `/objects/batch` is forwarded to the
project's upstream LFS server with Holdfast's own credentials for it; the client then moves the
bytes straight to the upstream's action URLs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.identity import User
from domain.errors import Conflict, DomainError, Unauthenticated
from domain.locks import HeldLock, Locks
from domain.pagination import MAX_PAGE_SIZE
from graph.context import Services
from server.origin import client_address

logger = logging.getLogger("holdfast.lfs")

MEDIA_TYPE = "application/vnd.git-lfs+json"
DEFAULT_LIMIT = 100
MAX_LOCK_REQUEST_BYTES = 64 * 1024
MAX_BATCH_REQUEST_BYTES = 8 * 1024 * 1024
UPSTREAM_TIMEOUT_SECONDS = 60
BRANCH_PREFIX = "refs/heads/"

STATUS_BY_CODE = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "BAD_USER_INPUT": 422,
    "RATE_LIMITED": 429,
}


class LfsError(Exception):
    """An answer other than success: its status and the message the client prints."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def lfs_response(body: dict[str, Any], status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type=MEDIA_TYPE)


def lock_json(held: HeldLock) -> dict[str, Any]:
    lock = held.lock
    return {
        "id": str(lock.id),
        "path": lock.path,
        "locked_at": lock.acquired_at.isoformat(),
        "owner": {"name": held.owner.username},
    }


def branch_of(body: dict[str, Any]) -> str | None:
    """The branch a request names in `ref.name` (git-lfs sends `refs/heads/<branch>`)."""
    ref = body.get("ref")
    name = ref.get("name") if isinstance(ref, dict) else None
    if not isinstance(name, str) or not name:
        return None
    return name.removeprefix(BRANCH_PREFIX)


def page_limit(raw: Any) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise LfsError(422, "limit must be a whole number") from None
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise LfsError(422, f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return limit


def lock_id(raw: str) -> int | None:
    """A lock id from a URL or query; None when it cannot be one of ours."""
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 19 else None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is larger than `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise LfsError(413, f"the request body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise LfsError(413, f"the request body is larger than {limit} bytes")
    return bytes(body)


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    body = await read_body(request, limit)
    try:
        parsed = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise LfsError(422, "the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise LfsError(422, "the request body must be a JSON object")
    return parsed


def leaks(secret: str | None, content: bytes) -> bool:
    """Whether an answer carries the secret, or its credential part (some LFS servers copy the
    request's Authorization into the actions they hand out)."""
    if not secret:
        return False
    parts = {secret, secret.partition(" ")[2]}
    return any(len(part) >= 8 and part.encode() in content for part in parts)


def basic_credentials(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("the Basic credentials are not valid base64") from None
    username, colon, secret = decoded.partition(":")
    if not colon or not username or not secret:
        raise Unauthenticated("Basic credentials must be username:token")
    return username, secret


class GitLfs:
    """The routes, and the HTTP client that forwards object batches upstream."""

    def __init__(self) -> None:
        self.services: Services | None = None
        self._upstream: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def running(self, services: Services) -> AsyncIterator[None]:
        self.services = services
        async with httpx.AsyncClient(
            timeout=UPSTREAM_TIMEOUT_SECONDS, follow_redirects=False
        ) as client:
            self._upstream = client
            try:
                yield
            finally:
                self._upstream = None

    def routes(self) -> list[Route]:
        return [
            Route("/lfs/{project}/locks", self._endpoint(self.list_locks), methods=["GET"]),
            Route("/lfs/{project}/locks", self._endpoint(self.create_lock), methods=["POST"]),
            Route("/lfs/{project}/locks/verify", self._endpoint(self.verify), methods=["POST"]),
            Route(
                "/lfs/{project}/locks/{id}/unlock", self._endpoint(self.unlock), methods=["POST"]
            ),
            Route("/lfs/{project}/objects/batch", self._endpoint(self.batch), methods=["POST"]),
        ]

    @property
    def locks(self) -> Locks:
        return self.services.locks

    def _endpoint(self, handler):
        """Authenticate, run the handler, and answer every failure as git-lfs expects."""

        async def endpoint(request: Request) -> Response:
            try:
                caller = await self._caller(request)
                return await handler(request, caller, request.path_params["project"])
            except LfsError as error:
                return self._error(request, error.status, error.message)
            except DomainError as error:
                headers = {}
                if error.code == "RATE_LIMITED":
                    headers["Retry-After"] = str(error.retry_after)
                status = STATUS_BY_CODE.get(error.code, 500)
                return self._error(request, status, error.message, headers)
            except Exception:
                logger.exception("LFS request failed (request id %s)", request.state.request_id)
                return self._error(request, 500, "internal error")

        return endpoint

    @staticmethod
    def _error(request: Request, status: int, message: str, headers: dict | None = None):
        headers = dict(headers or {})
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Holdfast", charset="UTF-8"'
        body = {"message": message, "request_id": request.state.request_id}
        return lfs_response(body, status, headers)

    async def _caller(self, request: Request) -> User:
        """The user behind HTTP Basic (username + API token or password) or a bearer token."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.strip().partition(" ")
        identity = self.services.identity
        if scheme.lower() == "basic" and value.strip():
            username, secret = basic_credentials(value)
            principal = await identity.authenticate_basic(username, secret, client_address(request))
        elif scheme.lower() == "bearer" and value.strip():
            principal = await identity.authenticate(value.strip())
        else:
            raise Unauthenticated("sign in with your username and an API token")
        return principal.user

    # -- locks -----------------------------------------------------------------------------

    async def create_lock(self, request: Request, caller: User, project: str) -> Response:
        body = await json_body(request, MAX_LOCK_REQUEST_BYTES)
        path = body.get("path")
        if not isinstance(path, str):
            raise LfsError(422, "give the path to lock")
        try:
            _, [held] = await self.locks.acquire(caller, project, [path], branch=branch_of(body))
        except Conflict as error:
            if "holders" not in error.extensions:
                raise
            _, [existing] = await self.locks.status(project, [path])
            answer: dict[str, Any] = {"message": error.message}
            if existing is not None:
                answer["lock"] = lock_json(existing)
            return lfs_response(answer, 409)
        return lfs_response({"lock": lock_json(held)}, 201)

    async def list_locks(self, request: Request, caller: User, project: str) -> Response:
        query = request.query_params
        limit = page_limit(query.get("limit"))
        path, wanted_id = query.get("path"), query.get("id")
        if path or wanted_id:
            found: list[HeldLock] = []
            if path:
                _, [held] = await self.locks.status(project, [path])
                found = [held] if held is not None else []
            if wanted_id:
                number = lock_id(wanted_id)
                if path:
                    found = [held for held in found if held.lock.id == number]
                elif number is not None:
                    _, held = await self.locks.get(project, number)
                    found = [held] if held is not None else []
            return lfs_response({"locks": [lock_json(held) for held in found]})
        _, page = await self.locks.list(project, first=limit, after=query.get("cursor") or None)
        return lfs_response(
            {
                "locks": [lock_json(held) for held in page.items],
                "next_cursor": page.cursors[-1] if page.has_next else "",
            }
        )

    async def verify(self, request: Request, caller: User, project: str) -> Response:
        body = await json_body(request, MAX_LOCK_REQUEST_BYTES)
        cursor = body.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise LfsError(422, "cursor must be a string")
        _, page = await self.locks.list(
            project, first=page_limit(body.get("limit")), after=cursor or None
        )
        ours = [lock_json(held) for held in page.items if held.owner.id == caller.id]
        theirs = [lock_json(held) for held in page.items if held.owner.id != caller.id]
        return lfs_response(
            {
                "ours": ours,
                "theirs": theirs,
                "next_cursor": page.cursors[-1] if page.has_next else "",
            }
        )

    async def unlock(self, request: Request, caller: User, project: str) -> Response:
        body = await json_body(request, MAX_LOCK_REQUEST_BYTES)
        number = lock_id(request.path_params["id"])
        if number is None:
            raise LfsError(404, f"no lock with id {request.path_params['id']!r}")
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise LfsError(422, "force must be true or false")
        _, held = await self.locks.release_by_id(caller, project, number, force=force)
        return lfs_response({"lock": lock_json(held)})

    # -- objects ---------------------------------------------------------------------------

    async def batch(self, request: Request, caller: User, project: str) -> Response:
        """Forward the batch request to the project's upstream LFS server, answer as it did."""
        found = await self.services.projects.get(project)
        if found is None:
            raise LfsError(404, f"no project {project!r}")
        if not found.lfs_upstream_url:
            raise LfsError(
                404,
                f"the project {found.slug!r} stores no LFS objects here: an admin sets its "
                "lfsUpstreamUrl",
            )
        body = await read_body(request, MAX_BATCH_REQUEST_BYTES)
        headers = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE}
        if found.lfs_upstream_authorization:
            headers["Authorization"] = found.lfs_upstream_authorization
        try:
            answer = await self._upstream.post(
                f"{found.lfs_upstream_url}/objects/batch", content=body, headers=headers
            )
        except httpx.HTTPError as error:
            logger.warning("LFS upstream of %r unreachable (%s)", found.slug, type(error).__name__)
            raise LfsError(502, "the project's LFS object server cannot be reached") from None
        if answer.status_code in (401, 403):
            logger.warning(
                "LFS upstream of %r refused Holdfast (%s)", found.slug, answer.status_code
            )
            raise LfsError(502, "the project's LFS object server refused Holdfast's credentials")
        if leaks(found.lfs_upstream_authorization, answer.content):
            logger.error(
                "LFS upstream of %r echoed Holdfast's credentials: answer withheld", found.slug
            )
            raise LfsError(502, "the project's LFS object server answered unsafely")
        media_type = answer.headers.get("content-type", MEDIA_TYPE)
        return Response(answer.content, answer.status_code, media_type=media_type)
