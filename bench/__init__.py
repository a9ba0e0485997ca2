"""The performance benchmark of the Fruits! chain (issue 5): a tool beside the library, not in its wheel.

``python -m bench`` (or ``make bench``) from the repository root; see ``bench/README.md`` and
:mod:`bench.harness`. It writes ``bench/results.json`` and ``bench/benchmark.png``.
"""
