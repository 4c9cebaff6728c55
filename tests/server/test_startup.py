"""Real `holdfast serve` processes: first start bootstraps, replicas may start together."""

import asyncio

import httpx
from sqlalchemy import select

from db import migrations
from db.engine import Database
from db.identity import User
from db.projects import Project
from db.server_state import ServerSecret
from tests.conftest import ADMIN_PASSWORD, start_server, stop_server


async def stored(url: str, model) -> list:
    db = Database(url)
    try:
        async with db.transaction() as session:
            return list((await session.execute(select(model))).scalars().all())
    finally:
        await db.dispose()


def test_two_replicas_starting_together_on_an_empty_database(settings, fresh_database, tmp_path):
    url = fresh_database()
    replica = settings.replace(database_url=url, migrate_on_start=True, admin_password=None)
    servers = []
    try:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(start_server, replica, tmp_path / f"r{i}.log") for i in (1, 2)]
            servers = [future.result() for future in futures]
        assert asyncio.run(migrations.pending(url)) is False
        [admin] = asyncio.run(stored(url, User))
        assert (admin.username, admin.role) == ("admin", "admin")
        assert [project.slug for project in asyncio.run(stored(url, Project))] == ["default"]
        assert len(asyncio.run(stored(url, ServerSecret))) == 1
        outputs = [server.output() for server in servers]
        announced = [output for output in outputs if "Created the admin user 'admin'" in output]
        assert len(announced) == 1
        password = announced[0].split("with the password: ")[1].split()[0]
        query = (
            """mutation($p: String!) { login(username: "admin", password: $p) { accessToken } }"""
        )
        tokens = [
            httpx.post(
                f"{server.url}/graphql", json={"query": query, "variables": {"p": password}}
            ).json()["data"]["login"]["accessToken"]
            for server in servers
        ]
        # Both replicas share the generated signing key: a token from one works on the other.
        me = httpx.post(
            f"{servers[1].url}/graphql",
            json={"query": "{ me { username } }"},
            headers={"Authorization": f"Bearer {tokens[0]}"},
        ).json()
        assert me == {"data": {"me": {"username": "admin"}}}
    finally:
        for server in servers:
            stop_server(server)


def test_the_configured_admin_password_is_never_printed(settings, tmp_path):
    server = start_server(settings, tmp_path / "server.log")
    try:
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["status"] == "ready"
    finally:
        stop_server(server)
    assert ADMIN_PASSWORD not in server.output()
    assert "Created the admin user" in server.output()
