"""`holdfast watch`: follow lock events live, surviving network drops.

It reads the project's newest seq, subscribes to `lockEvents` with `since: seq`, prints one line
per event and remembers the last seq. When the connection drops it retries with backoff and
resubscribes with `since: last`: the server replays what was missed, so every event is printed
once, in order. If the server no longer keeps those events (`reason: refetch`) it says so on
stderr and follows on from the current seq.
"""

import asyncio
import json
import sys

from client.api import Api
from client.errors import ApiError, CliError, Unreachable

SUBSCRIBE = """subscription($project: String!, $prefix: String, $since: Long) {
    lockEvents(project: $project, pathPrefix: $prefix, since: $since) {
        seq kind at message actor { username }
        lock { path owner { username } branch comment expiresAt } } }"""
FIRST_DELAY = 0.25
MAX_DELAY = 5.0


def current_seq(api: Api, project: str) -> int:
    found = api.call(
        "query($slug: String!) { project(slug: $slug) { lastSeq } }", {"slug": project}
    )["project"]
    if found is None:
        raise ApiError("NOT_FOUND", f"no project {project!r}")
    return found["lastSeq"]


def format_event(event: dict) -> str:
    """seq, kind, path, holder, actor, message — tab-separated."""
    actor = (event.get("actor") or {}).get("username") or "-"
    fields = [
        str(event["seq"]),
        event["kind"],
        event["lock"]["path"],
        event["lock"]["owner"]["username"],
        actor,
        event.get("message") or "",
    ]
    return "\t".join(fields).rstrip("\t")


async def follow(api: Api, project: str, prefix: str | None, last: int, as_json: bool) -> None:
    delay = FIRST_DELAY
    dropped = False

    def connected() -> None:
        nonlocal delay, dropped
        delay = FIRST_DELAY
        if dropped:
            print(f"holdfast: reconnected, catching up after seq {last}", file=sys.stderr)
            dropped = False

    while True:
        variables = {"project": project, "prefix": prefix, "since": last}
        try:
            async for data in api.subscribe(SUBSCRIBE, variables, on_ack=connected):
                event = data["lockEvents"]
                if event["seq"] <= last:
                    continue
                last = event["seq"]
                print(json.dumps(event) if as_json else format_event(event), flush=True)
            raise Unreachable("the server ended the subscription")
        except Unreachable as error:
            if not dropped:
                print(f"holdfast: {error.message}; reconnecting", file=sys.stderr)
                dropped = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
        except ApiError as error:
            if error.extensions.get("reason") != "refetch":
                raise
            newest = await asyncio.to_thread(current_seq, api, project)
            print(
                f"holdfast: events after seq {last} are no longer kept, some changes were "
                f"missed: following on from seq {newest} (run `holdfast locks` for the state)",
                file=sys.stderr,
            )
            last = newest


def run(api: Api, project: str, prefix: str | None, since: int | None, as_json: bool) -> int:
    if since is not None and since < 0:
        raise CliError("--since must not be negative")
    last = current_seq(api, project) if since is None else since
    print(f"holdfast: watching project {project} after seq {last}", file=sys.stderr, flush=True)
    asyncio.run(follow(api, project, prefix, last, as_json))
    return 0
