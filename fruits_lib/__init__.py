"""Fruits!: turn fruit photos into compact feature vectors with Spark.

One module per stage: ``load`` (images -> DataFrame), ``featurize`` (the Spark ML
Transformer), ``reduce`` (PCA in Spark ML), ``write``, ``pipeline`` (the chain), plus
``weights`` (where the MobileNetV2 weights come from), ``plot``, ``session`` and ``cli``
(``python -m fruits_lib``). The EMR launcher (``fruits_emr``) and the benchmark (``bench``)
are tools beside this package, not part of it.
"""

__version__ = "0.1.0"
