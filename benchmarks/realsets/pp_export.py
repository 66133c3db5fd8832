"""Write pseudopeople's census and W-2 / 1099 tables as CSV (run inside its own venv).

pseudopeople pins packages (pandas-stubs, scipy) that would change the project's environment,
so :func:`benchmarks.realsets.data.pseudopeople_tables` installs it in a venv under the
benchmark data cache and runs this script there. It imports nothing from the project.

Usage: ``python pp_export.py OUT_DIR SEED``
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out: str, seed: str) -> None:
    import pseudopeople as psp  # noqa: PLC0415 - only in the pseudopeople venv

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    # The bundled sample population (no download); noise applied locally with this seed.
    census = psp.generate_decennial_census(seed=int(seed))
    taxes = psp.generate_taxes_w2_and_1099(seed=int(seed))
    census.to_csv(target / "census.csv.tmp", index=False)
    taxes.to_csv(target / "w2.csv.tmp", index=False)
    (target / "census.csv.tmp").replace(target / "census.csv")
    (target / "w2.csv.tmp").replace(target / "w2.csv")
    (target / "version.txt").write_text(f"pseudopeople {psp.__version__} seed {seed}\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
