"""Every error leaves with `extensions.code`; anything unexpected is masked and logged.

Codes: the domain's (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, CONFLICT,
RATE_LIMITED), GRAPHQL_PARSE_FAILED and GRAPHQL_VALIDATION_FAILED for documents that cannot run,
BAD_USER_INPUT for variables that do not fit, and INTERNAL_SERVER_ERROR with a `requestId`.
"""

import logging

from graphql import GraphQLError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from domain.errors import DomainError

logger = logging.getLogger("holdfast.graphql")

INTERNAL_MESSAGE = "Internal server error"


OPERATION_ERRORS = CannotGetOperationTypeError | InvalidOperationTypeError


def is_expected(error: GraphQLError) -> bool:
    """Domain errors and GraphQL's own (syntax, validation, variables, an operation the
    transport does not run) are the client's to fix. So is a value a scalar refuses: outside
    resolvers (no path), its ValueError is the cause of a validation or variable error."""
    original = error.original_error
    return (
        original is None
        or isinstance(original, DomainError | GraphQLError | OPERATION_ERRORS)
        or (error.path is None and isinstance(original, ValueError | TypeError))
    )


def log_unexpected(errors: list[GraphQLError], request_id: str | None) -> None:
    """Log what will be masked, with the request id; never the query (it may hold secrets)."""
    for error in errors:
        if not is_expected(error):
            original = error.original_error
            logger.error(
                "request %s: %s at %s",
                request_id,
                type(original).__name__,
                ".".join(str(part) for part in error.path or ()) or "-",
                exc_info=(type(original), original, original.__traceback__),
            )


def shaped(error: GraphQLError, phase: str, request_id: str | None) -> GraphQLError:
    """The error as clients get it: with its code, and masked unless the client can act."""
    original = error.original_error
    if isinstance(original, DomainError):
        extensions = {"code": original.code, **original.extensions}
        message = original.message
    elif isinstance(original, InvalidOperationTypeError):
        extensions = {"code": "BAD_USER_INPUT"}
        message = original.as_http_error_reason("this transport")
    elif isinstance(original, CannotGetOperationTypeError):
        extensions = {"code": "BAD_USER_INPUT"}
        message = original.as_http_error_reason()
    elif is_expected(error) and (error.path is None or phase != "execute"):
        extensions = {**(error.extensions or {})}
        extensions.setdefault("code", PHASE_CODES.get(phase, "BAD_USER_INPUT"))
        message = error.message
    else:
        extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        message = INTERNAL_MESSAGE
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


PHASE_CODES = {"parse": "GRAPHQL_PARSE_FAILED", "validate": "GRAPHQL_VALIDATION_FAILED"}
