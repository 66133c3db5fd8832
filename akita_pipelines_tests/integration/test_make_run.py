"""`make run` refuses to half-start a second stack."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _make_run(tmp_path: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "run", f"AKITA_HOME={tmp_path}", *variables],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_second_make_run_says_it_is_already_running(tmp_path: Path) -> None:
    (tmp_path / "run.pid").write_text(f"{os.getpid()}\n")  # a live `make run`
    done = _make_run(tmp_path, f"UI_PORT={_free_port()}", f"SANDBOX_PORT={_free_port()}")
    assert done.returncode != 0
    assert f"Akita is already running (make run, pid {os.getpid()})" in done.stdout
    assert not (tmp_path / "dagster_home").exists()  # nothing was started or set up


def test_make_run_names_a_port_another_program_holds(tmp_path: Path) -> None:
    (tmp_path / "run.pid").write_text("999999999\n")  # a stale file of a stopped run
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _make_run(tmp_path, f"UI_PORT={port}", f"SANDBOX_PORT={_free_port()}")
    assert done.returncode != 0
    assert f"port {port} on 127.0.0.1 is in use by another program" in done.stdout
    assert not (tmp_path / "dagster_home").exists()
