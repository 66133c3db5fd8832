"""``python -m akita_pipelines.cli``: the ``akita`` command without its console script."""

from akita_pipelines.cli.main import main

main()
