"""Reads: what authentication costs, and the 100-lock list against raw JSON.

- `{ me { username } }` (signed in) against `{ __typename }` (anonymous) on the same server;
- `{ locks(project, first: 100) { … } }` against a plain Starlette + asyncpg endpoint that
  returns the same JSON from the same tables (bench/floors.py).
"""

from __future__ import annotations

import orjson

from bench.common import RESULTS, SECONDS, floor_server, holdfast, stop, wrk

LIST = """{ locks(project: "default", first: 100) { totalCount edges { node {
    id path branch comment acquiredAt fencingToken owner { username } } } } }"""


def _body(name: str, query: str) -> object:
    path = RESULTS / f"{name}.json"
    path.write_bytes(orjson.dumps({"query": query}))
    return path


async def run() -> dict:
    results: dict = {}
    async with holdfast("reads") as server:
        bearer = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
        plain = {"Content-Type": "application/json"}
        anonymous = wrk(
            f"{server.url}/graphql", _body("typename", "{ __typename }"), plain, SECONDS
        )
        signed_in = wrk(
            f"{server.url}/graphql", _body("me", "{ me { username } }"), bearer, SECONDS
        )
        results["authentication"] = {
            "anonymous_typename": anonymous,
            "signed_in_me": signed_in,
            "ratio": round(signed_in["requests_per_s"] / anonymous["requests_per_s"], 3),
        }
        print(
            f"{{ me {{ username }} }} {signed_in['requests_per_s']:.0f}/s against "
            f"{{ __typename }} {anonymous['requests_per_s']:.0f}/s: ratio "
            f"{results['authentication']['ratio']}"
        )
        for index in range(0, 100, 50):
            paths = [f"Content/List/{index + n:03}.uasset" for n in range(50)]
            await server.graphql(
                'mutation($p: [String!]!) { acquireLocks(project: "default", paths: $p, '
                'comment: "bench", branch: "main") { id } }',
                {"p": paths},
            )
        listed = wrk(f"{server.url}/graphql", _body("list", LIST), bearer, SECONDS)
        process, url = floor_server("bench.floors:app", server.database_url, "floor-list")
        try:
            raw = wrk(f"{url}/locks?project=default&first=100", None, {}, SECONDS)
        finally:
            stop(process)
        results["list_100"] = {
            "graphql": listed,
            "raw_json_floor": raw,
            "ratio": round(listed["requests_per_s"] / raw["requests_per_s"], 3),
        }
        print(
            f"100-lock list: {listed['requests_per_s']:.0f}/s through GraphQL, "
            f"{raw['requests_per_s']:.0f}/s raw JSON: ratio {results['list_100']['ratio']}"
        )
        results["server_errors"] = server.errors_in_log()
    return results
