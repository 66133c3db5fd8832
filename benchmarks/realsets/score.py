"""Scoring a clustering of one half: pairwise and B-cubed P / R / F1, and error samples.

Fully labelled sets are scored exactly (:func:`benchmarks.bench_matching.quality`). The
PatentsView half is labelled only for a sample of inventors drawn with probability
proportional to their size, so it is scored with ER-Evaluation's sample-weighted estimators
(``weights="cluster_size"``), which read the prediction over every mention of the half.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from benchmarks.bench_matching import Quality, quality
from benchmarks.realsets.data import LabelledSet


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def score(ls: LabelledSet, pred: Sequence[str]) -> Quality:
    """The half's quality for the predicted entity labels (one per row)."""
    if not ls.weighted:
        return quality(pred, ls.truth)
    import pandas as pd
    from er_evaluation.estimators import (  # type: ignore[import-untyped]
        b_cubed_precision_estimator,
        b_cubed_recall_estimator,
        pairwise_precision_estimator,
        pairwise_recall_estimator,
    )

    prediction = pd.Series(list(pred), index=ls.ids)
    sample = pd.Series(ls.truth, index=ls.ids).dropna()
    p = float(pairwise_precision_estimator(prediction, sample, "cluster_size")[0])
    r = float(pairwise_recall_estimator(prediction, sample, "cluster_size")[0])
    bp = float(b_cubed_precision_estimator(prediction, sample, "cluster_size")[0])
    br = float(b_cubed_recall_estimator(prediction, sample, "cluster_size")[0])
    return Quality(p, r, _f1(p, r), bp, br, _f1(bp, br))


def error_pairs(ls: LabelledSet, pred: Sequence[str], n: int, seed: int = 0
                ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Up to ``n`` false-negative and ``n`` false-positive pairs (row indices), seeded."""
    labelled = [i for i, t in enumerate(ls.truth) if t is not None]
    by_truth: dict[Any, list[int]] = defaultdict(list)
    by_pred: dict[Any, list[int]] = defaultdict(list)
    for i in labelled:
        by_truth[ls.truth[i]].append(i)
        by_pred[pred[i]].append(i)
    fn = [(a, b) for m in by_truth.values() for a, b in itertools.combinations(m, 2)
          if pred[a] != pred[b]]
    fp = [(a, b) for m in by_pred.values() for a, b in itertools.combinations(m, 2)
          if ls.truth[a] != ls.truth[b]]
    rng = random.Random(seed)
    return (rng.sample(fn, min(n, len(fn))), rng.sample(fp, min(n, len(fp))))
