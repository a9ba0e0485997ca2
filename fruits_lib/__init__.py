"""Fruits!: turn fruit photos into compact feature vectors with Spark.

One module per stage: ``load`` (images -> DataFrame), ``weights`` (where the
MobileNetV2 weights come from), ``featurize`` (the Spark ML Transformer),
``reduce`` (PCA in Spark ML), ``plot``, ``write``, ``pipeline`` (the chain),
``cli`` (``python -m fruits_lib``) and ``emr`` (the cluster launcher).
"""

__version__ = "0.1.0"
