"""What the CLI asks git: the checkout's root, the current branch, config, staged files."""

import os
import subprocess
from pathlib import Path

from client.errors import ApiError, CliError


def _git(*args: str, cwd: Path | None = None) -> str | None:
    """git's stdout without the final newline, or None when git fails or is missing."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed git commands, no shell
            ["git", *args],  # noqa: S607 - git from PATH, as the user runs it
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.removesuffix("\n")


def repo_root(cwd: Path | None = None) -> Path | None:
    """The top of the work tree around `cwd`, or None outside a checkout."""
    top = _git("rev-parse", "--show-toplevel", cwd=cwd)
    return Path(top) if top else None


def current_branch() -> str | None:
    """The checked-out branch; None when HEAD is detached or outside a checkout."""
    return _git("symbolic-ref", "--short", "-q", "HEAD") or None


def config_value(name: str) -> str | None:
    return _git("config", "--get", name) or None


def hooks_dir() -> Path:
    """Where git looks for hooks (honours core.hooksPath)."""
    found = _git("rev-parse", "--git-path", "hooks")
    if found is None:
        raise CliError("not inside a git checkout")
    return (Path.cwd() / found).resolve()


def staged_files() -> list[str]:
    """Repo-relative paths staged for the next commit: added, copied, modified, renamed or
    deleted."""
    out = _git("diff", "--cached", "--name-only", "--diff-filter=ACMRD", "-z")
    if out is None:
        raise CliError("cannot list the staged files (git diff --cached failed)")
    return [name for name in out.split("\0") if name]


def repo_paths(paths: list[str]) -> list[str]:
    """Inside a checkout, paths given relative to the current directory (or absolute) become
    relative to the checkout's root; outside one they are sent as given."""
    root = repo_root()
    if root is None:
        return paths
    cwd = Path.cwd().resolve()
    root = root.resolve()
    result = []
    for path in paths:
        full = os.path.normpath(os.path.join(cwd, path))
        relative = os.path.relpath(full, root)
        if (
            relative == os.curdir
            or relative == os.pardir
            or relative.startswith(os.pardir + os.sep)
        ):
            raise ApiError("BAD_USER_INPUT", f"path is outside the checkout {root}: {path}")
        result.append(relative.replace(os.sep, "/"))
    return result
