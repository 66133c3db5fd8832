"""One run of every tool on every set: the quality table and the targets.

Per set: ours (``akita match``'s tiers, default thresholds), splink, recordlinkage ECM and
recordlinkage logistic regression. An anchor's threshold is the one with the best F1 among
those reaching precision 0.99 on the tune half, or the best F1 when none reaches it; the test
half is scored at that threshold. Targets, on the test half: our precision ≥ 0.99 and our
F1 ≥ the best anchor's F1 + 0.01.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.bench_matching import Quality
from benchmarks.common import Figure
from benchmarks.realsets.data import LabelledSet, Unavailable
from benchmarks.realsets.score import score

ANCHORS = ("splink", "recordlinkage ECM", "recordlinkage logistic")


@dataclass
class ToolResult:
    tool: str
    quality: Quality | None
    seconds: float
    detail: str = ""


@dataclass
class SetResult:
    name: str
    rows: int = 0
    note: str = ""
    tools: list[ToolResult] = field(default_factory=list)
    unavailable: str = ""

    def get(self, tool: str) -> ToolResult | None:
        return next((t for t in self.tools if t.tool == tool), None)

    def best_anchor(self) -> ToolResult | None:
        scored = [t for t in self.tools if t.tool != "ours" and t.quality is not None]
        return max(scored, key=lambda t: t.quality.f1 if t.quality else 0.0, default=None)

    def targets(self) -> str:
        ours = self.get("ours")
        if self.unavailable or ours is None or ours.quality is None:
            return "—"
        p_ok = ours.quality.precision >= 0.99
        parts = [f"P ≥ 0.99 {'met' if p_ok else 'not met'} ({ours.quality.precision:.4f})"]
        best = self.best_anchor()
        if best is None or best.quality is None:
            parts.append("F1 ≥ best anchor + 0.01: no anchor ran")
        else:
            goal = best.quality.f1 + 0.01
            f1_ok = ours.quality.f1 >= goal
            parts.append(f"F1 ≥ {best.tool} {best.quality.f1:.4f} + 0.01 "
                         f"{'met' if f1_ok else 'not met'} (ΔF1 "
                         f"{ours.quality.f1 - best.quality.f1:+.4f})"
                         + ("; unattainable, the goal is above 1" if goal > 1 else ""))
        return "; ".join(parts)


def choose(scores: dict[float, Quality]) -> float:
    """Best F1 among thresholds with precision ≥ 0.99 on the tune half, else best F1."""
    ok = {t: q for t, q in scores.items() if q.precision >= 0.99}
    pool = ok or scores
    return max(pool, key=lambda t: (pool[t].f1, t))


def _anchor(tool: str, tune: LabelledSet, test: LabelledSet) -> ToolResult:
    from benchmarks.realsets import anchors

    started = time.perf_counter()
    fit_tune: Any
    fit_test: Any
    grid: tuple[float, ...]
    if tool == "splink":
        fit_tune, grid = anchors.splink_fit(tune), anchors.SPLINK_GRID
        fit_test = anchors.splink_fit(test)
    else:
        predict = (anchors.rl_ecm if tool == "recordlinkage ECM" else anchors.rl_logistic)(tune)
        fit_tune, grid = predict(tune), anchors.RL_GRID
        fit_test = predict(test)
    threshold = choose({t: score(tune, fit_tune.labels(t)) for t in grid})
    q = score(test, fit_test.labels(threshold))
    return ToolResult(tool, q, time.perf_counter() - started, f"threshold {threshold:g}")


def compare(names: Sequence[str], tools: Sequence[str] | None = None, errors: int = 0,
            seed: int | None = None) -> list[SetResult]:
    """Run ``tools`` (default: ours and every anchor) on each named set."""
    from benchmarks import matching_sets as ms

    wanted = list(tools) if tools else ["ours", *ANCHORS]
    if "recordlinkage" in wanted:
        wanted.remove("recordlinkage")
        wanted += ["recordlinkage ECM", "recordlinkage logistic"]
    out = []
    for name in names:
        try:
            tune, test = ms.SETS[name](ms.SEED if seed is None else seed)
        except Unavailable as exc:
            print(f"{name}: unavailable: {exc}", file=sys.stderr)
            out.append(SetResult(name, unavailable=str(exc)))
            continue
        result = SetResult(tune.name, len(test), tune.note)
        for tool in wanted:
            started = time.perf_counter()
            try:
                if tool == "ours":
                    pred = ms.run_ours(test)
                    seconds = time.perf_counter() - started
                    result.tools.append(ToolResult("ours", score(test, pred), seconds,
                                                   "default thresholds"))
                    if errors:
                        ms.print_errors(tune, ms.run_ours(tune), errors)
                else:
                    result.tools.append(_anchor(tool, tune, test))
            except Exception as exc:  # noqa: BLE001 - one failing tool must not hide the rest
                traceback.print_exc()
                result.tools.append(ToolResult(tool, None, time.perf_counter() - started,
                                               f"failed: {type(exc).__name__}: {exc}"[:120]))
        out.append(result)
    return out


def report(results: Sequence[SetResult]) -> str:
    """The table (test halves) and each set's targets."""
    headers = ["set", "tool", "P", "R", "F1", "B³ F1", "s", "note"]
    rows: list[list[str]] = []
    for r in results:
        if r.unavailable:
            rows.append([r.name, "—", "", "", "", "", "", f"unavailable: {r.unavailable}"])
            continue
        for t in r.tools:
            q = t.quality
            cells = ([f"{q.precision:.4f}", f"{q.recall:.4f}", f"{q.f1:.4f}",
                      f"{q.b3_f1:.4f}"] if q else ["—"] * 4)
            rows.append([r.name, t.tool, *cells, f"{t.seconds:.1f}", t.detail])
    widths = [max(len(x[i]) for x in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = ["Matching quality on public sets (test halves; anchors' thresholds from the tune "
           "halves)", "", line(headers), line(["-" * w for w in widths])]
    out += [line(x) for x in rows]
    out += ["", "Targets (ours: precision ≥ 0.99 and F1 ≥ best anchor's F1 + 0.01):"]
    for r in results:
        out.append(f"  {r.name}: {r.targets() if not r.unavailable else 'unavailable'}")
        if r.note:
            out.append(f"      ({r.rows:,} test rows; {r.note})")
    return "\n".join(out)


def figures(results: Sequence[SetResult]) -> list[Figure]:
    """``make bench`` rows: ours per set beside its best anchor."""
    out = []
    for r in results:
        ours = r.get("ours")
        if r.unavailable or ours is None or ours.quality is None:
            out.append(Figure(f"public set {r.name}", "unavailable" if r.unavailable
                              else "failed", note=r.unavailable or (ours.detail if ours
                                                                    else "")))
            continue
        best = r.best_anchor()
        others = "; ".join(f"{t.tool} F1 {t.quality.f1:.4f}" for t in r.tools
                           if t.tool != "ours" and t.quality is not None)
        out.append(Figure(
            f"public set {r.name} ({r.rows:,} test rows)", ours.quality.short(),
            floor=f"{best.tool} {best.quality.short()}" if best and best.quality else "—",
            ratio=f"ΔF1 {ours.quality.f1 - best.quality.f1:+.4f}"
            if best and best.quality else "—",
            goal=r.targets().replace("; ", " / "), note=others))
    return out

