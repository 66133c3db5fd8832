"""A throwaway PostgreSQL server for tests: initdb + pg_ctl as an unprivileged user.

CI and the development machines run as root and ``initdb`` refuses root, so when we are root
the server runs as the ``postgres`` user (created if missing) in a folder it owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_USER = "postgres"


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {name} not found: install the postgresql package "
                           "(the Makefile's CI path does: apt-get install postgresql)")
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_USER], check=True)
    return ["runuser", "-u", PG_USER, "--", *cmd]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its admin URL (``postgresql+psycopg2://...:port/postgres``)."""
    root = Path(tempfile.mkdtemp(prefix="akita-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        uid = pwd.getpwnam(PG_USER).pw_uid if _user_exists() else None
        if uid is None:
            _as_user(["true"])
            uid = pwd.getpwnam(PG_USER).pw_uid
        os.chown(root, uid, -1)
    port = _free_port()
    subprocess.run(_as_user([_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "akita",
                             "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run(_as_user([_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l",
                             str(root / "log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://akita@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_user([_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _user_exists() -> bool:
    try:
        pwd.getpwnam(PG_USER)
        return True
    except KeyError:
        return False
