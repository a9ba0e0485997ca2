"""Fruits!: turn fruit photos into compact feature vectors with Spark.

One module per stage of the chain: ``load`` (images -> DataFrame), ``featurize`` (the Spark ML
Transformer), ``reduce`` (PCA in Spark ML), ``write``, ``pipeline`` (the chain); one per step of the
app: ``augment``, ``app_model``, ``unknown``, ``train``, ``identify``, ``export``, ``evaluate``; and
``cli`` / ``cli_app`` (``python -m fruits_lib``). What they stand on (decoding, the TFLite engine,
the weights, the run store, the session, logs, plots, ...) is in ``fruits_lib.support``. The EMR
launcher (``fruits_emr``) and the benchmark (``bench``) are tools beside this package, not part of it.
"""

__version__ = "0.1.0"
