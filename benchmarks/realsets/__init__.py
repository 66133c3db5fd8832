"""Public labelled matching sets for the benchmark (febrl3, pseudopeople, PatentsView, and a
semi-synthetic company set built from their real company strings), the anchors that run beside
our matcher on them (splink 5, recordlinkage), and their scoring.

Nothing here is imported by the package or the tests. The data come from benchmark-only
packages installed at benchmark time and are cached under ``.akita/bench-data/`` (gitignored);
none of it is committed.
"""
