"""`holdfast hook install` in a real repository: `git commit` refuses files locked by someone
else, lets the rest through, and says how to get around it when the server is down."""

import os
import stat

from tests.client.conftest import one_error_line
from tests.conftest import free_port


def commit(cli, *files: str, message: str = "change"):
    for name in files:
        path = cli.cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write("x")
    assert cli.git("add", *files).returncode == 0
    return cli.git("commit", "-q", "-m", message)


def test_the_hook_refuses_files_locked_by_someone_else(people, repo):
    alice, bob = people("alice"), people("bob")
    # Unique names: the package shares one server.
    folder = f"Content/H{os.getpid()}{alice.name}"
    map_, mine, upper = f"{folder}/Map.umap", f"{folder}/Mine.uasset", f"{folder}/Big.UMAP"
    assert commit(alice, map_, mine, upper, "README.txt", message="assets").returncode == 0

    out = alice.ok("hook", "install")
    hook = repo / ".git" / "hooks" / "pre-commit"
    assert str(hook) in out
    assert hook.stat().st_mode & stat.S_IXUSR
    bob.ok("lock", map_, upper)
    alice.ok("lock", mine)

    refused = commit(alice, map_, "README.txt")
    assert refused.returncode != 0
    assert f"holdfast: {map_} is locked by {bob.name}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert alice.git("rev-list", "--count", "HEAD").stdout.strip() == "2"

    assert alice.git("reset", "-q").returncode == 0
    refused = commit(alice, upper)  # extensions match case-insensitively
    assert refused.returncode != 0
    assert f"{upper} is locked by {bob.name}" in refused.stderr
    assert alice.git("reset", "-q").returncode == 0
    assert alice.git("rm", "-q", "--cached", map_).returncode == 0  # deleting counts too
    refused = alice.git("commit", "-q", "-m", "delete")
    assert f"{map_} is locked by {bob.name}" in refused.stderr
    assert alice.git("reset", "-q").returncode == 0

    done = commit(alice, mine, "README.txt", message="mine and text")
    assert done.returncode == 0, done.stderr
    assert alice.git("rev-list", "--count", "HEAD").stdout.strip() == "3"

    # Bob holds it, so Bob may commit it.
    bob_done = commit(bob, map_, message="bob's map")
    assert bob_done.returncode == 0, bob_done.stderr


def test_an_unreachable_server_refuses_naming_no_verify(people, repo):
    alice = people("alice")
    alice.ok("hook", "install", "--extensions", "umap")
    dead = {"HOLDFAST_SERVER": f"http://127.0.0.1:{free_port()}", "HOLDFAST_TOKEN": "hf_x"}
    alice.env.update(dead)

    assert commit(alice, "notes.txt").returncode == 0  # nothing to check: no server needed
    refused = commit(alice, "Content/X.umap")
    assert refused.returncode != 0
    line = one_error_line(refused)
    assert "cannot reach" in line and "git commit --no-verify" in line
    assert alice.git("commit", "-q", "--no-verify", "-m", "anyway").returncode == 0


def test_install_honours_core_hooks_path_and_keeps_foreign_hooks(people, repo):
    alice = people("alice", login=False)
    foreign = repo / ".git" / "hooks" / "pre-commit"
    foreign.write_text("#!/bin/sh\necho mine\n")
    result = alice("hook", "install")
    assert result.returncode == 2
    assert "--force" in one_error_line(result)
    assert foreign.read_text() == "#!/bin/sh\necho mine\n"
    alice.ok("hook", "install", "--force")
    assert "holdfast pre-commit hook" in foreign.read_text()
    alice.ok("hook", "install")  # our own hook is replaced without --force

    assert alice.git("config", "core.hooksPath", ".githooks").returncode == 0
    alice.ok("hook", "install", cwd=repo)
    assert "holdfast pre-commit hook" in (repo / ".githooks" / "pre-commit").read_text()

    outside = alice("hook", "install", cwd=repo.parent)
    assert outside.returncode == 2
    assert "not inside a git checkout" in one_error_line(outside)
