"""Loading the code location reads; it never writes (no .akita/, no akita.db)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_importing_the_code_location_creates_no_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AKITA_HOME", "AKITA_DATABASE_URL")}
    done = subprocess.run(
        [sys.executable, "-c", "from akita_pipelines.definitions import defs; "
                               "print(len(list(defs.assets or [])))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []
