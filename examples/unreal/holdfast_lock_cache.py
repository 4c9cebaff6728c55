"""Keep a local cache of a Holdfast project's locks in sync, for Unreal Editor or a terminal.

One self-contained file: the standard library plus `websockets` (its synchronous client).

In a terminal it prints the cache as it changes:

    python holdfast_lock_cache.py --server http://127.0.0.1:8000 --project default --token hf_...

In Unreal Editor (embedded Python 3.11), from `init_unreal.py`:

    import holdfast_lock_cache
    holdfast_lock_cache.start(server="http://holdfast.studio:8000", project="default")

How it stays in sync: a background thread reads every page of `locks` (whose `seq` is the
project's newest event when read), subscribes to `lockEvents(since: seq)` over a
`graphql-transport-ws` websocket and applies the events in seq order, dropping any it has seen.
After a dropped connection (server restart, network, close code 1013 for a subscriber that fell
behind) it reconnects with backoff and `since: <last seq>`, so it misses nothing; when the server
no longer keeps events that old (`BAD_USER_INPUT`, `reason: "refetch"`) it reloads the list.

Nothing here touches Unreal from the background thread: events are queued, and the caller drains
them on its own thread with `LockCache.drain()` (the Unreal glue does so on the game thread).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable

try:
    from websockets.exceptions import ConnectionClosed, WebSocketException
    from websockets.sync.client import connect as websocket_connect
except ImportError:  # reported by LockCache.start(), so that importing this file never fails
    websocket_connect = None
    ConnectionClosed = WebSocketException = Exception

try:
    import unreal
except ImportError:
    unreal = None

log = logging.getLogger("holdfast_lock_cache")

LOCK_FIELDS = "id path owner { username } branch comment acquiredAt expiresAt"
LOAD_QUERY = f"""query($project: String!, $prefix: String, $first: Int, $after: String) {{
  me {{ username }}
  project(slug: $project) {{ caseSensitive }}
  locks(project: $project, pathPrefix: $prefix, first: $first, after: $after) {{
    seq pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {LOCK_FIELDS} }} }} }} }}"""
SUBSCRIPTION = f"""subscription($project: String!, $prefix: String, $since: Long) {{
  lockEvents(project: $project, pathPrefix: $prefix, since: $since) {{
    seq kind lock {{ {LOCK_FIELDS} }} actor {{ username }} message at }} }}"""

HOLDING = {"ACQUIRED", "RENEWED"}  # the event's lock is held afterwards
FREEING = {"RELEASED", "FORCE_RELEASED", "EXPIRED"}  # the path is free afterwards
# Notices of this script's own, queued for drain() beside the server's events:
LOADED = "LOADED"  # the list was (re)loaded: {"kind", "seq", "count", "message"}
FAILED = "FAILED"  # the cache gave up (bad token, unknown project): {"kind", "message"}
SLOW_SUBSCRIBER = 1013  # the server cut us off for falling behind: reconnect at once
FORBIDDEN_CLOSE = 4403  # missing or bad credentials in connection_init


class Fatal(Exception):
    """Retrying cannot help: a bad token, an unknown project, a server that refuses us."""


class Refetch(Exception):
    """The server no longer keeps the events after our seq: reload the list."""


class Retry(Exception):
    """A passing failure: try again after a pause."""


class SlowSubscriber(Exception):
    """Closed with 1013 (the subscriber fell behind): resubscribe with since at once."""


def normalise_path(path: str) -> str:
    """The server's spelling rules for a path: `\\` → `/`, no leading `./` or `/`, no `//`."""
    path = path.replace("\\", "/")
    path = re.sub(r"/+", "/", path)
    path = re.sub(r"(^|/)\./", r"\1", path)
    return path.lstrip("/").rstrip("/")


def _count(number: int) -> str:
    return f"{number} lock" if number == 1 else f"{number} locks"


def websocket_url(server: str) -> str:
    """`http://host:8000` → `ws://host:8000/graphql` (`https` → `wss`)."""
    parts = urllib.parse.urlsplit(server.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + "/graphql", "", ""))


def _raise_for_errors(errors: list[dict]) -> None:
    """Turn GraphQL errors into Refetch, Fatal or Retry."""
    first = errors[0]
    extensions = first.get("extensions") or {}
    code = extensions.get("code")
    message = first.get("message", "error")
    if code == "BAD_USER_INPUT" and (
        extensions.get("reason") == "refetch" or extensions.get("field") == "since"
    ):
        raise Refetch(message)  # too old, or ahead of a server whose database was replaced
    if code in {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT"}:
        raise Fatal(f"{code}: {message}")
    raise Retry(f"{code}: {message}")


class LockCache:
    """A thread-safe mirror of one project's locks, kept in sync by a background thread.

    `locks()` is a snapshot {path: lock}; `holder_of(path)` finds a path's holder (ignoring
    case unless the project is case-sensitive); `seq` is the newest event applied. Events are
    queued for `drain()`, which the owner of the cache calls on its own thread.
    """

    def __init__(
        self,
        server: str,
        project: str,
        token: str,
        *,
        path_prefix: str | None = None,
        page_size: int = 500,
        backoff: Iterable[float] = (0.5, 1, 2, 4, 8, 15, 30),
        timeout: float = 10,
    ) -> None:
        self.server = server.rstrip("/")
        self.project = project
        self.path_prefix = path_prefix
        self.page_size = page_size
        self.backoff = tuple(backoff)
        self.timeout = timeout
        self._token = token
        self._lock = threading.Condition(threading.RLock())
        self._locks: dict[str, dict] = {}
        self._seq: int | None = None  # None until the first load
        self._case_sensitive = False
        self._events: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.username: str | None = None  # whose token this is, once loaded
        self.connected = False
        self.error: str | None = None  # set when the cache gave up (see FAILED)
        # Counters, for tests and curious users.
        self.loads = 0
        self.pages_read = 0
        self.subscriptions = 0

    # -- reading the cache (any thread) ---------------------------------------------------

    @property
    def seq(self) -> int | None:
        with self._lock:
            return self._seq

    @property
    def loaded(self) -> bool:
        return self.seq is not None

    def key(self, path: str) -> str:
        path = normalise_path(path)
        return path if self._case_sensitive else path.casefold()

    def locks(self) -> dict[str, dict]:
        """{path as the server spells it: lock} — a copy."""
        with self._lock:
            return {lock["path"]: dict(lock) for lock in self._locks.values()}

    def lock(self, path: str) -> dict | None:
        with self._lock:
            found = self._locks.get(self.key(path))
            return None if found is None else dict(found)

    def holder_of(self, path: str) -> str | None:
        """The username holding `path`, or None when it is free (as far as the cache knows)."""
        found = self.lock(path)
        return None if found is None else found["owner"]["username"]

    def wait_until(self, predicate: Callable[[LockCache], bool], timeout: float) -> bool:
        """Block until `predicate(self)` holds (checked after every change) or time runs out."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
            return True

    def drain(self, handler: Callable[[dict], None] | None = None) -> list[dict]:
        """Take every queued event, oldest first; call `handler` with each on this thread.

        The server's events (`seq kind lock actor message at`) come in the order they were
        applied, plus this script's notices: LOADED after every (re)load, FAILED when it gives up.
        """
        drained = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return drained
            drained.append(event)
            if handler is not None:
                handler(event)

    # -- running ----------------------------------------------------------------------------

    def start(self) -> LockCache:
        if websocket_connect is None:
            raise RuntimeError(
                "the websockets package is missing: install it into this Python with "
                f"`{sys.executable} -m pip install websockets`"
            )
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="holdfast-locks", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        must_load = True
        while not self._stop.is_set():
            subscribed = self.subscriptions
            try:
                if must_load:
                    self._load()
                    must_load = False
                self._follow()
            except Refetch as why:
                log.info("reloading the locks: %s", why)
                must_load = True
                continue
            except Fatal as why:
                self.error = str(why)
                log.error("holdfast lock cache stopped: %s", why)
                self._events.put({"kind": FAILED, "message": str(why)})
                return
            except SlowSubscriber:
                log.info("the server cut us off for falling behind; resubscribing")
                continue
            except (Retry, OSError, WebSocketException, ValueError) as why:
                log.info("holdfast connection lost (%s); retrying", why)
            except Exception:
                log.exception("unexpected error in the holdfast lock cache; retrying")
            finally:
                self._set_connected(False)
            if self.subscriptions > subscribed:
                failures = 0  # it worked for a while: start the backoff over
            delay = self.backoff[min(failures, len(self.backoff) - 1)]
            failures += 1
            self._stop.wait(delay * random.uniform(0.75, 1.0))  # noqa: S311 - jitter, not a secret

    def _set_connected(self, value: bool) -> None:
        with self._lock:
            self.connected = value
            self._lock.notify_all()

    # -- the list, over HTTP ----------------------------------------------------------------

    def _graphql(self, query: str, variables: dict) -> dict:
        url = self.server + "/graphql"
        if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
            raise Fatal(f"the server must be an http(s) URL, not {self.server!r}")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url,
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self._token}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = json.load(response)
        except urllib.error.HTTPError as error:  # GraphQL errors may come with a 4xx status
            try:
                body = json.load(error)
            except ValueError:
                raise Retry(f"HTTP {error.code} from {url}") from error
            if error.code >= 500 and not body.get("errors"):
                raise Retry(f"HTTP {error.code} from {url}") from error
        except urllib.error.URLError as error:
            raise Retry(f"cannot reach {url}: {error.reason}") from error
        if body.get("errors"):
            _raise_for_errors(body["errors"])
        return body["data"]

    def _load(self) -> None:
        """Read every page of `locks`; the first page's `seq` is where the events follow on.

        Later pages may already show changes made after that seq; the replay from it sets or
        clears every path changed since, so the cache ends right whatever it saw in between.
        """
        after = None
        seq = None
        locks: dict[str, dict] = {}
        while True:
            data = self._graphql(
                LOAD_QUERY,
                {
                    "project": self.project,
                    "prefix": self.path_prefix,
                    "first": self.page_size,
                    "after": after,
                },
            )
            self.pages_read += 1
            if data["project"] is None:
                raise Fatal(f"no project {self.project!r}")
            if seq is None:
                seq = data["locks"]["seq"]
                case_sensitive = data["project"]["caseSensitive"]
                username = (data["me"] or {}).get("username")
            for edge in data["locks"]["edges"]:
                path = normalise_path(edge["node"]["path"])
                locks[path if case_sensitive else path.casefold()] = edge["node"]
            page = data["locks"]["pageInfo"]
            if not page["hasNextPage"]:
                break
            after = page["endCursor"]
        with self._lock:
            self._case_sensitive = case_sensitive
            self._locks = locks
            self._seq = seq
            self.username = username
            self.loads += 1
            self._events.put(
                {
                    "kind": LOADED,
                    "seq": seq,
                    "count": len(locks),
                    "message": f"{_count(len(locks))} in {self.project} at seq {seq}",
                }
            )
            self._lock.notify_all()

    # -- the events, over a websocket -------------------------------------------------------

    def _follow(self) -> None:
        """Subscribe with `since` and apply events until the connection ends."""
        try:
            with websocket_connect(
                websocket_url(self.server),
                subprotocols=["graphql-transport-ws"],
                open_timeout=self.timeout,
                close_timeout=2,
            ) as socket:
                socket.send(
                    json.dumps(
                        {
                            "type": "connection_init",
                            "payload": {"Authorization": f"Bearer {self._token}"},
                        }
                    )
                )
                reply = json.loads(socket.recv(timeout=self.timeout))
                if reply.get("type") != "connection_ack":
                    raise Retry(f"no connection_ack but {reply!r}")
                variables = {"project": self.project, "prefix": self.path_prefix, "since": self.seq}
                socket.send(
                    json.dumps(
                        {
                            "id": "locks",
                            "type": "subscribe",
                            "payload": {"query": SUBSCRIPTION, "variables": variables},
                        }
                    )
                )
                self.subscriptions += 1
                self._set_connected(True)
                while not self._stop.is_set():
                    try:
                        raw = socket.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "ping":
                        socket.send(json.dumps({"type": "pong"}))
                    elif kind == "next":
                        payload = message["payload"]
                        if payload.get("errors"):
                            _raise_for_errors(payload["errors"])
                        self._apply(payload["data"]["lockEvents"])
                    elif kind == "error":
                        _raise_for_errors(message["payload"])
                    elif kind == "complete":
                        raise Retry("the server ended the subscription")
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            if code == FORBIDDEN_CLOSE:
                raise Fatal("the server refused the token (close code 4403)") from closed
            if code == SLOW_SUBSCRIBER:
                raise SlowSubscriber from closed
            raise Retry(f"connection closed ({code})") from closed

    def _apply(self, event: dict) -> None:
        with self._lock:
            if self._seq is not None and event["seq"] <= self._seq:
                return  # seen already
            path_key = self.key(event["lock"]["path"])
            if event["kind"] in HOLDING:
                self._locks[path_key] = event["lock"]
            elif event["kind"] in FREEING:
                self._locks.pop(path_key, None)
            # RELEASE_REQUESTED changes nothing: it is only news for the holder.
            self._seq = event["seq"]
            self._events.put(event)
            self._lock.notify_all()


def describe(event: dict, me: str | None) -> tuple[str, str] | None:
    """How to tell `me` about an event: (level, text) with level info/warning/error, or None."""
    kind = event["kind"]
    if kind == LOADED:
        return "info", f"Holdfast: {event['message']}"
    if kind == FAILED:
        return "error", f"Holdfast lock cache stopped: {event['message']}"
    lock = event["lock"]
    path, owner = lock["path"], lock["owner"]["username"]
    actor = (event.get("actor") or {}).get("username")
    note = f": {event['message']}" if event.get("message") else ""
    if kind == "ACQUIRED":
        comment = f" ({lock['comment']})" if lock.get("comment") else ""
        return ("info" if owner == me else "warning"), f"Holdfast: {owner} locked {path}{comment}"
    if kind == "RELEASE_REQUESTED":
        level = "warning" if owner == me else "info"
        return level, f"Holdfast: {actor} asks {owner} to release {path}{note}"
    if kind == "FORCE_RELEASED":
        level = "warning" if owner == me and actor != me else "info"
        return level, f"Holdfast: {actor} force-released {owner}'s lock on {path}{note}"
    if kind == "EXPIRED":
        return ("warning" if owner == me else "info"), f"Holdfast: {owner}'s lock on {path} expired"
    if kind == "RELEASED":
        return "info", f"Holdfast: {owner} released {path}"
    if kind == "RENEWED":
        return "info", f"Holdfast: {owner} renewed {path} until {lock.get('expiresAt')}"
    return None


def token_from_git(server: str) -> tuple[str, str] | None:
    """(username, token) that git's credential helper keeps for this server, if any.

    The same credentials `git lfs lock` uses (see docs/unreal.md), so an artist sets them once.
    Never prompts: returns None when the helper has nothing.
    """
    parts = urllib.parse.urlsplit(server)
    request = f"protocol={parts.scheme}\nhost={parts.netloc}\n\n"
    try:
        result = subprocess.run(
            ["git", "credential", "fill"],  # noqa: S607 - git from PATH, like the git plugin
            input=request,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if not fields.get("password"):
        return None
    return fields.get("username", ""), fields["password"]


def resolve_token(server: str, token: str | None) -> str:
    """The token given, else $HOLDFAST_TOKEN, else the git credential helper's password."""
    token = token or os.environ.get("HOLDFAST_TOKEN")
    if token:
        return token
    found = token_from_git(server)
    if found is None:
        raise RuntimeError(
            "no Holdfast token: pass one, set HOLDFAST_TOKEN, or store it with "
            "`git credential approve` (see docs/unreal.md)"
        )
    return found[1]


# -- Unreal Editor glue (only does anything inside the editor; untested outside it) ------------

_editor_cache: LockCache | None = None
_tick_handle = None


def _tell_editor(event: dict) -> None:
    said = describe(event, _editor_cache.username if _editor_cache else None)
    if said is None:
        return
    level, text = said
    {"info": unreal.log, "warning": unreal.log_warning, "error": unreal.log_error}[level](text)


def _on_tick(delta_seconds: float) -> None:
    if _editor_cache is not None:
        _editor_cache.drain(_tell_editor)  # on the game thread: Unreal's API is safe here


def start(
    server: str | None = None,
    project: str | None = None,
    token: str | None = None,
    path_prefix: str | None = None,
) -> LockCache:
    """Start the cache in Unreal Editor; call from `init_unreal.py`. Returns the cache.

    Defaults: $HOLDFAST_SERVER (else http://127.0.0.1:8000), $HOLDFAST_PROJECT (else `default`),
    the token from `resolve_token`.
    """
    global _editor_cache, _tick_handle
    if unreal is None:
        raise RuntimeError("start() is for Unreal Editor; elsewhere use LockCache directly")
    if _editor_cache is not None:
        return _editor_cache
    server = server or os.environ.get("HOLDFAST_SERVER", "http://127.0.0.1:8000")
    project = project or os.environ.get("HOLDFAST_PROJECT", "default")
    lock_cache = LockCache(server, project, resolve_token(server, token), path_prefix=path_prefix)
    _editor_cache = lock_cache.start()
    _tick_handle = unreal.register_slate_post_tick_callback(_on_tick)
    unreal.register_python_shutdown_callback(stop)
    unreal.log(f"Holdfast: following locks of {project} on {server}")
    return lock_cache


def stop() -> None:
    global _editor_cache, _tick_handle
    if _tick_handle is not None:
        unreal.unregister_slate_post_tick_callback(_tick_handle)
        _tick_handle = None
    if _editor_cache is not None:
        _editor_cache.stop()
        _editor_cache = None


def cache() -> LockCache | None:
    """The editor's cache, e.g. `holdfast_lock_cache.cache().holder_of("Content/Maps/A.umap")`."""
    return _editor_cache


# -- terminal --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a Holdfast project's locks as they change.")
    parser.add_argument(
        "--server", default=os.environ.get("HOLDFAST_SERVER", "http://127.0.0.1:8000")
    )
    parser.add_argument("--project", default=os.environ.get("HOLDFAST_PROJECT", "default"))
    parser.add_argument("--token", help="an API token (hf_...); default $HOLDFAST_TOKEN or git's")
    parser.add_argument("--path-prefix", default=None)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        token = resolve_token(args.server, args.token)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    lock_cache = LockCache(
        args.server, args.project, token, path_prefix=args.path_prefix, page_size=args.page_size
    ).start()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while deadline is None or time.monotonic() < deadline:
            events = lock_cache.drain()
            for event in events:
                said = describe(event, lock_cache.username)
                if said is not None:
                    print(said[1], flush=True)
            if lock_cache.error is not None:
                return 1
            if events:
                held = lock_cache.locks()
                print(f"-- {_count(len(held))} at seq {lock_cache.seq}", flush=True)
                for path, lock in sorted(held.items(), key=lambda item: item[0].casefold()):
                    expires = f"  until {lock['expiresAt']}" if lock.get("expiresAt") else ""
                    print(f"   {path}\t{lock['owner']['username']}{expires}", flush=True)
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        lock_cache.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
