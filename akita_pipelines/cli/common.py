"""What the sub-commands share: the Akita database and plain-text tables."""

from __future__ import annotations

from typing import Any


def engine() -> Any:
    """The Akita database (``AKITA_DATABASE_URL``, else SQLite under ``.akita/``)."""
    from akita_pipelines.db.engine import make_engine

    return make_engine()


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """Rows as aligned text columns under a header line; None prints empty."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "never"
