"""The client commands of `holdfast` (login, lock, unlock, locks, status, watch, hook …).

`add_commands` registers them on server/cli.py's parser. Every failure is one line on stderr,
`holdfast: CODE: message` when it carries a GraphQL error code; never a traceback.
"""

import argparse
import contextlib
import getpass
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from client import git, hook, watch
from client.api import Api, base_url
from client.config import Config, config_path
from client.errors import ApiError, CliError

EPILOG = """\
client commands talk to the server named by --server, $HOLDFAST_SERVER or `holdfast login`;
the token is $HOLDFAST_TOKEN or the one `holdfast login` stored. The project is --project,
$HOLDFAST_PROJECT, git config holdfast.project, the one given at login, else `default`.
Paths inside a git checkout are taken relative to the current directory.

exit codes:
  0    success (status: every path is free or yours)
  1    the server refused: CONFLICT, FORBIDDEN, NOT_FOUND (status: a path is locked by
       someone else; pre-commit hook: a staged file is locked by someone else)
  2    usage, bad input, not logged in / UNAUTHENTICATED, server unreachable, bad config
  130  interrupted (Ctrl-C)
"""

LOCK_FIELDS = "id path owner { username } branch comment acquiredAt expiresAt fencingToken"


@dataclass
class Session:
    """Where and as whom the command runs."""

    api: Api
    project: str
    config: Config


def _project(args: argparse.Namespace, config: Config) -> str:
    return (
        args.project
        or os.environ.get("HOLDFAST_PROJECT")
        or git.config_value("holdfast.project")
        or config.project
        or "default"
    )


def _server(args: argparse.Namespace, config: Config, hint: str) -> str:
    server = args.server or os.environ.get("HOLDFAST_SERVER") or config.server
    if not server:
        raise CliError(f"no server: {hint} (or set HOLDFAST_SERVER)")
    return server


def _session(args: argparse.Namespace) -> Session:
    config = Config.load()
    server = base_url(_server(args, config, "run `holdfast login --server URL`"))
    # The stored token goes only to the server it was made for.
    token = os.environ.get("HOLDFAST_TOKEN") or (config.token if config.server == server else None)
    if not token:
        raise CliError(f"not logged in to {server}: run `holdfast login --server {server}`")
    return Session(Api(server, token), _project(args, config), config)


def _me(api: Api) -> str:
    me = api.call("{ me { username } }")["me"]
    if me is None:
        raise ApiError("UNAUTHENTICATED", "the server did not accept the token")
    return me["username"]


def _line(lock: dict) -> str:
    """A lock as tab-separated fields, like `git lfs locks`."""
    fields = [
        lock["path"],
        lock["owner"]["username"],
        lock.get("branch") or "-",
        lock["acquiredAt"],
        lock.get("comment") or "",
    ]
    return "\t".join(fields).rstrip("\t")


def _print_json(value) -> None:
    print(json.dumps(value, indent=2))


# --- login, logout, whoami -------------------------------------------------------------------


def _ask_credentials(args: argparse.Namespace) -> tuple[str, str]:
    """Username from --username or a prompt; the password from getpass, or from the first
    line of stdin when stdin is not a terminal (scripts)."""
    if sys.stdin.isatty():
        try:
            username = args.username or input("Username: ").strip()
            password = getpass.getpass("Password: ")
        except EOFError:
            raise CliError("no credentials given") from None
    else:
        if not args.username:
            raise CliError("give --username when the password comes on stdin")
        username = args.username
        password = sys.stdin.readline().rstrip("\r\n")
    if not username or not password:
        raise CliError("a username and a password are needed (or use --token)")
    return username, password


def login(args: argparse.Namespace) -> int:
    config = Config.load()
    api = Api(_server(args, config, "give it: holdfast login --server URL"))
    if args.token:
        me = api.call("{ me { username } }", token=args.token)["me"]
        if me is None:
            raise ApiError("UNAUTHENTICATED", "the server did not accept the token")
        username, token, token_id = me["username"], args.token, None
    else:
        username, password = _ask_credentials(args)
        signed_in = api.call(
            """mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
                accessToken refreshToken user { username } } }""",
            {"u": username, "p": password},
        )["login"]
        access = signed_in["accessToken"]
        created = api.call(
            """mutation($name: String!) { createApiToken(name: $name) {
                token apiToken { id } } }""",
            {"name": f"holdfast CLI on {socket.gethostname()}"[:100]},
            token=access,
        )["createApiToken"]
        # The API token is what stays; the password session is not needed any more.
        _quietly(
            lambda: api.call(
                "mutation($r: String!) { logout(refreshToken: $r) }",
                {"r": signed_in["refreshToken"]},
                token=access,
            )
        )
        username = signed_in["user"]["username"]
        token, token_id = created["token"], created["apiToken"]["id"]
    if config.token_id and config.token not in (None, token) and config.server == api.server:
        _quietly(lambda: _revoke(api, config))  # replaced: do not leave the old one behind
    saved = Config(
        server=api.server,
        username=username,
        token=token,
        token_id=token_id,
        project=args.project or config.project,
    ).save()
    print(f"logged in to {api.server} as {username} (token saved in {saved})")
    return 0


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(CliError):
        action()


def _revoke(api: Api, config: Config) -> None:
    api.call(
        "mutation($id: ID!) { revokeApiToken(id: $id) }", {"id": config.token_id}, config.token
    )


def logout(args: argparse.Namespace) -> int:
    config = Config.load()
    if not config.token:
        print("not logged in")
        return 0
    if config.token_id:
        try:
            _revoke(Api(config.server), config)
        except ApiError as error:
            if error.code not in {"UNAUTHENTICATED", "NOT_FOUND"}:  # else: already gone
                raise
        note = "the API token is revoked"
    else:
        note = "the token given with --token stays valid on the server: revoke it there"
    server = config.server
    config.token = config.token_id = config.username = None
    config.save()
    print(f"logged out of {server}; {note}")
    return 0


def whoami(args: argparse.Namespace) -> int:
    session = _session(args)
    me = session.api.call("{ me { username role } }")["me"]
    if me is None:
        raise ApiError("UNAUTHENTICATED", "the server did not accept the token")
    print(f"user: {me['username']} ({me['role'].lower()})")
    print(f"server: {session.api.server}")
    print(f"project: {session.project}")
    return 0


# --- locks ------------------------------------------------------------------------------------


def lock(args: argparse.Namespace) -> int:
    session = _session(args)
    paths = git.repo_paths(args.paths)
    branch = args.branch if args.branch is not None else git.current_branch()
    locks = session.api.call(
        f"""mutation($project: String!, $paths: [String!]!, $comment: String, $branch: String) {{
            acquireLocks(project: $project, paths: $paths, comment: $comment, branch: $branch)
            {{ {LOCK_FIELDS} }} }}""",
        {"project": session.project, "paths": paths, "comment": args.comment, "branch": branch},
    )["acquireLocks"]
    if args.json:
        _print_json(locks)
    else:
        for held in locks:
            print(_line(held))
    return 0


def unlock(args: argparse.Namespace) -> int:
    if bool(args.paths) == bool(args.branch):
        raise CliError("usage: holdfast unlock PATH… [--force]  or  holdfast unlock --branch B")
    session = _session(args)
    paths = git.repo_paths(args.paths) if args.paths else []
    released = session.api.call(
        f"""mutation($project: String!, $paths: [String!]!, $force: Boolean, $branch: String) {{
            releaseLocks(project: $project, paths: $paths, force: $force, branch: $branch)
            {{ {LOCK_FIELDS} }} }}""",
        {"project": session.project, "paths": paths, "force": args.force, "branch": args.branch},
    )["releaseLocks"]
    if args.branch and not released:
        print(f"no locks of yours on branch {args.branch}")
    for held in released:
        print(f"unlocked\t{held['path']}\t{held['owner']['username']}")
    return 0


def locks(args: argparse.Namespace) -> int:
    session = _session(args)
    owner = None
    if args.mine:
        owner = _me(session.api)
    found, seq, after = [], None, None
    while True:
        page = session.api.call(
            f"""query($project: String!, $prefix: String, $owner: String, $branch: String,
                      $after: String) {{
                locks(project: $project, pathPrefix: $prefix, owner: $owner, branch: $branch,
                      first: 500, after: $after) {{
                    seq pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {LOCK_FIELDS} }} }}
                }} }}""",
            {
                "project": session.project,
                "prefix": args.prefix,
                "owner": owner,
                "branch": args.branch,
                "after": after,
            },
        )["locks"]
        seq = page["seq"] if seq is None else seq
        found.extend(edge["node"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    if args.json:
        _print_json({"project": session.project, "seq": seq, "locks": found})
    else:
        for held in found:
            print(_line(held))
    return 0


def status(args: argparse.Namespace) -> int:
    session = _session(args)
    paths = git.repo_paths(args.paths)
    data = session.api.call(
        f"""query($project: String!, $paths: [String!]!) {{ me {{ username }}
            lockStatus(project: $project, paths: $paths) {{ {LOCK_FIELDS} }} }}""",
        {"project": session.project, "paths": paths},
    )
    me = data["me"]["username"]
    entries = []
    for path, held in zip(paths, data["lockStatus"], strict=True):
        state = "free" if held is None else "locked"
        if held is not None and held["owner"]["username"] == me:
            state = "mine"
        entries.append({"path": path, "state": state, "lock": held})
    if args.json:
        _print_json(entries)
    else:
        for entry in entries:
            held = entry["lock"]
            print(f"{entry['state']}\t{entry['path'] if held is None else _line(held)}")
    return 1 if any(entry["state"] == "locked" for entry in entries) else 0


def request_release(args: argparse.Namespace) -> int:
    session = _session(args)
    [path] = git.repo_paths([args.path])
    event = session.api.call(
        """mutation($project: String!, $path: String!, $message: String) {
            requestLockRelease(project: $project, path: $path, message: $message) {
                seq lock { path owner { username } } } }""",
        {"project": session.project, "path": path, "message": args.message},
    )["requestLockRelease"]
    print(f"asked {event['lock']['owner']['username']} to release {event['lock']['path']}")
    return 0


def watch_command(args: argparse.Namespace) -> int:
    session = _session(args)
    return watch.run(session.api, session.project, args.prefix, args.since, args.json)


# --- git hook ---------------------------------------------------------------------------------


def hook_install(args: argparse.Namespace) -> int:
    path = hook.install(hook.parse_extensions(args.extensions), force=args.force)
    print(f"installed the Holdfast pre-commit hook: {path}")
    return 0


def hook_pre_commit(args: argparse.Namespace) -> int:
    extensions = hook.parse_extensions(args.extensions)
    try:
        return hook.pre_commit(lambda: _session(args), extensions)
    except CliError as error:
        error.message += " (to commit anyway: git commit --no-verify)"
        raise


# --- registration -----------------------------------------------------------------------------


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn every failure into one line on stderr and an exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except CliError as error:
            print(f"holdfast: {error.line()}", file=sys.stderr)
            return error.exit_code
        except KeyboardInterrupt:
            print("holdfast: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except Exception as error:  # a bug: still one line, never a traceback
            print(f"holdfast: unexpected error: {type(error).__name__}: {error}", file=sys.stderr)
            return 2

    return run


def add_commands(root: argparse.ArgumentParser, commands) -> None:
    """Register the client commands on `holdfast`'s parser and its subparsers."""
    root.epilog = EPILOG
    root.formatter_class = argparse.RawDescriptionHelpFormatter
    # Global options, accepted before or after the command name.
    common = argparse.ArgumentParser(add_help=False)
    for parser, default in [(root, None), (common, argparse.SUPPRESS)]:
        parser.add_argument(
            "--server", default=default, help="server URL (else $HOLDFAST_SERVER, the login's)"
        )
        parser.add_argument(
            "--project",
            default=default,
            help="project slug (else $HOLDFAST_PROJECT, git config holdfast.project, the "
            "login's, default)",
        )

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help)
        sub.set_defaults(handler=_guarded(handler))
        return sub

    sub = command("login", login, "sign in and store an API token")
    sub.add_argument("--username")
    sub.add_argument("--token", help="store this API token (hf_…) instead of signing in, for CI")
    sub.epilog = f"the token is stored in {config_path()} (mode 0600)"

    command("logout", logout, "revoke the stored API token and forget it")
    command("whoami", whoami, "show user, server and project")

    sub = command("lock", lock, "lock paths (all or nothing)")
    sub.add_argument("paths", nargs="+", metavar="PATH")
    sub.add_argument("--comment", "-m")
    sub.add_argument("--branch", help="default: the current git branch")
    sub.add_argument("--json", action="store_true")

    sub = command("unlock", unlock, "release your locks (an admin may --force)")
    sub.add_argument("paths", nargs="*", metavar="PATH")
    sub.add_argument("--force", action="store_true", help="release another's lock (admins)")
    sub.add_argument("--branch", help="release all of your locks on this branch (no PATH)")

    sub = command("locks", locks, "list held locks")
    sub.add_argument("--mine", action="store_true", help="only your locks")
    sub.add_argument("--prefix", help="only paths under this repo-relative prefix")
    sub.add_argument("--branch", help="only locks taken on this branch")
    sub.add_argument("--json", action="store_true")

    sub = command("status", status, "who holds these paths (exit 1 if someone else does)")
    sub.add_argument("paths", nargs="+", metavar="PATH")
    sub.add_argument("--json", action="store_true")

    sub = command("request-release", request_release, "ask the holder to release a path")
    sub.add_argument("path", metavar="PATH")
    sub.add_argument("--message", "-m")

    sub = command("watch", watch_command, "print lock events live (reconnects by itself)")
    sub.add_argument("--prefix", help="only paths under this repo-relative prefix")
    sub.add_argument("--since", type=int, help="start after this seq (default: now)")
    sub.add_argument("--json", action="store_true", help="one JSON object per line")

    hooks = commands.add_parser("hook", help="git hook that refuses to commit others' locks")
    actions = hooks.add_subparsers(dest="hook_command", required=True)
    install = actions.add_parser("install", help="write .git/hooks/pre-commit")
    install.add_argument("--extensions", default=hook.DEFAULT_EXTENSIONS)
    install.add_argument("--force", action="store_true", help="replace a hook not from Holdfast")
    install.set_defaults(handler=_guarded(hook_install))
    check = actions.add_parser("pre-commit", parents=[common], help="what the hook runs")
    check.add_argument("--extensions", default=hook.DEFAULT_EXTENSIONS)
    check.set_defaults(handler=_guarded(hook_pre_commit))
