"""`holdfast login/logout/whoami/lock/unlock/locks/status/request-release` as a subprocess in a
real git checkout against a real server: what it prints, its exit codes, and what is left on
the server."""

import json
import stat

from tests.client.conftest import Cli, Gql, held, one_error_line, unique_dir
from tests.conftest import USER_PASSWORD, free_port

HISTORY = """query($since: Long) { lockHistory(project: "default", since: $since) {
    seq kind message actor { username } lock { path owner { username } } } }"""


def test_login_with_a_password_stores_an_api_token_not_the_password(people, cli_server):
    alice = people("alice", login=False)
    result = alice(
        "login", "--server", cli_server.url + "/graphql", "--username", alice.name,
        input=USER_PASSWORD + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"as {alice.name}" in result.stdout
    assert stat.S_IMODE(alice.config.stat().st_mode) == 0o600
    text = alice.config.read_text()
    assert USER_PASSWORD not in text
    stored = json.loads(text)
    assert stored["token"].startswith("hf_")
    assert stored["server"] == cli_server.url
    me = Gql(cli_server.url, stored["token"]).data("{ me { username } apiTokens { name } }")
    assert me["me"]["username"] == alice.name
    [token] = me["apiTokens"]
    assert token["name"].startswith("holdfast CLI on ")

    out = alice.ok("whoami")
    assert out.splitlines() == [
        f"user: {alice.name} (user)",
        f"server: {cli_server.url}",
        "project: default",
    ]


def test_a_wrong_password_is_one_line_and_stores_nothing(people, cli_server):
    alice = people("alice", login=False)
    result = alice("login", "--server", cli_server.url, "--username", alice.name, input="nope\n")
    assert result.returncode == 2
    assert one_error_line(result).startswith("holdfast: UNAUTHENTICATED: ")
    assert not alice.config.exists()


def test_login_with_a_token_and_logout_revokes_the_stored_token(people, cli_server):
    bob = people("bob", login=False)
    access = Gql(cli_server.url).login(bob.name, USER_PASSWORD)["accessToken"]
    secret = Gql(cli_server.url, access).data('mutation { createApiToken(name: "ci") { token } }')[
        "createApiToken"
    ]["token"]
    assert bob.ok("login", "--server", cli_server.url, "--token", secret).startswith("logged in")
    assert json.loads(bob.config.read_text())["token"] == secret
    assert bob.ok("whoami").startswith(f"user: {bob.name}")

    bad = bob("login", "--server", cli_server.url, "--token", "hf_not-a-token")
    assert bad.returncode == 2
    assert one_error_line(bad).startswith("holdfast: UNAUTHENTICATED: ")

    bob.login()  # with the password: this token is made by the CLI and revoked by logout
    token = json.loads(bob.config.read_text())["token"]
    assert token != secret
    assert "revoked" in bob.ok("logout")
    assert json.loads(bob.config.read_text())["token"] is None
    gone = Gql(cli_server.url, token).post("{ me { username } }")
    assert gone.get("errors") or gone["data"]["me"] is None
    after = bob("whoami")
    assert after.returncode == 2
    assert "not logged in" in one_error_line(after)


def test_lock_takes_the_git_branch_and_comment(people, cli_server, admin_gql):
    alice = people("alice")
    alice.git("checkout", "-q", "-b", "feature/arena")
    path = f"{unique_dir()}/Arena.umap"
    out = alice.ok("lock", path, "--comment", "lighting pass")
    assert out.split("\t")[:3] == [path, alice.name, "feature/arena"]
    assert held(admin_gql, path) == {
        "path": path,
        "owner": {"username": alice.name},
        "branch": "feature/arena",
        "comment": "lighting pass",
    }
    other = f"{unique_dir()}/B.uasset"
    alice.ok("lock", other, "--branch", "release")
    assert held(admin_gql, other)["branch"] == "release"


def test_paths_are_taken_relative_to_the_current_directory(people, admin_gql, repo):
    alice = people("alice")
    folder = unique_dir()
    maps = repo / folder / "Maps"
    maps.mkdir(parents=True)
    out = alice.ok("lock", "Arena.umap", "../Hero.uasset", str(maps / "Abs.umap"), cwd=maps)
    expected = [f"{folder}/Maps/Arena.umap", f"{folder}/Hero.uasset", f"{folder}/Maps/Abs.umap"]
    assert [line.split("\t")[0] for line in out.splitlines()] == expected
    for path in expected:
        assert held(admin_gql, path)["owner"]["username"] == alice.name

    outside = alice("lock", "../x.uasset")
    assert outside.returncode == 2
    assert one_error_line(outside).startswith("holdfast: BAD_USER_INPUT: ")


def test_bad_input_from_the_server_is_one_line(people, tmp_path):
    alice = people("alice")
    # Outside a checkout paths go to the server as given, and it refuses '..'.
    result = alice("lock", "../x.uasset", cwd=tmp_path)
    assert result.returncode == 2
    assert one_error_line(result).startswith("holdfast: BAD_USER_INPUT: ")
    assert "'..'" in result.stderr


def test_a_conflict_names_the_holder_and_takes_nothing(people, admin_gql):
    alice, bob = people("alice"), people("bob")
    taken, free = f"{unique_dir()}/A.uasset", f"{unique_dir()}/Free.uasset"
    bob.ok("lock", taken)
    result = alice("lock", free, taken)
    assert result.returncode == 1
    assert one_error_line(result) == (
        f"holdfast: CONFLICT: already locked: {taken} (held by {bob.name})"
    )
    assert held(admin_gql, free) is None  # all or nothing
    assert held(admin_gql, taken)["owner"]["username"] == bob.name


def test_locks_lists_mine_by_prefix_and_as_json(people):
    alice, bob = people("alice"), people("bob")
    folder = unique_dir()
    alice.ok("lock", f"{folder}/Maps/A.umap", f"{folder}/Chars/B.uasset")
    bob.ok("lock", f"{folder}/Maps/C.umap")

    def paths(out: str) -> list[str]:
        return [line.split("\t")[0] for line in out.splitlines()]

    assert paths(alice.ok("locks", "--prefix", folder)) == [
        f"{folder}/Maps/A.umap",
        f"{folder}/Chars/B.uasset",
        f"{folder}/Maps/C.umap",
    ]
    assert paths(alice.ok("locks", "--mine")) == [
        f"{folder}/Maps/A.umap",
        f"{folder}/Chars/B.uasset",
    ]
    assert paths(bob.ok("locks", "--mine", "--prefix", f"{folder}/Maps/")) == [
        f"{folder}/Maps/C.umap"
    ]

    listed = json.loads(alice.ok("locks", "--prefix", f"{folder}/Maps/", "--json"))
    assert listed["project"] == "default"
    assert listed["seq"] >= 3
    assert [(lock["path"], lock["owner"]["username"]) for lock in listed["locks"]] == [
        (f"{folder}/Maps/A.umap", alice.name),
        (f"{folder}/Maps/C.umap", bob.name),
    ]


def test_status_exit_codes_and_json(people):
    alice, bob = people("alice"), people("bob")
    folder = unique_dir()
    mine, theirs, free = f"{folder}/Mine.uasset", f"{folder}/Theirs.uasset", f"{folder}/F.umap"
    alice.ok("lock", mine)
    bob.ok("lock", theirs, "--comment", "rigging")

    result = alice("status", mine, free)
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[:3] for line in result.stdout.splitlines()] == [
        ["mine", mine, alice.name],
        ["free", free],
    ]

    result = alice("status", free, theirs)
    assert result.returncode == 1
    assert result.stdout.splitlines()[1].split("\t")[:3] == ["locked", theirs, bob.name]

    result = alice("status", mine, theirs, free, "--json")
    assert result.returncode == 1
    entries = json.loads(result.stdout)
    assert [(e["path"], e["state"]) for e in entries] == [
        (mine, "mine"),
        (theirs, "locked"),
        (free, "free"),
    ]
    assert entries[1]["lock"]["comment"] == "rigging"
    assert entries[2]["lock"] is None


def test_unlock_and_force_unlock(people, admin_gql):
    alice, bob, boss = people("alice"), people("bob"), people("boss", role="ADMIN")
    folder = unique_dir()
    a, b = f"{folder}/A.uasset", f"{folder}/B.uasset"
    alice.ok("lock", a)
    bob.ok("lock", b)

    assert alice.ok("unlock", a).split("\t")[:2] == ["unlocked", a]
    assert held(admin_gql, a) is None

    refused = alice("unlock", b)
    assert refused.returncode == 1
    assert one_error_line(refused).startswith("holdfast: FORBIDDEN: ")
    refused = alice("unlock", b, "--force")
    assert refused.returncode == 1
    assert one_error_line(refused).startswith("holdfast: FORBIDDEN: ")
    assert held(admin_gql, b)["owner"]["username"] == bob.name

    assert boss.ok("unlock", b, "--force").strip().split("\t") == ["unlocked", b, bob.name]
    assert held(admin_gql, b) is None
    history = admin_gql.data(HISTORY)["lockHistory"]
    assert [(e["kind"], e["actor"]["username"]) for e in history if e["lock"]["path"] == b][-1] == (
        "FORCE_RELEASED",
        boss.name,
    )

    missing = alice("unlock", a)
    assert missing.returncode == 1
    assert one_error_line(missing).startswith("holdfast: NOT_FOUND: ")

    usage = alice("unlock")
    assert usage.returncode == 2
    one_error_line(usage)


def test_unlock_branch_releases_my_locks_on_that_branch(people, admin_gql):
    alice, bob = people("alice"), people("bob")
    folder = unique_dir()
    alice.ok("lock", f"{folder}/A.umap", f"{folder}/B.umap", "--branch", "feature/x")
    alice.ok("lock", f"{folder}/C.umap", "--branch", "main")
    bob.ok("lock", f"{folder}/D.umap", "--branch", "feature/x")

    out = alice.ok("unlock", "--branch", "feature/x")
    assert sorted(line.split("\t")[1] for line in out.splitlines()) == [
        f"{folder}/A.umap",
        f"{folder}/B.umap",
    ]
    assert held(admin_gql, f"{folder}/A.umap") is None
    assert held(admin_gql, f"{folder}/C.umap")["owner"]["username"] == alice.name
    assert held(admin_gql, f"{folder}/D.umap")["owner"]["username"] == bob.name
    assert "no locks of yours" in alice.ok("unlock", "--branch", "feature/x")


def test_request_release_reaches_the_holder(people, cli_server):
    alice, bob = people("alice"), people("bob")
    path = f"{unique_dir()}/Hero.uasset"
    bob.ok("lock", path)
    out = alice.ok("request-release", path, "--message", "need it for the demo")
    assert out.strip() == f"asked {bob.name} to release {path}"

    token = json.loads(bob.config.read_text())["token"]
    history = Gql(cli_server.url, token).data(HISTORY)["lockHistory"]
    [event] = [e for e in history if e["lock"]["path"] == path and e["kind"] == "RELEASE_REQUESTED"]
    assert event["actor"]["username"] == alice.name
    assert event["lock"]["owner"]["username"] == bob.name
    assert event["message"] == "need it for the demo"

    free = alice("request-release", f"{unique_dir()}/Nothing.uasset")
    assert free.returncode == 1
    assert one_error_line(free).startswith("holdfast: NOT_FOUND: ")


def test_project_comes_from_option_env_git_config_then_default(people, admin_gql):
    admin_gql.data('mutation { createProject(input: {slug: "game", name: "Game"}) { slug } }')
    alice = people("alice")
    path = f"{unique_dir()}/P.uasset"
    alice.git("config", "holdfast.project", "game")
    alice.ok("lock", path)
    assert held(admin_gql, path, project="game")["owner"]["username"] == alice.name
    assert held(admin_gql, path) is None
    assert "project: game" in alice.ok("whoami")
    assert "project: default" in alice.ok("whoami", HOLDFAST_PROJECT="default")
    assert "project: default" in alice.ok("--project", "default", "whoami")
    assert "project: default" in alice.ok("whoami", "--project", "default")

    missing = alice("lock", path, "--project", "no-such-project")
    assert missing.returncode == 1
    assert one_error_line(missing).startswith("holdfast: NOT_FOUND: ")


def test_unreachable_server_bad_config_and_no_login_are_one_line(people, tmp_path):
    alice = people("alice")
    dead = f"http://127.0.0.1:{free_port()}"
    result = alice("locks", "--server", dead, HOLDFAST_TOKEN="hf_x")
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"holdfast: cannot reach {dead}/graphql: ")
    result = alice("login", "--server", dead, "--username", "x", input="pw\n")
    assert result.returncode == 2
    one_error_line(result)

    # The stored token is never sent to another server.
    result = alice("locks", "--server", dead)
    assert result.returncode == 2
    assert "not logged in" in one_error_line(result)

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = alice("locks", HOLDFAST_CLI_CONFIG=str(broken))
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"holdfast: bad config file {broken}")

    nobody = Cli("nobody", tmp_path / "none.json", alice.cwd, alice.server)
    result = nobody("lock", "A.uasset")
    assert result.returncode == 2
    assert "login" in one_error_line(result)
