"""A throwaway MariaDB server for tests: mariadb-install-db + mariadbd as an unprivileged user.

Like the PostgreSQL helper (pg.py): CI and the development machines run as root, and mariadbd
refuses to run as root without ``--user``; when we are root the server runs as the ``mysql``
user (created if missing) in a folder it owns, on its own socket and a free TCP port, so a
MariaDB or MySQL already listening on 3306 is never touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARIADB_USER = "mysql"
_SEARCH = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


def _bin(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or next(
            (f"{d}/{name}" for d in _SEARCH if os.access(f"{d}/{name}", os.X_OK)), None)
        if found:
            return found
    raise RuntimeError(f"MariaDB's {names[0]} not found: run `make system-deps` (it installs "
                       "Debian's mariadb-server package when missing)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(MARIADB_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", MARIADB_USER], check=True)
    return MARIADB_USER


def _wait_ready(sock: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mariadbd exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        if sock.exists():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(sock))
                    return
                except OSError:
                    pass
        time.sleep(0.1)
    raise RuntimeError(f"mariadbd did not accept connections within 60 s: "
                       f"{log.read_text(errors='replace')[-2000:]}")


@contextmanager
def mariadb_server() -> Iterator[str]:
    """Start a server; yield its admin URL (``mysql+pymysql://root@127.0.0.1:port/``).

    ``root`` has no password and may log in from 127.0.0.1 only: the server listens on
    nothing else and lives as long as the test session.
    """
    install_db = _bin("mariadb-install-db", "mysql_install_db")
    mariadbd = _bin("mariadbd", "mysqld")
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="akita-mariadb-"))
    data, sock, log = root / "data", root / "mariadb.sock", root / "error.log"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    as_user = [f"--user={user}"] if user else []
    subprocess.run([install_db, "--no-defaults", f"--datadir={data}", *as_user,
                    "--auth-root-authentication-method=normal", "--skip-test-db",
                    "--skip-name-resolve"], check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={data}", *as_user, f"--socket={sock}",
         f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={root / 'mariadbd.pid'}",
         f"--log-error={log}", "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0",
         "--innodb-doublewrite=0", "--skip-log-bin", "--max-connections=200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(sock, proc, log)
        yield f"mysql+pymysql://root@127.0.0.1:{port}/"
    finally:
        # Killed, not shut down: its data is deleted next, and a clean InnoDB shutdown takes
        # seconds (like pg.py's ``-m immediate``).
        proc.kill()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)
