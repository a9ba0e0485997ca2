"""The presentation deck, built as code from measured results (issue 12).

``python -m slides --run OUT --out docs/presentation.pptx`` reads a finished run (``summary.json``,
``explained_variance.png``, ``pca/``), the benchmark (``bench/results.json``, ``bench/benchmark.png``)
and the EMR files (``emr/cluster.json``, ``emr/prices.json``), draws ``docs/architecture.png`` and
writes the deck. Every number on a slide is read from those files; a missing file is shown as
"source missing: <file>" on its slide. Lives outside ``fruits_lib``: the wheel ships the product only.
"""
