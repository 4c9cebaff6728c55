"""Lock paths: one spelling on the server, whatever the client's platform."""

import re

from db.locks import MAX_PATH_LENGTH
from domain.errors import BadUserInput

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize_path(raw: str, field: str = "path") -> str:
    """`\\`→`/`, no leading `./`, `//` and `/./` collapsed, no trailing `/`.

    Absolute paths (`/x`, `C:\\x`, `\\\\server\\share`), `..` segments, control characters and
    empty paths are BAD_USER_INPUT.
    """
    path = raw.replace("\\", "/")
    if _CONTROL.search(path):
        raise BadUserInput(f"{field} contains a control character", field=field, path=raw)
    if path.startswith("/") or _DRIVE.match(path):
        raise BadUserInput(
            f"{field} must be relative to the repository root, not absolute: {raw!r}",
            field=field,
            path=raw,
        )
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    if ".." in segments:
        raise BadUserInput(f"{field} must not contain '..': {raw!r}", field=field, path=raw)
    normalized = "/".join(segments)
    if not normalized:
        raise BadUserInput(f"{field} is empty", field=field, path=raw)
    if max(len(normalized), len(normalized.lower())) > MAX_PATH_LENGTH:
        raise BadUserInput(
            f"{field} is longer than {MAX_PATH_LENGTH} characters", field=field, path=raw[:100]
        )
    return normalized


def normalize_prefix(raw: str) -> str:
    """A path prefix: normalised like a path, but a trailing `/` is kept (a folder)."""
    if raw in ("", "/", "./"):
        return ""
    prefix = normalize_path(raw, field="pathPrefix")
    return prefix + "/" if raw.replace("\\", "/").endswith("/") else prefix


def path_key(path: str, case_sensitive: bool) -> str:
    """What uniqueness is decided on: lower-cased unless the project is case-sensitive."""
    return path if case_sensitive else path.lower()
