"""PCA in Spark ML: k fixed, or the smallest k that reaches a share of the variance.

One full-spectrum fit gives every explained-variance ratio; k is read off its cumulative
sum and the fitted model is cut to k components (no loop of refits). Features are centred
first (``StandardScaler(withMean=True, withStd=False)``) so projections match the usual
definition of PCA (scikit-learn's) up to the sign of each component.

Spark's ``PCA.fit`` does two things: a distributed pass that sums the covariance matrix, then
a local SVD of that d x d matrix on the driver, in pure-Java LAPACK when no native BLAS is
installed (the default here and on EMR): 7-15 s for d = 1280 whatever the number of rows.
The default ``solver="eigh"`` keeps the distributed pass in Spark (``RowMatrix`` Gramian of the
centred rows) and does the local step with numpy's LAPACK (``eigh``, ~0.3 s); the result is the
same regular, saveable Spark ML ``PCAModel``. ``solver="spark"`` is the plain ``PCA.fit``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import PCA, PCAModel, StandardScaler
from pyspark.ml.linalg import DenseMatrix, DenseVector
from pyspark.ml.wrapper import JavaWrapper
from pyspark.sql import DataFrame


@dataclass
class PCAResult:
    """A fitted centring + PCA model, with the full spectrum it was chosen from."""

    model: PipelineModel
    k: int
    explained_variance_ratio: np.ndarray  # every component's share of the variance, descending

    @property
    def cumulative(self) -> np.ndarray:
        return np.cumsum(self.explained_variance_ratio)


def choose_k(ratios, variance: float) -> int:
    """Smallest k whose first k components explain at least ``variance`` of the total."""
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance threshold must be in (0, 1], not {variance}")
    cumulative = np.cumsum(np.asarray(ratios, dtype=float))
    reached = np.nonzero(cumulative >= variance - 1e-12)[0]
    return int(reached[0] + 1) if reached.size else len(cumulative)


def truncate(model: PCAModel, k: int) -> PCAModel:
    """The same PCA model keeping only its first ``k`` components (a regular, saveable PCAModel)."""
    pc = model.pc.toArray()
    if not 1 <= k <= pc.shape[1]:
        raise ValueError(f"k must be between 1 and {pc.shape[1]}, not {k}")
    matrix = DenseMatrix(pc.shape[0], k, pc[:, :k].flatten(order="F").tolist())
    variance = DenseVector(model.explainedVariance.toArray()[:k])
    java_model = JavaWrapper._new_java_obj("org.apache.spark.ml.feature.PCAModel", model.uid, matrix, variance)
    cut = PCAModel(java_model)
    return cut._set(k=k, inputCol=model.getInputCol(), outputCol=model.getOutputCol())


def fit_pca(features: DataFrame, input_col: str = "features", output_col: str = "pca",
            k: int | None = None, variance: float = 0.95, solver: str = "eigh") -> PCAResult:
    """Fit centring + PCA on a Vector column; k given, or chosen to reach ``variance``.

    Cache ``features`` first: the fit reads it several times. ``solver``: ``eigh`` (covariance
    summed by Spark, eigendecomposed by numpy on the driver) or ``spark`` (``PCA.fit``).
    """
    if solver not in ("eigh", "spark"):
        raise ValueError(f"solver must be eigh or spark, not {solver!r}")
    centred = f"{input_col}__centred"
    scaler = StandardScaler(inputCol=input_col, outputCol=centred, withMean=True, withStd=False).fit(features)
    dimension = len(scaler.mean)
    rows = features.count()
    if rows < 2:
        raise ValueError(f"PCA needs at least 2 featurized images, got {rows}")
    if solver == "spark":
        full = PCA(k=dimension, inputCol=centred, outputCol=output_col).fit(scaler.transform(features))
        ratios = full.explainedVariance.toArray()
    else:
        values, vectors = _covariance_eigh(scaler.transform(features), centred, rows, dimension)
        ratios = values / values.sum() if values.sum() > 0 else np.full(dimension, 1.0 / dimension)
    chosen = choose_k(ratios, variance) if k is None else int(k)
    if not 1 <= chosen <= min(dimension, rows):
        raise ValueError(f"--pca-k must be between 1 and {min(dimension, rows)} here, not {chosen}")
    if solver == "spark":
        return PCAResult(PipelineModel([scaler, truncate(full, chosen)]), chosen, ratios)
    model = _pca_model(vectors[:, :chosen], ratios[:chosen], centred, output_col)
    return PCAResult(PipelineModel([scaler, model]), chosen, ratios)


def _covariance_eigh(centred: DataFrame, column: str, rows: int, dimension: int) -> tuple:
    """Eigenvalues (descending, >= 0) and eigenvectors of the covariance of a centred Vector column.

    Spark sums the Gramian over the partitions (one pass, ``RowMatrix.computeGramianMatrix``);
    the d x d result comes to the driver and numpy's LAPACK decomposes it. Each eigenvector's
    sign is fixed (largest entry positive) so refits give the same projections.
    """
    from pyspark.mllib.linalg.distributed import RowMatrix
    from pyspark.mllib.util import MLUtils

    old_vectors = MLUtils.convertVectorColumnsFromML(centred.select(column), column)
    gramian = RowMatrix(old_vectors, rows, dimension).computeGramianMatrix().toArray()
    values, vectors = np.linalg.eigh(gramian / (rows - 1))
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])])
    return values, vectors * np.where(signs == 0, 1.0, signs)


def _pca_model(components: np.ndarray, ratios: np.ndarray, input_col: str, output_col: str) -> PCAModel:
    """A regular Spark ML PCAModel (saveable, same transform) from components as columns."""
    dimension, k = components.shape
    estimator = PCA(k=k, inputCol=input_col, outputCol=output_col)
    matrix = DenseMatrix(dimension, k, components.flatten(order="F").tolist())
    java_model = JavaWrapper._new_java_obj("org.apache.spark.ml.feature.PCAModel", estimator.uid, matrix,
                                           DenseVector(ratios))
    return PCAModel(java_model)._set(k=k, inputCol=input_col, outputCol=output_col)
