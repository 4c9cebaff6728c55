"""Parts for tests, made through the public API like any client."""

from __future__ import annotations

from tests.support.graphql import GraphQL

PART_FIELDS = (
    "id shortId name kind stage status subsystem material quantity notes onshapeUrl version "
    "reviewer { username } claimedBy { username } claimedAt completedAt completedIncorrectly"
)
CREATE_PART = f"""mutation($input: CreatePartInput!) {{
  createPart(input: $input) {{ {PART_FIELDS} }} }}"""


def step(name: str) -> str:
    """The mutation document of a workflow step (approvePart, claimPart, …)."""
    return f"mutation($id: ID!) {{ {name}(id: $id) {{ {PART_FIELDS} }} }}"


async def part(api: GraphQL, token: str, **fields) -> dict:
    given = {"name": "Bracket", "kind": "CNC", **fields}
    return (await api.data(CREATE_PART, {"input": given}, token=token))["createPart"]


async def approved_part(api: GraphQL, admin: str, **fields) -> dict:
    made = await part(api, admin, **fields)
    return (await api.data(step("approvePart"), {"id": made["id"]}, token=admin))["approvePart"]


async def grant_review(api: GraphQL, admin: str, username: str) -> None:
    users = await api.data("{ users { edges { node { id username } } } }", token=admin)
    [user_id] = [
        edge["node"]["id"]
        for edge in users["users"]["edges"]
        if edge["node"]["username"] == username
    ]
    await api.data(
        'mutation($id: ID!) { updateUser(id: $id, input: {permissions: ["parts.review"]}) { id } }',
        {"id": user_id},
        token=admin,
    )
