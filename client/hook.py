"""The git pre-commit hook: refuse to commit files that someone else has locked.

`holdfast hook install` writes `pre-commit` into git's hooks directory (`core.hooksPath` is
honoured). The hook runs this Python interpreter (`-P -m server.cli hook pre-commit`), so it
keeps working inside a virtualenv that is not on PATH; re-run `hook install` after moving it.
A hook that Holdfast did not write is left alone unless `--force` is given.

The check takes the staged files (added, copied, modified, renamed or deleted) whose extension
is in the list (case-insensitive; default `.uasset,.umap`), asks the server's `lockStatus` and
refuses the commit (exit 1) naming each file locked by someone else and its holder. Files you
hold yourself, free files and other extensions pass. A commit with no such file never contacts
the server.

Decision: when the check cannot be made (server unreachable, not logged in, token refused),
the commit is refused too (exit 2), with one line naming `git commit --no-verify` as the way
around. A hook that silently waved commits through whenever the server is down would let the
conflicting binary commits it exists to stop slip in unnoticed.
"""

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from client import git
from client.errors import CliError

DEFAULT_EXTENSIONS = ".uasset,.umap"
MARKER = "# holdfast pre-commit hook"
BATCH = 1000  # the server's most paths per lockStatus


def parse_extensions(value: str) -> tuple[str, ...]:
    """`.uasset, umap` → ('.uasset', '.umap'), lower case."""
    found = tuple(
        "." + part.strip().lstrip(".").lower() for part in value.split(",") if part.strip(". ")
    )
    if not found:
        raise CliError("give at least one extension, e.g. --extensions .uasset,.umap")
    return found


def script(extensions: tuple[str, ...]) -> str:
    command = [sys.executable, "-P", "-m", "server.cli", "hook", "pre-commit"]
    command += ["--extensions", ",".join(extensions)]
    return (
        "#!/bin/sh\n"
        f"{MARKER} (written by `holdfast hook install`)\n"
        "# Refuses to commit files someone else has locked; skip once: git commit --no-verify\n"
        f"exec {shlex.join(command)}\n"
    )


def install(extensions: tuple[str, ...], force: bool = False) -> Path:
    path = git.hooks_dir() / "pre-commit"
    if path.exists() and MARKER not in path.read_text(errors="replace") and not force:
        raise CliError(f"{path} exists and is not Holdfast's: use --force to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script(extensions))
        path.chmod(0o755)
    except OSError as error:
        raise CliError(f"cannot write {path}: {error}") from None
    return path


def pre_commit(session: Callable, extensions: tuple[str, ...]) -> int:
    """0 when the commit may go ahead, 1 when a staged file is locked by someone else."""
    files = [name for name in git.staged_files() if name.lower().endswith(extensions)]
    if not files:
        return 0
    current = session()
    blocked = []
    for start in range(0, len(files), BATCH):
        batch = files[start : start + BATCH]
        data = current.api.call(
            """query($project: String!, $paths: [String!]!) { me { username }
                lockStatus(project: $project, paths: $paths) { path owner { username } } }""",
            {"project": current.project, "paths": batch},
        )
        me = data["me"]["username"]
        blocked += [
            (path, held["owner"]["username"])
            for path, held in zip(batch, data["lockStatus"], strict=True)
            if held is not None and held["owner"]["username"] != me
        ]
    for path, holder in blocked:
        print(f"holdfast: {path} is locked by {holder}", file=sys.stderr)
    if blocked:
        print(
            "holdfast: commit refused: ask the holder to release (holdfast request-release "
            "PATH), or unstage the file",
            file=sys.stderr,
        )
        return 1
    return 0
