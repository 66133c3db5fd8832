"""The public-set benchmark's own pieces: the documented company transforms, the building
negatives, the halves and the error samples (no benchmark-only package needed)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable

from akita_pipelines.processing.normalize import normalize_phone
from benchmarks.realsets import synth
from benchmarks.realsets.data import LabelledSet, _split_groups
from benchmarks.realsets.score import error_pairs

HAMBURG = next(c for c in synth.CITIES if c.name == "Hamburg")


def _biz(name: str) -> synth.Business:
    return synth.Business(name, HAMBURG, ("12", "Hafen", "straße"), "20095",
                          ("+49 40 12345678",), building=0)


def test_transforms_make_the_documented_variants() -> None:
    rng = random.Random(1)
    for _ in range(20):
        assert synth._article(rng, "The Grill Room", _biz("x")) in {"Grill Room, The",
                                                                    "Grill Room"}
        assert synth._article(rng, "Nordlicht", _biz("x")) in {"The Nordlicht",
                                                               "Nordlicht, The"}
        # A legal form is swapped within its own group or dropped, never changed to another.
        assert synth._legal_form(rng, "Acme Inc.", _biz("x")) in {
            "Acme Incorporated", "Acme, Incorporated", "Acme Inc", "Acme, Inc", "Acme"}
    assert synth._city_qualifier(rng, "Nordlicht", _biz("Nordlicht")) == "Nordlicht (Hamburg)"
    assert synth._short_form(rng, "Sam's Delicatessen", _biz("x")) == "Sam's Deli"
    assert synth._short_form(rng, "Tom & Jerry", _biz("x")) == "Tom and Jerry"
    assert synth._short_form(rng, "Merry Co., Ltd.", _biz("x")) in {"Merry Company, Ltd."}
    assert synth._truncation(rng, "Short Name", _biz("x")) is None


def test_building_tenants_share_address_and_phone_but_stay_distinct() -> None:
    names = [f"{w} {k} Holdings" for w in ("Alpha", "Beta", "Gamma", "Delta") for k in
             ("North", "South", "East", "West", "Central", "Harbour", "Ridge", "Valley")]
    tune, test = synth.companies(7, names=names)
    shared = 0
    for half in (tune, test):
        phones: dict[str, set[str | None]] = defaultdict(set)
        for row, truth in zip(half.rows, half.truth, strict=True):
            if row["phone"]:
                phones[str(normalize_phone(row["phone"]))].add(truth)
        shared += sum(1 for owners in phones.values() if len(owners) > 1)
    assert shared > 0
    # Every business lies in one half.
    assert not set(tune.truth) & set(test.truth)


def test_halves_deal_whole_groups() -> None:
    groups: dict[Hashable, list[int]] = {g: [g * 3, g * 3 + 1, g * 3 + 2] for g in range(10)}
    a, b = _split_groups(groups, seed=3)
    assert sorted(a + b) == list(range(30))
    assert {i // 3 for i in a}.isdisjoint({i // 3 for i in b})


def test_error_samples_are_the_missed_and_the_wrong_pairs() -> None:
    ls = LabelledSet("t", "contacts", "tune", rows=[{} for _ in range(5)],
                     truth=["a", "a", "b", "b", None], ours={}, shown=(), profile="people")
    fn, fp = error_pairs(ls, ["x", "y", "y", "z", "y"], 10)
    assert sorted(fn) == [(0, 1), (2, 3)]
    assert fp == [(1, 2)]  # the unlabelled row 4 is in no pair
