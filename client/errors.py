"""What the CLI reports as one line on stderr, and the exit code that goes with it."""

# Codes the server uses when it understood the request and said no.
REFUSED = {"CONFLICT", "FORBIDDEN", "NOT_FOUND"}


class CliError(Exception):
    """A failure on this side (usage, config, connection): `holdfast: <message>`, exit 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def line(self) -> str:
        return self.message


class ApiError(CliError):
    """An error with a GraphQL `extensions.code`: the server's, or the same check made here."""

    def __init__(self, code: str, message: str, extensions: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.extensions = extensions or {}
        self.exit_code = 1 if code in REFUSED else 2

    def line(self) -> str:
        return f"{self.code}: {self.message}"


class Unreachable(CliError):
    """The server could not be reached (or the connection broke)."""
