"""Users, projects and holds for tests, made through the public API like any client."""

from __future__ import annotations

from tests.support.accounts import ADMIN_PASSWORD, USER_PASSWORD
from tests.support.graphql import GraphQL

LOCK = """mutation($project: String!, $path: String!) {
    acquireLock(project: $project, path: $path) { id } }"""
UNLOCK = """mutation($project: String!, $path: String!, $force: Boolean) {
    releaseLock(project: $project, path: $path, force: $force) { id } }"""
CREATE_PROJECT = """mutation($input: CreateProjectInput!) { createProject(input: $input) {
    slug } }"""


async def admin_token(api: GraphQL) -> str:
    return (await api.login("admin", ADMIN_PASSWORD))["accessToken"]


async def users(api: GraphQL, *names: str, role: str = "USER") -> dict[str, str]:
    """Make these users (as the admin) and sign each in: their access tokens by name, and the
    admin's as "admin"."""
    tokens = {"admin": await admin_token(api)}
    for name in names:
        await api.create_user(name, role=role, token=tokens["admin"])
        tokens[name] = (await api.login(name, USER_PASSWORD))["accessToken"]
    return tokens


async def project(api: GraphQL, slug: str, token: str | None = None, **fields) -> dict:
    given = {"slug": slug, "name": slug.title(), **fields}
    return (await api.data(CREATE_PROJECT, {"input": given}, token=token))["createProject"]


async def lock(api: GraphQL, path: str, project: str = "default", token: str | None = None):
    """The whole response to acquireLock (it may be an error)."""
    return await api.post(LOCK, {"project": project, "path": path}, token=token)


async def unlock(
    api: GraphQL, path: str, project: str = "default", token: str | None = None, force=None
):
    return await api.post(UNLOCK, {"project": project, "path": path, "force": force}, token=token)
