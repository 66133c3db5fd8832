"""The rooms' import rules (README, Layout): Dagster only in defs/, SQL only in db/."""

from __future__ import annotations

import ast
from pathlib import Path

import akita_pipelines

PACKAGE = Path(akita_pipelines.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offenders(allowed: tuple[str, ...], banned: str) -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where.startswith(allowed):
            continue
        if any(name == banned or name.startswith(banned + ".") for name in _imports(path)):
            out.append(where)
    return out


def test_only_defs_import_dagster() -> None:
    assert _offenders(("defs/", "definitions.py"), "dagster") == []


def test_only_db_imports_the_schema() -> None:
    # Repositories own SQL; every other room asks one of them.
    assert _offenders(("db/",), "akita_pipelines.db.schema") == []


def test_the_rules_see_an_offender(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from akita_pipelines.db import schema\nimport dagster.core\n")
    assert {"akita_pipelines.db.schema", "dagster.core"} <= _imports(module)
