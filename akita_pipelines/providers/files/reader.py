"""Parsing one inbox file (CSV or .xlsx) into rows, validating all of them before any is used.

A file is imported whole or not at all: :func:`read_table` returns either every row or the
list of problems with their line numbers (physical lines for CSV, so an editor's line number
matches; sheet row numbers for Excel).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import IO, Any

from akita_pipelines.providers.mapping import as_datetime, as_text

MAX_PROBLEMS = 20  # enough to fix a file; the rest is counted


@dataclass
class Table:
    """A parsed file: ``(line, row)`` pairs, or the problems that reject it."""

    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, line: int, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"line {line}: {message}")

    def report(self) -> str:
        more = self.problem_count - len(self.problems)
        tail = f"; and {more} more" if more > 0 else ""
        return "; ".join(self.problems) + tail


@dataclass(frozen=True)
class Rules:
    """What each row must satisfy."""

    primary_key: str
    required: Sequence[str]
    timestamp: str | None = None
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    sheet: str | None = None


def _check_header(header: Sequence[str], rules: Rules, table: Table, line: int) -> bool:
    names = [h.strip() for h in header]
    twice = sorted({n for n in names if names.count(n) > 1 and n})
    if twice:
        table.problem(line, f"the header names {twice} more than once")
    missing = [c for c in rules.required if c not in names]
    if missing:
        table.problem(line, f"the header lacks the configured columns {missing} "
                            f"(it has {names[:30]})")
    return not twice and not missing


def _check_row(line: int, row: Mapping[str, str], rules: Rules, table: Table) -> None:
    if not (row.get(rules.primary_key) or "").strip():
        table.problem(line, f"empty {rules.primary_key!r}")
    if rules.timestamp:
        value = row.get(rules.timestamp) or ""
        try:
            as_datetime(value, rules.timestamp)
        except (TypeError, ValueError):
            table.problem(line, f"{rules.timestamp!r} is {value[:40]!r}, not a timestamp")


def _decoded_lines(data: IO[bytes], encoding: str, table: Table) -> Iterator[str]:
    """Decode line by line so an undecodable byte is reported with its line number."""
    decoder = codecs.getincrementaldecoder(encoding)()
    for number, raw in enumerate(data, start=1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as exc:
            bad = raw[exc.start:exc.start + 1].hex()
            table.problem(number, f"not valid {encoding.removesuffix('-sig')} (byte 0x{bad} at "
                                  f"column {exc.start + 1}): save the file as UTF-8 or set the "
                                  "stream's 'encoding'")
            decoder.reset()
            yield raw.decode(encoding, errors="replace")


def read_csv(data: IO[bytes], rules: Rules) -> Table:
    """Parse and validate a CSV file (a UTF-8 BOM, as Excel writes it, is dropped)."""
    table = Table()
    reader = csv.reader(_decoded_lines(data, rules.encoding, table), delimiter=rules.delimiter,
                        strict=True)
    try:
        header = next(reader, None)
        if header is None:
            table.problem(1, "the file is empty")
            return table
        header_ok = _check_header(header, rules, table, 1)
        names = [h.strip() for h in header]
        previous = reader.line_num
        for values in reader:
            line = previous + 1  # a quoted field may span lines: report where the row starts
            previous = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(names):
                table.problem(line, f"{len(values)} values for {len(names)} columns")
                continue
            row = dict(zip(names, values, strict=True))
            if header_ok:
                _check_row(line, row, rules, table)
            table.rows.append((line, row))
    except csv.Error as exc:
        table.problem(reader.line_num, f"unreadable CSV ({exc})")
    return table


def _cell(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return as_text(value, "cell") or ""


def read_xlsx(data: IO[bytes], rules: Rules) -> Table:
    """Parse and validate the first sheet (or ``sheet``) of an Excel workbook."""
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    table = Table()
    try:
        book = load_workbook(io.BytesIO(data.read()), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises a zoo of types on a damaged workbook
        table.problem(1, f"not a readable .xlsx workbook ({type(exc).__name__})")
        return table
    try:
        if rules.sheet is not None and rules.sheet not in book.sheetnames:
            table.problem(1, f"no sheet {rules.sheet!r}; the workbook has {book.sheetnames}")
            return table
        sheet = book[rules.sheet] if rules.sheet else book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            table.problem(1, "the sheet is empty")
            return table
        names = [_cell(h).strip() for h in header]
        while names and not names[-1]:
            names.pop()
        header_ok = _check_header(names, rules, table, 1)
        for line, values in enumerate(rows, start=2):
            cells = [_cell(v) for v in values]
            if not any(c.strip() for c in cells):
                continue
            extra = [c for c in cells[len(names):] if c.strip()]
            if extra:
                table.problem(line, f"values beyond the {len(names)} named columns")
                continue
            cells += [""] * (len(names) - len(cells))
            row = dict(zip(names, cells[:len(names)], strict=True))
            if header_ok:
                _check_row(line, row, rules, table)
            table.rows.append((line, row))
    except TypeError as exc:
        table.problem(1, f"unreadable cell ({exc})")
    finally:
        book.close()
    return table
