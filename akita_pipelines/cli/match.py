"""``akita match accounts|contacts``: the matcher over any CSV export, no database involved."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import cast

import click

OUTPUT_COLUMNS = ("entity_id", "match_rule", "match_score", "review_candidate")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV export; a clear error for a broken quote or a row whose
    field count differs from the header's (a stray quote swallows the lines after it)."""
    rows: list[dict[str, str]] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, [])
            for values in reader:
                line = reader.line_num
                if not values:
                    continue  # a blank line
                if len(values) != len(header):
                    raise click.ClickException(
                        f"{path}: the row ending on line {line} has {len(values)} fields, "
                        f"the header {len(header)} (a broken quote, or a comma inside an "
                        f"unquoted value?)")
                rows.append(dict(zip(header, values, strict=True)))
        except csv.Error as exc:
            raise click.ClickException(f"{path}: not a readable CSV at line {reader.line_num}: "
                                       f"{exc} (an unclosed or stray quote?)") from None
        except UnicodeDecodeError:
            raise click.ClickException(f"{path}: not UTF-8 text") from None
    return header, rows


@click.command("match")
@click.argument("kind", type=click.Choice(["accounts", "contacts"]))
@click.option("--input", "input_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CSV export; one or several sources (a `source` column tells them apart).")
@click.option("--output", "output_path", default=None,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Where to write the rows with entity_id, match_rule, match_score.")
@click.option("--columns", default=None, metavar="ATTR=COLUMN,...",
              help="Which column holds each attribute, e.g. name=Company,phone=Tel. "
                   "Unmapped attributes are read from columns of the same name.")
@click.option("--source-priority", default="", metavar="SOURCE,...",
              help="Survivorship: sources whose values win, best first.")
@click.option("--explain", "explain_rows", default=None, metavar="ROW,ROW",
              help="Explain why two rows (1-based data rows) are or are not the same entity.")
def match(kind: str, input_path: Path, output_path: Path | None, columns: str | None,
          source_priority: str, explain_rows: str | None) -> None:
    """Match every row of a CSV to an entity and write each row's entity id, rule and score.

    Rows sharing an entity_id are the same company (accounts) or person (contacts).
    """
    from akita_pipelines.processing.match import (
        ATTRIBUTES,
        explain,
        match_records,
        parse_columns,
        to_records,
    )
    from akita_pipelines.processing.resolve import Kind

    typed_kind = cast(Kind, kind)
    try:
        mapping = parse_columns(columns, typed_kind)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--columns") from None
    header, rows = read_csv(input_path)
    if (typed_kind == "accounts" and "domain" in header and "website" not in mapping
            and "website" not in header):
        mapping["website"] = "domain"  # a bare domain is what the matcher reads of a website
    unread = [c for c in header if c not in mapping.values()
              and c not in ATTRIBUTES[typed_kind] and c not in OUTPUT_COLUMNS]
    if unread:
        click.echo(f"note: column(s) not read: {', '.join(unread)} (map them with --columns "
                   f"ATTR=COLUMN; attributes: {', '.join(ATTRIBUTES[typed_kind])})", err=True)
    missing = sorted(c for c in mapping.values() if c not in header)
    if missing:
        raise click.ClickException(f"{input_path}: no column(s) {', '.join(missing)}; "
                                   f"the file has {', '.join(header) or 'no header'}")
    known = set(mapping) | {a for a in ATTRIBUTES[typed_kind] if a in header}
    if not known - {"id", "source", "updated_at"}:
        raise click.ClickException(
            f"{input_path}: no column to match {kind} on; map some with --columns "
            f"({', '.join(ATTRIBUTES[typed_kind])})")
    records = to_records(typed_kind, rows, mapping)
    if explain_rows is not None:
        try:
            first, second = (int(x) - 1 for x in explain_rows.split(","))
            pair = records[first], records[second]
        except (ValueError, IndexError):
            raise click.BadParameter(f"expected two row numbers 1..{len(rows)}, e.g. 3,17",
                                     param_hint="--explain") from None
        for line in explain(typed_kind, *pair):
            click.echo(line)
        if output_path is None:
            return
    if output_path is None:
        raise click.UsageError("--output is required (unless only --explain is given)")
    priority = [s.strip() for s in source_priority.split(",") if s.strip()]
    results = match_records(typed_kind, records, source_priority=priority)
    extra = [c for c in OUTPUT_COLUMNS if c not in header]
    if not output_path.parent.is_dir():
        raise click.BadParameter(f"folder {output_path.parent} does not exist",
                                 param_hint="--output")
    with output_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header + extra, extrasaction="ignore")
        writer.writeheader()
        for row, result in zip(rows, results, strict=True):
            writer.writerow({**row, "entity_id": result.entity, "match_rule": result.rule,
                             "match_score": f"{result.score:.4f}",
                             "review_candidate": result.review or ""})
    entities = len({r.entity for r in results})
    rules = Counter(r.rule for r in results)
    reviews = sum(1 for r in results if r.review)
    click.echo(f"{len(rows)} rows → {entities} {kind}; rules: "
               + ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items()))
               + f"; {reviews} for review; written to {output_path}")
