"""Workers on two hosts, each a network namespace of the test's own, on one PostgreSQL server.

The test makes two namespaces joined to this one by veth pairs, starts a private server
(`.ci/postgres`) that listens on the two host-side addresses as well as loopback, and runs
two workers inside each namespace, connecting over TCP. Loopback inside a namespace is
its own, so the workers can reach the server only across the veth links, as from another
machine. It skips, saying why, where namespaces cannot be made (not root, no `ip`, a
container without CAP_NET_ADMIN) or there is no PostgreSQL server to start.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg import in_schema
from scale_helpers import check_exactly_once, job_files, orders, run

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def _sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


class Hosts:
    """Two namespaces, their veth links (10.213.N.1 here, .2 there) and the server's port."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        base = random.Random().randrange(0, 250, 2)
        self.names = [f"of-{tag}-{side}" for side in "ab"]
        self.links = [f"of{tag}{side}" for side in "ab"]
        self.nets = [f"10.213.{base + n}" for n in range(2)]
        self.port = _free_port()
        self.pg_dir = ""

    def up(self) -> None:
        for name, link, net in zip(self.names, self.links, self.nets, strict=True):
            there = ("ip", "netns", "exec", name)
            for command in (
                ("ip", "netns", "add", name),
                ("ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p"),
                ("ip", "link", "set", f"{link}p", "netns", name),
                ("ip", "addr", "add", f"{net}.1/24", "dev", link),
                ("ip", "link", "set", link, "up"),
                (*there, "ip", "addr", "add", f"{net}.2/24", "dev", f"{link}p"),
                (*there, "ip", "link", "set", f"{link}p", "up"),
                (*there, "ip", "link", "set", "lo", "up"),
            ):
                done = _sh(*command)
                if done.returncode:
                    raise OSError(f"{' '.join(command)}: {done.stderr.strip()}")

    def start_server(self) -> str:
        """Start the private server; the DSN of its `postgres` database on loopback."""
        listen = ",".join(["127.0.0.1", *(f"{net}.1" for net in self.nets)])
        env = {**os.environ, "PG_LISTEN": listen, "PG_TRUST_NET": "10.213.0.0/16"}
        started = subprocess.run(
            ["bash", "-c", f'source .ci/postgres && pg_start {self.port} >&2 && echo "$PG_DIR"'],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        self.pg_dir = started.stdout.strip()
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_from(self, host: int, schema: str) -> str:
        """The DSN a worker on namespace `host` uses: the server across its veth link."""
        return in_schema(f"postgresql://postgres@{self.nets[host]}.1:{self.port}/postgres", schema)

    def down(self) -> None:
        if self.pg_dir:
            subprocess.run(
                ["bash", "-c", "source .ci/postgres && PG_DIR=$1 pg_stop", "-", self.pg_dir],
                cwd=ROOT,
                check=False,
            )
        for name, link in zip(self.names, self.links, strict=True):
            _sh("ip", "netns", "del", name)  # takes its end of the veth pair with it
            _sh("ip", "link", "del", link)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's `ip`")
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL server binaries in {PG_BIN} to start a server on the links")
    pytest.importorskip("psycopg")
    made = Hosts()
    try:
        made.up()
    except OSError as exc:
        made.down()
        pytest.skip(f"cannot make network namespaces here: {exc}")
    try:
        yield made
    finally:
        made.down()


def test_workers_on_two_hosts_settle_over_tcp_exactly_once(tmp_path: Path, hosts: Hosts) -> None:
    import psycopg

    server = hosts.start_server()
    schema = f"hosts_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    here = in_schema(server, schema)
    reach_loopback = (
        f"import socket; socket.create_connection(('127.0.0.1', {hosts.port}), timeout=2)"
    )
    inside = _sh("ip", "netns", "exec", hosts.names[0], sys.executable, "-c", reach_loopback)
    assert inside.returncode != 0, "a namespace reached this host's loopback: not another host"
    intents = orders(here)
    jobs = job_files(tmp_path, intents, seed=3, workers=4)
    on = [0, 0, 1, 1]  # two workers per host
    targets = [hosts.dsn_from(host, schema) for host in on]
    prefixes = [["ip", "netns", "exec", hosts.names[host]] for host in on]
    outcomes = run(tmp_path, jobs, targets, prefixes)
    check_exactly_once(here, intents, outcomes)
