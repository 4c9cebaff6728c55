"""`holdfast watch` follows lock events across a server restart on the same port: every seq
exactly once, in order; Ctrl-C ends it with one line."""

import json
import signal
import subprocess
import sys
import threading
import time

from tests.client.conftest import Cli, Gql
from tests.conftest import ADMIN_PASSWORD, free_port, start_server, stop_server


class Lines:
    """Collects a pipe's lines in a thread."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe) -> None:
        for line in pipe:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            assert time.monotonic() < deadline, self.lines
            time.sleep(0.05)
        return self.lines


def lock(gql: Gql, path: str) -> None:
    gql.data(
        'mutation($p: String!) { acquireLock(project: "default", path: $p) { id } }', {"p": path}
    )


def unlock(gql: Gql, path: str) -> None:
    gql.data(
        'mutation($p: String!) { releaseLock(project: "default", path: $p) { id } }', {"p": path}
    )


def test_watch_resumes_after_a_restart_with_every_event_once(settings, tmp_path, repo):
    port = free_port()
    first = start_server(settings, tmp_path / "first.log", port=port)
    replica = None
    try:
        admin = Gql(first.url)
        admin.sign_in("admin", ADMIN_PASSWORD)
        admin.create_user("mira")
        mira = Cli("mira", tmp_path / "mira.json", repo, first.url)
        mira.login()
        mira_gql = Gql(first.url, json.loads(mira.config.read_text())["token"])
        lock(mira_gql, "Content/Before.uasset")  # seq 1: before watching, so never printed

        watch = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "watch", "--json"],
            cwd=repo,
            env=mira.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = Lines(watch.stdout), Lines(watch.stderr)
        try:
            err.wait_for(lambda lines: lines == ["holdfast: watching project default after seq 1"])
            lock(mira_gql, "Content/A.uasset")  # seq 2
            out.wait_for(lambda lines: len(lines) >= 1)

            stop_server(first)
            err.wait_for(lambda lines: any("reconnecting" in line for line in lines))
            # While the watched server is down, changes go through another process.
            replica = start_server(settings, tmp_path / "replica.log")
            other = Gql(replica.url, mira_gql.token)
            unlock(other, "Content/A.uasset")  # seq 3
            lock(other, "Content/B.umap")  # seq 4
            stop_server(replica)
            replica = None

            first = start_server(settings, tmp_path / "again.log", port=port)
            lock(mira_gql, "Content/C.umap")  # seq 5, maybe before the watch is back
            err.wait_for(lambda lines: any("reconnected" in line for line in lines))
            unlock(mira_gql, "Content/B.umap")  # seq 6, live
            out.wait_for(lambda lines: len(lines) >= 5)
            time.sleep(0.5)  # a duplicate would show up now

            events = [json.loads(line) for line in out.lines]
            assert [(e["seq"], e["kind"], e["lock"]["path"]) for e in events] == [
                (2, "ACQUIRED", "Content/A.uasset"),
                (3, "RELEASED", "Content/A.uasset"),
                (4, "ACQUIRED", "Content/B.umap"),
                (5, "ACQUIRED", "Content/C.umap"),
                (6, "RELEASED", "Content/B.umap"),
            ]
            assert events[0]["actor"]["username"] == "mira"
        finally:
            watch.send_signal(signal.SIGINT)
            assert watch.wait(timeout=10) == 130
            out.thread.join(5)
            err.thread.join(5)
        assert "Traceback" not in "\n".join(err.lines)
        assert err.lines[-1] == "holdfast: interrupted"
    finally:
        if replica is not None:
            stop_server(replica)
        stop_server(first)


def test_watch_prints_tab_separated_lines_and_filters_by_prefix(settings, tmp_path, repo):
    server = start_server(settings, tmp_path / "server.log")
    try:
        admin = Gql(server.url)
        admin.sign_in("admin", ADMIN_PASSWORD)
        admin.create_user("noor")
        noor = Cli("noor", tmp_path / "noor.json", repo, server.url)
        noor.login()
        noor_gql = Gql(server.url, json.loads(noor.config.read_text())["token"])
        lock(noor_gql, "Content/Maps/Old.umap")  # seq 1
        lock(noor_gql, "Config/Skip.ini")  # seq 2
        watch = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "watch", "--prefix", "Content/", "--since", "0"],
            cwd=repo,
            env=noor.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out = Lines(watch.stdout)
        try:
            out.wait_for(lambda lines: len(lines) >= 1)
            admin.data(
                'mutation { requestLockRelease(project: "default", path: "Content/Maps/Old.umap",'
                ' message: "please") { seq } }'
            )
            out.wait_for(lambda lines: len(lines) >= 2)
        finally:
            watch.send_signal(signal.SIGINT)
            watch.wait(timeout=10)
        assert out.lines == [
            "1\tACQUIRED\tContent/Maps/Old.umap\tnoor\tnoor",
            "3\tRELEASE_REQUESTED\tContent/Maps/Old.umap\tnoor\tadmin\tplease",
        ]
    finally:
        stop_server(server)
