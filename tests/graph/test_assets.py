"""IT assets through the API: each mutation's happy path, wrong role, bad input and the state
it leaves; lists, search, the tree's query count, lost updates and deletes."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from sqlalchemy import event

from tests.support.assets import (
    CREATE_CONTAINER,
    CREATE_DATACENTER,
    CREATE_GPU,
    CREATE_SERVER,
    CREATE_SERVICE,
    container,
    datacenter,
    gpu,
    grow_tree,
    server,
    service,
)
from tests.support.factories import users


@pytest.fixture
async def people(api):
    return await users(api, "mira", "noor")


async def test_every_kind_is_created_by_an_admin_and_read_by_everyone(api, people):
    admin = people["admin"]
    dc = await datacenter(api, admin, name="fra1", location="Frankfurt")
    srv = await server(
        api,
        admin,
        dc["id"],
        name="build-01",
        hostname="Build-01.Example.com",
        managementIp="10.0.0.1",
        publicIp="2001:DB8:0:0:0:0:0:1",
        cpuCores=32,
        memoryGb=128,
        diskGb=2000,
        os="Debian 12",
        status="MAINTENANCE",
        environment="production",
        tags=["ci", "Linux"],
    )
    assert srv["hostname"] == "build-01.example.com"
    assert srv["publicIp"] == "2001:db8::1"  # stored canonical
    assert srv["tags"] == ["ci", "linux"]
    assert srv["environment"]["name"] == "production"
    box = await container(
        api,
        admin,
        srv["id"],
        name="web",
        image="nginx:1.27",
        ports=[
            {"hostPort": 8080, "containerPort": 80},
            {"hostPort": 53, "containerPort": 53, "protocol": "UDP"},
        ],
    )
    assert box["ports"] == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
        {"hostPort": 53, "containerPort": 53, "protocol": "UDP"},
    ]
    service = (
        await api.data(
            CREATE_SERVICE,
            {
                "input": {
                    "name": "site",
                    "kind": "WEB",
                    "containerId": box["id"],
                    "port": 80,
                    "healthCheckUrl": "https://example.com/health",
                }
            },
            token=admin,
        )
    )["createService"]
    assert service["container"]["name"] == "web"
    card = await gpu(api, admin, serial="GPU-0001", model="A100", memoryGb=80, serverId=srv["id"])
    assert card["holder"] is None and card["server"]["name"] == "build-01"

    tree = await api.data(
        "{ datacenters { name location servers { name containers { name services { name } } "
        "gpus { serial } } } }",
        token=people["mira"],
    )
    assert tree["datacenters"] == [
        {
            "name": "fra1",
            "location": "Frankfurt",
            "servers": [
                {
                    "name": "build-01",
                    "containers": [{"name": "web", "services": [{"name": "site"}]}],
                    "gpus": [{"serial": "GPU-0001"}],
                }
            ],
        }
    ]
    environments = await api.data("{ environments { name color } }", token=people["mira"])
    assert [e["name"] for e in environments["environments"]] == [
        "development",
        "production",
        "staging",
    ]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (CREATE_DATACENTER, {"input": {"name": "x"}}),
        (CREATE_GPU, {"input": {"model": "A100", "serial": "S1"}}),
    ],
)
async def test_only_admins_write(api, people, query, variables):
    _, error = await api.error(query, variables, token=people["mira"])
    assert error["extensions"]["code"] == "FORBIDDEN"
    _, anonymous = await api.error(query, variables, token="")
    assert anonymous["extensions"]["code"] == "UNAUTHENTICATED"
    assert (
        await api.data("{ datacenters { id } gpus { totalCount } }", token=people["admin"])
    ) == {
        "datacenters": [],
        "gpus": {"totalCount": 0},
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"managementIp": "10.0.0.300"}, "managementIp"),
        ({"publicIp": "not-an-ip"}, "publicIp"),
        ({"cpuCores": -1}, "cpuCores"),
        ({"diskGb": -5}, "diskGb"),
        ({"hostname": "bad_host!"}, "hostname"),
        ({"name": "   "}, "name"),
        ({"environment": "nowhere"}, "environment"),
        ({"tags": ["has space"]}, "tags"),
    ],
)
async def test_bad_server_input_names_the_field_and_writes_nothing(api, people, fields, field):
    dc = await datacenter(api, people["admin"], name="fra1")
    given = {"name": "s1", "datacenterId": dc["id"], **fields}
    _, error = await api.error(CREATE_SERVER, {"input": given}, token=people["admin"])
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == field
    servers = await api.data("{ servers { totalCount } }", token=people["admin"])
    assert servers["servers"]["totalCount"] == 0


async def test_a_missing_datacenter_is_bad_input(api, people):
    _, error = await api.error(
        CREATE_SERVER, {"input": {"name": "s1", "datacenterId": "999"}}, token=people["admin"]
    )
    assert (error["extensions"]["code"], error["extensions"]["field"]) == (
        "BAD_USER_INPUT",
        "datacenterId",
    )


async def test_bad_container_and_service_input(api, people):
    admin = people["admin"]
    dc = await datacenter(api, admin, name="fra1")
    srv = await server(api, admin, dc["id"], name="s1")
    for ports in (
        [{"hostPort": 0, "containerPort": 80}],
        [{"hostPort": 70000, "containerPort": 80}],
        [{"hostPort": 80, "containerPort": 80}, {"hostPort": 80, "containerPort": 81}],
    ):
        _, error = await api.error(
            CREATE_CONTAINER,
            {"input": {"name": "c", "image": "i", "serverId": srv["id"], "ports": ports}},
            token=admin,
        )
        assert (error["extensions"]["code"], error["extensions"]["field"]) == (
            "BAD_USER_INPUT",
            "ports",
        ), ports
    box = await container(api, admin, srv["id"], name="c", image="i")
    for url in ("ftp://example.com/", "javascript:alert(1)", "http://"):
        _, error = await api.error(
            CREATE_SERVICE,
            {
                "input": {
                    "name": "s",
                    "kind": "WEB",
                    "containerId": box["id"],
                    "healthCheckUrl": url,
                }
            },
            token=admin,
        )
        assert error["extensions"]["field"] == "healthCheckUrl", url


async def test_duplicates_are_conflicts_naming_the_field(api, people):
    admin = people["admin"]
    dc = await datacenter(api, admin, name="fra1")
    _, error = await api.error(CREATE_DATACENTER, {"input": {"name": "fra1"}}, token=admin)
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("CONFLICT", "name")
    srv = await server(api, admin, dc["id"], name="s1")
    other = await server(api, admin, dc["id"], name="s2")
    await container(
        api, admin, srv["id"], name="web", image="i", ports=[{"hostPort": 80, "containerPort": 80}]
    )
    _, same_name = await api.error(
        CREATE_CONTAINER,
        {"input": {"name": "web", "image": "i", "serverId": srv["id"]}},
        token=admin,
    )
    assert same_name["extensions"]["field"] == "name"
    assert "errors" not in await api.post(
        CREATE_CONTAINER,
        {"input": {"name": "web", "image": "i", "serverId": other["id"]}},
        token=admin,
    )  # unique per server
    _, same_port = await api.error(
        CREATE_CONTAINER,
        {
            "input": {
                "name": "api",
                "image": "i",
                "serverId": srv["id"],
                "ports": [{"hostPort": 80, "containerPort": 8000}],
            }
        },
        token=admin,
    )
    assert (same_port["extensions"]["code"], same_port["extensions"]["field"]) == (
        "CONFLICT",
        "ports",
    )
    names = await api.data("{ containers { edges { node { name } } } }", token=admin)
    assert sorted(e["node"]["name"] for e in names["containers"]["edges"]) == ["web", "web"]
    await gpu(api, admin, serial="S-1", model="A100")
    _, serial = await api.error(
        CREATE_GPU, {"input": {"serial": "S-1", "model": "H100"}}, token=admin
    )
    assert (serial["extensions"]["code"], serial["extensions"]["field"]) == ("CONFLICT", "serial")


async def test_concurrent_creates_leave_one_row(api, people):
    admin = people["admin"]
    answers = await asyncio.gather(
        *(
            api.post(CREATE_GPU, {"input": {"serial": "RACE", "model": f"m{i}"}}, token=admin)
            for i in range(8)
        )
    )
    assert sum("errors" not in answer for answer in answers) == 1
    assert {a["errors"][0]["extensions"]["code"] for a in answers if "errors" in a} == {"CONFLICT"}
    assert (await api.data("{ gpus { totalCount } }", token=admin))["gpus"]["totalCount"] == 1


UPDATE_SERVER = """mutation($id: ID!, $input: UpdateServerInput!) {
  updateServer(id: $id, input: $input) { id name status version tags } }"""


async def test_a_stale_version_is_a_conflict_carrying_the_current_values(api, people):
    admin = people["admin"]
    dc = await datacenter(api, admin, name="fra1")
    srv = await server(api, admin, dc["id"], name="s1")
    assert srv["version"] == 1
    first = await api.data(
        UPDATE_SERVER, {"id": srv["id"], "input": {"status": "OFFLINE", "version": 1}}, token=admin
    )
    assert first["updateServer"]["version"] == 2
    _, stale = await api.error(
        UPDATE_SERVER, {"id": srv["id"], "input": {"name": "renamed", "version": 1}}, token=admin
    )
    assert stale["extensions"]["code"] == "CONFLICT"
    assert stale["extensions"]["current"]["status"] == "OFFLINE"
    assert stale["extensions"]["current"]["version"] == 2
    state = await api.data(
        f'{{ server(id: "{srv["id"]}") {{ name status version }} }}', token=admin
    )
    assert state["server"] == {"name": "s1", "status": "OFFLINE", "version": 2}
    tags_only = await api.data(
        UPDATE_SERVER, {"id": srv["id"], "input": {"tags": ["gpu"], "version": 2}}, token=admin
    )
    assert tags_only["updateServer"]["version"] == 3  # a change beside the row counts too


async def test_racing_updates_of_one_version_have_one_winner(api, people):
    admin = people["admin"]
    dc = await datacenter(api, admin, name="fra1")
    srv = await server(api, admin, dc["id"], name="s1")
    answers = await asyncio.gather(
        *(
            api.post(
                UPDATE_SERVER,
                {"id": srv["id"], "input": {"notes": f"n{i}", "version": 1}},
                token=admin,
            )
            for i in range(6)
        )
    )
    assert sum("errors" not in a for a in answers) == 1
    assert all(a["errors"][0]["extensions"]["code"] == "CONFLICT" for a in answers if "errors" in a)


DELETE_SERVER = """mutation($id: ID!, $cascade: Boolean) {
  deleteServer(id: $id, cascade: $cascade) { name } }"""


async def test_deleting_a_server_with_children_needs_cascade(api, people):
    admin = people["admin"]
    dc = await datacenter(api, admin, name="fra1")
    srv = await server(api, admin, dc["id"], name="s1")
    box = await container(
        api, admin, srv["id"], name="c1", image="i", ports=[{"hostPort": 80, "containerPort": 80}]
    )
    await api.data(
        CREATE_SERVICE,
        {"input": {"name": "svc", "kind": "WEB", "containerId": box["id"]}},
        token=admin,
    )
    card = await gpu(api, admin, serial="G1", model="A100", serverId=srv["id"])
    await api.data(f'mutation {{ claimGpu(id: "{card["id"]}") {{ id }} }}', token=people["mira"])

    _, refused = await api.error(DELETE_SERVER, {"id": srv["id"]}, token=admin)
    assert (refused["extensions"]["code"], refused["extensions"]["containers"]) == ("CONFLICT", 1)
    _, forbidden = await api.error(
        DELETE_SERVER, {"id": srv["id"], "cascade": True}, token=people["mira"]
    )
    assert forbidden["extensions"]["code"] == "FORBIDDEN"
    assert (await api.data("{ servers { totalCount } }", token=admin))["servers"]["totalCount"] == 1

    deleted = await api.data(DELETE_SERVER, {"id": srv["id"], "cascade": True}, token=admin)
    assert deleted["deleteServer"] == {"name": "s1"}
    left = await api.data(
        "{ servers { totalCount } containers { totalCount } services { totalCount } "
        "gpus { totalCount } }",
        token=admin,
    )
    assert left == {k: {"totalCount": 0} for k in ("servers", "containers", "services", "gpus")}
    [*_, last] = (
        await api.data("{ gpuHistory { kind gpu { serial holder { username } } } }", token=admin)
    )["gpuHistory"]
    assert last == {
        "kind": "FORCE_RELEASED",
        "gpu": {"serial": "G1", "holder": {"username": "mira"}},
    }
    removed = await api.data(
        "{ auditLog { edges { node { action resourceType snapshot } } } }",
        token=admin,
    )
    deletions = [e["node"] for e in removed["auditLog"]["edges"] if e["node"]["action"] == "delete"]
    assert sorted(d["resourceType"] for d in deletions) == ["container", "gpu", "server", "service"]
    server_row = next(d for d in deletions if d["resourceType"] == "server")
    assert server_row["snapshot"]["name"] == "s1"
    # the freed port can be published again
    srv2 = await server(api, admin, dc["id"], name="s1")
    await container(
        api, admin, srv2["id"], name="c1", image="i", ports=[{"hostPort": 80, "containerPort": 80}]
    )


async def test_deleting_a_datacenter_with_servers_is_a_conflict(api, people):
    admin = people["admin"]
    dc = await datacenter(api, admin, name="fra1")
    await server(api, admin, dc["id"], name="s1")
    query = "mutation($id: ID!) { deleteDatacenter(id: $id) { name } }"
    assert (await api.error(query, {"id": dc["id"]}, token=admin))[0] == "CONFLICT"


async def test_lists_filter_sort_page_and_search(api, people):
    admin = people["admin"]
    fra = await datacenter(api, admin, name="fra1")
    ams = await datacenter(api, admin, name="ams1")
    for index in range(5):
        await server(
            api,
            admin,
            fra["id"],
            name=f"fra-{index}",
            status="ACTIVE" if index % 2 else "OFFLINE",
            tags=["even"] if index % 2 == 0 else [],
            managementIp=f"10.1.0.{index}",
        )
    await server(
        api, admin, ams["id"], name="ams-0", environment="staging", hostname="db.ams.example"
    )
    query = """query($s: ServerStatus, $dc: ID, $q: String, $tag: String, $env: String,
        $sort: AssetSort, $first: Int, $after: String) {
      servers(status: $s, datacenterId: $dc, search: $q, tag: $tag, environment: $env,
              sort: $sort, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } }"""

    async def names(**variables):
        found = (await api.data(query, variables, token=people["mira"]))["servers"]
        return [edge["node"]["name"] for edge in found["edges"]], found

    assert (await names(s="OFFLINE"))[0] == ["fra-0", "fra-2", "fra-4"]
    assert (await names(dc=ams["id"]))[0] == ["ams-0"]
    assert (await names(tag="even"))[0] == ["fra-0", "fra-2", "fra-4"]
    assert (await names(env="staging"))[0] == ["ams-0"]
    assert (await names(q="10.1.0.3"))[0] == ["fra-3"]
    assert (await names(q="AMS.example"))[0] == ["ams-0"]
    assert (await names(sort="NAME_DESC", first=2))[0] == ["fra-4", "fra-3"]
    first_page, found = await names(first=4)
    assert first_page == ["ams-0", "fra-0", "fra-1", "fra-2"] and found["totalCount"] == 6
    rest, found = await names(first=4, after=found["pageInfo"]["endCursor"])
    assert rest == ["fra-3", "fra-4"] and not found["pageInfo"]["hasNextPage"]
    _, bad = await api.error(query, {"after": "nonsense"}, token=people["mira"])
    assert (bad["extensions"]["code"], bad["extensions"]["field"]) == ("BAD_USER_INPUT", "after")

    await gpu(api, admin, serial="FRA-GPU", model="A100")
    hits = await api.data(
        '{ search(text: "fra") { __typename ... on Server { name } ... on Datacenter { name } '
        "... on Gpu { serial } } }",
        token=people["mira"],
    )
    kinds = [(hit["__typename"], hit.get("name") or hit.get("serial")) for hit in hits["search"]]
    assert kinds[0] == ("Datacenter", "fra1")  # starts with the text, before "fra" inside
    assert ("Gpu", "FRA-GPU") in kinds and ("Server", "fra-4") in kinds
    exact = await api.data('{ search(text: "fra-3") { ... on Server { name } } }', token=admin)
    assert exact["search"][0] == {"name": "fra-3"}


COUNTING: contextvars.ContextVar[QueryCounter | None] = contextvars.ContextVar(
    "counting", default=None
)


class QueryCounter:
    """SELECTs run on behalf of this test's requests (the request and the loader tasks it
    starts inherit the context; the app's background jobs do not)."""

    def __init__(self, db) -> None:
        self.engines = [engine.sync_engine for engine in db.engines]
        self.count = 0

    def __enter__(self):
        self.token = COUNTING.set(self)
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._seen)
        COUNTING.reset(self.token)

    def _seen(self, _conn, _cursor, statement, *_args) -> None:
        if COUNTING.get() is self and statement.lstrip().upper().startswith("SELECT"):
            self.count += 1


TREE = """{ datacenters { name servers { name datacenter { name } environment { name } tags
  containers { name ports { hostPort } services { name container { name } } }
  gpus { serial holder { username } server { name } } } } }"""


async def test_the_tree_costs_the_same_few_queries_whatever_its_size(api, app, people):
    admin = people["admin"]
    db = app.state.db
    await grow_tree(db, 1, 1, 1, "small")
    with QueryCounter(db) as small:
        await api.data(TREE, token=admin)
    await grow_tree(db, 10, 10, 10, "large")
    with QueryCounter(db) as large:
        answer = await api.data(TREE, token=admin)
    assert len(answer["datacenters"]) == 11
    servers = [s for d in answer["datacenters"] for s in d["servers"]]
    assert len(servers) == 101 and all(s["gpus"] and s["tags"] == ["t"] for s in servers)
    assert sum(len(s["containers"]) for s in servers) == 1001
    assert all(
        c["services"][0]["container"]["name"] == c["name"] for s in servers for c in s["containers"]
    )
    assert 8 <= large.count == small.count <= 12, (small.count, large.count)


async def _parents(api, admin) -> dict:
    dc = await datacenter(api, admin, name="fra1")
    srv = await server(api, admin, dc["id"], name="s1")
    box = await container(api, admin, srv["id"], name="c1", image="nginx")
    return {"datacenter": dc, "server": srv, "container": box}


KIND_CASES = [
    # kind, mutation stem, a good change, a bad change (of the field the error names)
    ("datacenter", "Datacenter", {"location": "Berlin"}, {"name": ""}),
    ("environment", "Environment", {"color": "#ABCDEF"}, {"color": "red"}),
    ("server", "Server", {"memoryGb": 256}, {"memoryGb": -1}),
    ("container", "Container", {"image": "nginx:2"}, {"memoryLimitMb": -1}),
    ("service", "Service", {"port": 8443}, {"port": 70000}),
    ("gpu", "Gpu", {"memoryGb": 48}, {"serial": " "}),
]


async def _make(api, admin, kind: str, parents: dict) -> str:
    if kind == "datacenter":
        return (await datacenter(api, admin, name="extra"))["id"]
    if kind == "environment":
        query = 'mutation { createEnvironment(input: {name: "qa", color: "#112233"}) { id } }'
        return (await api.data(query, token=admin))["createEnvironment"]["id"]
    if kind == "server":
        return (await server(api, admin, parents["datacenter"]["id"], name="extra"))["id"]
    if kind == "container":
        return (await container(api, admin, parents["server"]["id"], name="extra", image="i"))["id"]
    if kind == "service":
        return (await service(api, admin, parents["container"]["id"], name="extra"))["id"]
    return (await gpu(api, admin, serial="EXTRA", model="A100"))["id"]


@pytest.mark.parametrize(
    ("kind", "stem", "good", "bad"), KIND_CASES, ids=[c[0] for c in KIND_CASES]
)
async def test_each_kind_updates_and_deletes_as_admins_only_and_is_audited(
    api, people, kind, stem, good, bad
):
    admin = people["admin"]
    parents = await _parents(api, admin)
    row_id = await _make(api, admin, kind, parents)
    field = next(iter(good))
    read = f'{{ {kind}(id: "{row_id}") {{ {field} version }} }}'
    before = (await api.data(read, token=admin))[kind]
    update = (
        f"mutation($id: ID!, $input: Update{stem}Input!) {{ update{stem}(id: $id, input: $input) "
        f"{{ {field} version }} }}"
    )
    delete = f"mutation($id: ID!) {{ delete{stem}(id: $id) {{ id }} }}"

    code, _error = await api.error(update, {"id": row_id, "input": good}, token=people["mira"])
    assert code == "FORBIDDEN"
    code, error = await api.error(update, {"id": row_id, "input": bad}, token=admin)
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", next(iter(bad)))
    code, _error = await api.error(delete, {"id": row_id}, token=people["mira"])
    assert code == "FORBIDDEN"
    assert (await api.data(read, token=admin))[kind] == before  # nothing changed

    changed = (await api.data(update, {"id": row_id, "input": good}, token=admin))[f"update{stem}"]
    expected = good[field].lower() if kind == "environment" else good[field]
    assert changed == {field: expected, "version": before["version"] + 1}
    assert (await api.data(read, token=admin))[kind] == changed

    await api.data(delete, {"id": row_id}, token=admin)
    assert (await api.data(read, token=admin))[kind] is None
    code, _error = await api.error(delete, {"id": row_id}, token=admin)
    assert code == "NOT_FOUND"

    log = await api.data(
        "query($t: String, $id: String) { auditLog(resourceType: $t, resourceId: $id) "
        "{ edges { node { action actor { username } changes snapshot requestId } } } }",
        {"t": kind, "id": row_id},
        token=admin,
    )
    entries = {edge["node"]["action"]: edge["node"] for edge in log["auditLog"]["edges"]}
    assert set(entries) == {"create", "update", "delete"}
    assert entries["update"]["changes"][field] == [before[field], expected]
    assert entries["update"]["actor"] == {"username": "admin"}
    assert entries["delete"]["snapshot"][field] == expected
    assert entries["create"]["requestId"]
    mine = await api.data("{ auditLog { totalCount } }", token=people["mira"])
    assert mine["auditLog"]["totalCount"] == 0  # others see only what they did
