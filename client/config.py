"""The CLI's per-user config file: server URL, username, API token, default project.

`$HOLDFAST_CLI_CONFIG` names the file; else `$XDG_CONFIG_HOME/holdfast/config.json`, else
`~/.config/holdfast/config.json`. It holds a secret, so it is written atomically with mode 0600.
"""

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from client.errors import CliError


def config_path() -> Path:
    named = os.environ.get("HOLDFAST_CLI_CONFIG")
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "holdfast" / "config.json"


@dataclass
class Config:
    server: str | None = None
    username: str | None = None
    token: str | None = None
    token_id: str | None = None
    project: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> "Config":
        path = path or config_path()
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as error:
            raise CliError(f"bad config file {path}: {error}") from None
        if not isinstance(raw, dict):
            raise CliError(f"bad config file {path}: not a JSON object")
        known = {field.name for field in fields(cls)}
        values = {key: value for key, value in raw.items() if key in known}
        if any(value is not None and not isinstance(value, str) for value in values.values()):
            raise CliError(f"bad config file {path}: every value must be a string")
        return cls(**values)

    def save(self, path: Path | None = None) -> Path:
        """Write atomically (temp file + rename) with mode 0600."""
        path = path or config_path()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
            try:
                os.fchmod(handle, 0o600)
                with os.fdopen(handle, "w") as out:
                    json.dump(asdict(self), out, indent=2)
                    out.write("\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise CliError(f"cannot write config file {path}: {error}") from None
        return path
