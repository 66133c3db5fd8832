"""The anchors on the same halves: splink 5 (DuckDB) and recordlinkage 0.16.

Each set's ``profile`` picks a configuration fitted to its fields, as a careful user of the
tool would write it: structured fields where the set has them, names cleaned the generic way
(case, accents, punctuation, legal forms via cleanco; not our matcher's normaliser), phone
numbers in E.164, term-frequency adjustments on names, towns and organisations, several
blocking rules whose union keeps the pairs a match needs.

- **splink**: u by random sampling, m by EM over two or three blocking rules (so every
  comparison is estimated), predictions above 0.01 once per half, then connected components at
  each match-probability threshold of the grid.
- **recordlinkage**: a union of ``Block`` indexes, ``Compare`` with Jaro-Winkler / exact /
  Levenshtein features, then either the unsupervised ECM classifier (on binarised features)
  or a logistic regression trained on the tune half's labelled candidate pairs; pairs above
  the probability threshold are joined by connected components.

Thresholds come from the tune half; the test half is predicted with its own unsupervised fit
(splink) or the model fitted on the tune half (ECM, unsupervised; logistic, on its labels),
at the tune half's threshold.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.realsets.data import LabelledSet

# Wide, because λ from deterministic rules is rough: the tune half picks the level.
SPLINK_GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995,
               0.999, 0.9999)
RL_GRID = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999)


# ---------------------------------------------------------------- shared cleaning


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def clean_text(value: str | None) -> str | None:
    """Lower case, accents and punctuation removed, spaces squeezed."""
    if not value:
        return None
    text = re.sub(r"[^a-z0-9 ]+", " ", _ascii(value).lower())
    return re.sub(r"\s+", " ", text).strip() or None


def clean_company(value: str | None) -> str | None:
    """A company name as the usual recipe cleans it: clean_text, "&" as "and", legal forms
    removed with cleanco."""
    if not value:
        return None
    from cleanco import basename  # type: ignore[import-untyped]

    text = _ascii(value).replace("&", " and ")
    text = basename(text) or text
    return clean_text(text)


def clean_phone(value: str | None) -> str | None:
    from akita_pipelines.processing.normalize import normalize_phone

    return normalize_phone(value)


def _first_number(value: str | None) -> str | None:
    match = re.search(r"\d+", value or "")
    return match.group(0) if match else None


def frame(ls: LabelledSet) -> Any:
    """The half as a DataFrame of the profile's columns (``unique_id`` = row number)."""
    import pandas as pd

    out: list[dict[str, Any]] = []
    for i, r in enumerate(ls.rows):
        row: dict[str, Any] = {"unique_id": i}
        if ls.profile == "febrl":
            row |= {k: clean_text(r.get(k)) for k in (
                "given_name", "surname", "street_number", "address_1", "address_2", "suburb",
                "postcode", "state", "date_of_birth", "soc_sec_id")}
            row["first_name"], row["last_name"] = row["given_name"], row["surname"]
        elif ls.profile == "census_w2":
            row |= {k: clean_text(r.get(k)) for k in (
                "first_name", "middle_initial", "last_name", "street_number", "street_name",
                "unit_number", "city", "state", "zipcode")}
            row["date_of_birth"] = re.sub(r"\D", "", r.get("date_of_birth") or "") or None
        elif ls.profile == "inventors":
            row |= {k: clean_text(r.get(k)) for k in (
                "first_name", "last_name", "city", "state", "country")}
            row["assignee"] = clean_company(r.get("assignee"))
            row["fi2"] = (row["first_name"] or "")[:2] or None
        else:  # companies
            name = clean_company(r.get("name"))
            row["name"] = name
            row["name_first"] = name.split(" ")[0] if name else None
            row["name_prefix"] = name.replace(" ", "")[:4] if name else None
            row["address"] = clean_text(r.get("address"))
            row["street_number"] = _first_number(r.get("address"))
            row["phone"] = clean_phone(r.get("phone"))
        if "first_name" in row and ls.profile != "inventors":
            row["full_name"] = " ".join(p for p in (row["first_name"], row["last_name"])
                                        if p) or None
        out.append(row)
    return pd.DataFrame(out)


# ---------------------------------------------------------------- clustering


def components(n: int, pairs: Sequence[tuple[int, int]]) -> list[str]:
    """Connected components over ``pairs`` as labels (one per row)."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [f"c{find(i)}" for i in range(n)]


# ---------------------------------------------------------------- splink


Rule = tuple[str, ...]  # a blocking rule: records agreeing on all these columns


def _splink_settings(profile: str, df: Any) -> tuple[Any, list[Any], list[Any]]:
    """(settings, EM blocking rules, deterministic rules for λ) for a profile; comparisons
    and rules on a column the half leaves empty (the employers have no phone) are dropped."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    present = {c for c in df.columns if df[c].notna().any()}

    def tf(c: Any) -> Any:
        return c.configure(term_frequency_adjustments=True)

    people = cl.ForenameSurnameComparison("first_name", "last_name",
                                          forename_surname_concat_col_name="full_name")
    comparisons: list[tuple[str, Any]]
    blocking: list[Rule]
    em: list[Rule]
    sure: list[Rule]
    if profile == "febrl":
        comparisons = [
            ("first_name", people),
            ("date_of_birth", cl.LevenshteinAtThresholds("date_of_birth", [1, 2])),
            ("soc_sec_id", cl.LevenshteinAtThresholds("soc_sec_id", [1, 2])),
            ("street_number", cl.ExactMatch("street_number")),
            ("address_1", cl.JaroWinklerAtThresholds("address_1", [0.9, 0.8])),
            ("address_2", cl.JaroWinklerAtThresholds("address_2", [0.9])),
            ("suburb", tf(cl.JaroWinklerAtThresholds("suburb", [0.9]))),
            ("postcode", cl.LevenshteinAtThresholds("postcode", [1])),
            ("state", cl.ExactMatch("state"))]
        blocking = [("first_name",), ("last_name",), ("date_of_birth",), ("soc_sec_id",),
                    ("postcode", "street_number")]
        em = [("date_of_birth",), ("postcode", "street_number"), ("first_name", "last_name")]
        sure = [("soc_sec_id", "date_of_birth"), ("full_name", "date_of_birth")]
    elif profile == "census_w2":
        comparisons = [
            ("first_name", people),
            ("middle_initial", cl.ExactMatch("middle_initial")),
            ("date_of_birth", cl.LevenshteinAtThresholds("date_of_birth", [1, 2])),
            ("street_number", cl.ExactMatch("street_number")),
            ("street_name", tf(cl.JaroWinklerAtThresholds("street_name", [0.9, 0.8]))),
            ("unit_number", cl.ExactMatch("unit_number")),
            ("city", tf(cl.ExactMatch("city"))), ("zipcode", cl.ExactMatch("zipcode"))]
        blocking = [("first_name",), ("last_name",), ("street_number", "zipcode"),
                    ("date_of_birth",)]
        # Blocked on the address alone, EM takes households for the matches (they outnumber
        # a person's two or three records): the middle initial in the rule leaves mostly the
        # same person, so the name levels are learned from people, not households.
        em = [("first_name", "last_name"), ("middle_initial", "street_number", "street_name")]
        sure = [("full_name", "street_number"), ("full_name", "date_of_birth")]
    elif profile == "inventors":
        comparisons = [
            ("first_name", tf(cl.NameComparison("first_name"))),
            ("last_name", tf(cl.JaroWinklerAtThresholds("last_name", [0.95, 0.88]))),
            ("city", tf(cl.JaroWinklerAtThresholds("city", [0.9]))),
            ("state", cl.ExactMatch("state")), ("country", cl.ExactMatch("country")),
            ("assignee", tf(cl.JaroWinklerAtThresholds("assignee", [0.95, 0.85])))]
        # PatentsView's own blocks (the set is cut along them); wider rules only add pairs.
        blocking = [("last_name", "fi2")]
        em = [("last_name", "first_name"), ("assignee", "city")]
        sure = [("first_name", "last_name", "city")]
    else:  # companies
        comparisons = [
            ("name", tf(cl.JaroWinklerAtThresholds("name", [0.97, 0.92, 0.85, 0.75]))),
            ("phone", cl.ExactMatch("phone")),
            # No separate street-number comparison: it is part of the address, and counting
            # it twice lets a shared building outweigh two different names.
            ("address", cl.JaroWinklerAtThresholds("address", [0.95, 0.85]))]
        blocking = [("name_prefix",), ("name_first",), ("phone",), ("address",)]
        # Phone or address alone gathers a building's tenants too: EM would learn that a
        # different name still matches. Name prefix + street number leaves mostly one business.
        em = [("name",), ("name_prefix", "street_number")]
        sure = [("name",)]

    def rules(rs: list[Rule]) -> list[Any]:
        return [block_on(*r) for r in rs if set(r) <= present]

    settings = SettingsCreator(link_type="dedupe_only",
                               comparisons=[c for col, c in comparisons if col in present],
                               blocking_rules_to_generate_predictions=rules(blocking),
                               retain_intermediate_calculation_columns=False,
                               retain_matching_columns=False)
    return settings, rules(em), rules(sure)


@dataclass
class SplinkFit:
    n: int
    linker: Any
    predictions: Any

    def labels(self, threshold: float) -> list[str]:
        clusters = self.linker.clustering.cluster_pairwise_predictions_at_threshold(
            self.predictions, threshold).as_pandas_dataframe()
        label = dict(zip(clusters["unique_id"], clusters["cluster_id"], strict=True))
        return [str(label.get(i, f"single{i}")) for i in range(self.n)]


def splink_fit(ls: LabelledSet) -> SplinkFit:
    """Train splink on the half (unsupervised) and predict its pairs once."""
    from splink import DuckDBAPI, Linker

    df = frame(ls)
    settings, em_rules, sure = _splink_settings(ls.profile, df)
    linker = Linker(DuckDBAPI().register(df), settings, log_level=40)
    # λ from rules that are nearly always right, assumed to find 60 % of the matches.
    linker.training.estimate_probability_two_random_records_match(sure, recall=0.5)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    return SplinkFit(len(ls), linker, predictions)


# ---------------------------------------------------------------- recordlinkage


def _rl_index_compare(ls: LabelledSet, df: Any, *, tight: bool = False) -> Any:
    """Candidate pairs (union of blocks) and their comparison features, computed once per
    half and index (ECM and the logistic regression share them where the index is one)."""
    key = "rl_features_tight" if tight and ls.profile in TIGHT else "rl_features"
    if key not in ls.memo:
        ls.memo[key] = _rl_features(ls, df, TIGHT[ls.profile] if key.endswith("tight")
                                    else BLOCKS[ls.profile])
    return ls.memo[key]


BLOCKS: dict[str, list[list[str]]] = {
    "febrl": [["first_name"], ["last_name"], ["date_of_birth"], ["soc_sec_id"],
              ["postcode", "street_number"]],
    "census_w2": [["first_name"], ["last_name"], ["street_number", "zipcode"],
                  ["date_of_birth"]],
    "inventors": [["last_name", "fi2"]],
    "companies": [["name_prefix"], ["name_first"], ["phone"], ["address"]]}
#: ECM needs matches to be a fair share of the pairs: on first-name blocks alone it settles
#: on "same first name" as the match class (census↔W2 pairwise precision 0.001).
TIGHT: dict[str, list[list[str]]] = {
    "census_w2": [["first_name", "last_name"], ["last_name", "street_number"],
                  ["first_name", "street_number"], ["first_name", "date_of_birth"]]}


def _rl_features(ls: LabelledSet, df: Any, blocks: list[list[str]]) -> Any:
    import recordlinkage as rl  # type: ignore[import-untyped]
    from recordlinkage.index import Block  # type: ignore[import-untyped]

    p = ls.profile
    indexer = rl.Index()
    for on in blocks:
        indexer.add(Block(on))
    pairs = indexer.index(df)
    cmp = rl.Compare(n_jobs=1)
    js = "jarowinkler"
    if p in ("febrl", "census_w2"):
        cmp.string("first_name", "first_name", method=js, label="first_name")
        cmp.string("last_name", "last_name", method=js, label="last_name")
        # Swapped first / last names.
        cmp.string("first_name", "last_name", method=js, label="first_last")
        cmp.string("date_of_birth", "date_of_birth", method="levenshtein", label="dob")
        cmp.exact("street_number", "street_number", label="street_number")
        if p == "febrl":
            cmp.string("address_1", "address_1", method=js, label="address_1")
            cmp.string("suburb", "suburb", method=js, label="suburb")
            cmp.exact("postcode", "postcode", label="postcode")
            cmp.string("soc_sec_id", "soc_sec_id", method="levenshtein", label="ssid")
            cmp.exact("state", "state", label="state")
        else:
            cmp.exact("middle_initial", "middle_initial", label="middle_initial")
            cmp.string("street_name", "street_name", method=js, label="street_name")
            cmp.exact("zipcode", "zipcode", label="zipcode")
            cmp.exact("unit_number", "unit_number", label="unit")
    elif p == "inventors":
        cmp.string("first_name", "first_name", method=js, label="first_name")
        cmp.string("last_name", "last_name", method=js, label="last_name")
        cmp.string("city", "city", method=js, label="city")
        cmp.exact("state", "state", label="state")
        cmp.exact("country", "country", label="country")
        cmp.string("assignee", "assignee", method=js, label="assignee")
    else:
        cmp.string("name", "name", method=js, label="name")
        cmp.string("name", "name", method="qgram", label="name_qgram")
        cmp.exact("phone", "phone", label="phone")
        cmp.string("address", "address", method=js, label="address")
        # Part of the address: the logistic regression weighs it, ECM leaves it out.
        cmp.exact("street_number", "street_number", label="street_number")
    features = cmp.compute(pairs, df).fillna(0.0)
    return features


@dataclass
class RLFit:
    n: int
    pairs: list[tuple[int, int]]
    probability: Any  # numpy array, one per pair

    def labels(self, threshold: float) -> list[str]:
        keep = [p for p, prob in zip(self.pairs, self.probability, strict=True)
                if prob >= threshold]
        return components(self.n, keep)


def _binary(features: Any) -> Any:
    """ECM's features: similarities cut at 0.85; a companies' street number is dropped, ECM
    would count it twice with the address (conditional independence)."""
    return (features.drop(columns=["street_number"], errors="ignore")
            if "address" in features.columns else features).ge(0.85).astype(int)


def rl_ecm(tune: LabelledSet) -> Callable[[LabelledSet], RLFit]:
    """recordlinkage's ECM (unsupervised Fellegi-Sunter) on binarised features, fitted on the
    tune half (no labels read); returns a predictor for any half of the same set. Fitted
    afresh on each half, ECM lands on different optima from one half to the next (census↔W2
    recall 0.88 on one, 0.17 on the other at the same threshold)."""
    import recordlinkage as rl

    ecm = rl.ECMClassifier(binarize=None)
    ecm.fit(_binary(_rl_index_compare(tune, frame(tune), tight=True)))

    def predict(ls: LabelledSet) -> RLFit:
        binary = _binary(_rl_index_compare(ls, frame(ls), tight=True))
        return RLFit(len(ls), [(int(a), int(b)) for a, b in binary.index],
                     ecm.prob(binary).to_numpy())

    return predict


def labelled_targets(ls: LabelledSet, pairs: Sequence[tuple[int, int]]
                     ) -> tuple[list[int], list[int]]:
    """Positions of candidate pairs whose truth is known, and whether each is a match.

    In a sample of whole clusters (PatentsView: every mention of a sampled inventor is
    labelled) a labelled and an unlabelled record are known to differ; two unlabelled ones
    are unknown.
    """
    keep, y = [], []
    for k, (a, b) in enumerate(pairs):
        ta, tb = ls.truth[a], ls.truth[b]
        if ta is not None or tb is not None:
            keep.append(k)
            y.append(int(ta == tb))
    return keep, y


def rl_logistic(tune: LabelledSet) -> Callable[[LabelledSet], RLFit]:
    """recordlinkage's logistic regression trained on the tune half's labelled candidate
    pairs; returns a predictor for any half of the same set."""
    import recordlinkage as rl

    features = _rl_index_compare(tune, frame(tune))
    pairs = [(int(a), int(b)) for a, b in features.index]
    keep, y = labelled_targets(tune, pairs)
    import pandas as pd

    train = features.iloc[keep]
    model = rl.LogisticRegressionClassifier()
    model.fit(train, pd.MultiIndex.from_tuples([pairs[k] for k, t in zip(keep, y, strict=True)
                                                if t]))

    def predict(ls: LabelledSet) -> RLFit:
        f = features if ls is tune else _rl_index_compare(ls, frame(ls))
        prob = model.prob(f).to_numpy()
        return RLFit(len(ls), [(int(a), int(b)) for a, b in f.index], prob)

    return predict
