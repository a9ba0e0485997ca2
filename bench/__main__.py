"""``python -m bench``: the benchmark harness (also its internal sub-modes, see :mod:`bench.harness`)."""

from bench.harness import main

main()
