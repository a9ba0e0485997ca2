"""PCA in Spark ML: k fixed, or the smallest k that reaches a share of the variance.

One full-spectrum fit gives every explained-variance ratio; k is read off its cumulative
sum and the fitted model is cut to k components (no loop of refits). Features are centred
first (``StandardScaler(withMean=True, withStd=False)``) so projections match the usual
definition of PCA (scikit-learn's) up to the sign of each component.

The default ``solver="eigh"``: one Spark job in which each task sums its rows' count, mean and
centred scatter matrix with numpy (float64, merged exactly with the parallel-variance formula),
the d x d summaries merged by levels of tasks so the driver receives at most a few of them, then
``numpy.linalg.eigh`` of the covariance on the driver. It also yields the mean, so the centring
stage needs no pass of its own. The fitted stages are the regular, saveable Spark ML
``StandardScalerModel`` and ``PCAModel`` that ``StandardScaler.fit`` and ``PCA.fit`` would give.
``solver="spark"`` is the plain ``StandardScaler.fit`` + ``PCA.fit``, whose driver-side SVD depends on
the JVM's LAPACK. Why eigh, with the measurements: ``docs/performance.md`` (issue 23 section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import PCA, PCAModel, StandardScaler, StandardScalerModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import DenseMatrix, DenseVector
from pyspark.ml.wrapper import JavaWrapper
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass
class PCAResult:
    """A fitted centring + PCA model, with the full spectrum it was chosen from."""

    model: PipelineModel
    k: int
    explained_variance_ratio: np.ndarray  # every component's share of the variance, descending

    @property
    def cumulative(self) -> np.ndarray:
        return np.cumsum(self.explained_variance_ratio)


class NoVarianceError(ValueError):
    """Every row holds the same vector: no component explains anything, there is no PCA to fit."""


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
    cut = PCAModel(_new_java_model("org.apache.spark.ml.feature.PCAModel", model.uid, matrix, variance))
    return cut._set(k=k, inputCol=model.getInputCol(), outputCol=model.getOutputCol())


def fit_pca(features: DataFrame, input_col: str = "features", output_col: str = "pca",
            k: int | None = None, variance: float = 0.95, solver: str = "eigh") -> PCAResult:
    """Fit centring + PCA on a Vector or array<float|double> column; k given, or chosen to reach ``variance``.

    The fit reads ``features`` once with ``eigh`` (several times with ``spark``: cache it then). An
    array<float> column is read as float32 (half a Vector's size); the fitted model transforms
    Vectors (``pyspark.ml.functions.array_to_vector``).
    ``solver``: ``eigh`` (covariance summed by Spark with numpy in the workers, eigendecomposed on
    the driver) or ``spark`` (``StandardScaler.fit`` + ``PCA.fit``).
    """
    if solver not in ("eigh", "spark"):
        raise ValueError(f"solver must be eigh or spark, not {solver!r}")
    centred = f"{input_col}__centred"
    if solver == "spark":
        if _is_array(features, input_col):
            features = features.withColumn(input_col, array_to_vector(input_col))
        scaler = StandardScaler(inputCol=input_col, outputCol=centred, withMean=True, withStd=False).fit(features)
        dimension, rows = len(scaler.mean), features.count()
        _check_rows(rows)
        full = PCA(k=dimension, inputCol=centred, outputCol=output_col).fit(scaler.transform(features))
        ratios = full.explainedVariance.toArray()
        _check_variance(rows, float(ratios.sum()) if np.isfinite(ratios).all() else 0.0)  # NaN: no variance
        cut = lambda k: truncate(full, k)  # noqa: E731
    else:
        rows, mean, covariance = _mean_covariance(features, input_col)
        dimension = len(mean)
        _check_rows(rows)
        values, vectors = _eigh(covariance)
        _check_variance(rows, values.sum())
        ratios = values / values.sum()
        scaler = _scaler_model(mean, np.sqrt(np.clip(np.diag(covariance), 0.0, None)), input_col, centred)
        cut = lambda k: _pca_model(vectors[:, :k], ratios[:k], centred, output_col)  # noqa: E731
    chosen = choose_k(ratios, variance) if k is None else int(k)
    if not 1 <= chosen <= min(dimension, rows):
        raise ValueError(f"--pca-k must be between 1 and {min(dimension, rows)} here, not {chosen}")
    return PCAResult(PipelineModel([scaler, cut(chosen)]), chosen, ratios)


def project(model: PipelineModel, frame: DataFrame, input_col: str = "features", output_col: str = "pca",
            keep: tuple = ("path", "label")) -> DataFrame:
    """``keep`` columns + ``output_col`` (array<double>): what ``model.transform`` gives, in numpy batches.

    ``model`` is a :func:`fit_pca` model (centring, then PCA). Spark ML projects row by row (a matrix-vector
    product per row in the JVM, with Vector conversions around it); numpy does an Arrow batch in one product:
    the same float64 values up to rounding, 1.4-1.5 s instead of 3.3-3.7 s on 20,000 rows and k = 232
    (docs/performance.md).
    """
    scaler, pca = model.stages
    if not scaler.getWithMean() or scaler.getWithStd():
        raise ValueError("project takes a fit_pca model: centring only (withMean, not withStd), then PCA")
    mean, components = scaler.mean.toArray(), pca.pc.toArray()
    values = F.col(input_col) if _is_array(frame, input_col) else vector_to_array(input_col, "float64")
    rows = frame.select(*keep, values.alias(input_col))
    schema = ", ".join(f"`{name}` {dtype}" for name, dtype in rows.dtypes[:len(keep)])
    return rows.mapInArrow(_projector(mean, components, input_col, output_col, list(keep)),
                           f"{schema}, `{output_col}` array<double>")


def _projector(mean: np.ndarray, components: np.ndarray, input_col: str, output_col: str, keep: list):
    """mapInArrow body of :func:`project`: ``(x - mean) @ components`` per batch (a null row stays null)."""
    import pyarrow as pa

    def apply(batches):
        for batch in batches:
            valid, x = _matrix(batch.column(input_col))
            x = x if len(x) else np.zeros((0, len(mean)))
            if x.shape[1] != len(mean):
                raise ValueError(f"rows of {x.shape[1]} values, the model takes {len(mean)}")
            k = components.shape[1]
            offsets = np.zeros(len(valid) + 1, dtype=np.int32)
            offsets[1:] = np.cumsum(valid * k)
            projected = pa.ListArray.from_arrays(pa.array(offsets), pa.array(((x - mean) @ components).ravel()),
                                                 mask=pa.array(~valid))
            yield pa.RecordBatch.from_arrays([batch.column(name) for name in keep] + [projected],
                                             keep + [output_col])
    return apply


def _matrix(column) -> tuple:
    """An Arrow list column of equal-length rows as ``(non-null mask, float64 matrix of those rows)``."""
    import pyarrow.compute as pc

    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    rows = column.filter(column.is_valid())
    lengths = pc.list_value_length(rows).to_numpy(zero_copy_only=False)
    if len(rows) and lengths.min() != lengths.max():
        raise ValueError(f"rows of different lengths ({lengths.min()} to {lengths.max()})")
    width = int(lengths[0]) if len(rows) else 0
    flat = rows.flatten().to_numpy(zero_copy_only=False)
    return valid, flat.astype(np.float64, copy=False).reshape(len(rows), width)


def _check_rows(rows: int) -> None:
    if rows < 2:
        raise ValueError(f"PCA needs at least 2 featurized images, got {rows}")


def _check_variance(rows: int, total: float) -> None:
    if not total > 0:
        raise NoVarianceError(f"the {rows} rows are all the same vector (no variance): PCA has nothing to explain")


def _is_array(frame: DataFrame, column: str) -> bool:
    return dict(frame.dtypes)[column].startswith("array")


def _merge(a: tuple, b: tuple) -> tuple:
    """Two ``(count, mean, centred scatter)`` summaries as one (Chan et al.'s parallel formula)."""
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    if n_a == 0:
        return b
    if n_b == 0:
        return a
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + np.outer(delta, delta) * (n_a * n_b / n)


MOMENT_ROWS = 1024  # rows per scatter-matrix product: 10 MB of float64, one GEMM instead of 16 small ones
MOMENTS_SCHEMA = "n long, mean binary, m2 binary"
MERGE_FAN_IN = 8  # summaries merged by one task at each level of the tree
DRIVER_SUMMARIES = 4  # at most this many 13 MB summaries reach the driver


def _partition_moments(batches):
    """mapInArrow body: one row per task with its count, mean and centred scatter (float64); null rows skipped.

    Arrow batches (64 rows) are gathered into blocks of ``MOMENT_ROWS`` before the product, which
    makes the d x d scatter matrix be rewritten once per block rather than once per batch.
    """
    total, block, held = (0, None, None), [], 0

    def add(total, block):
        x = np.concatenate(block)
        mean = x.mean(axis=0)
        centred = x - mean
        return _merge(total, (len(x), mean, centred.T @ centred))

    for batch in batches:
        _, rows = _matrix(batch.column("x"))
        if not len(rows):
            continue
        block.append(rows)
        held += len(rows)
        if held >= MOMENT_ROWS:
            total, block, held = add(total, block), [], 0
    if block:
        total = add(total, block)
    if total[0]:
        yield _summary_batch(total)


def _merge_moments(batches):
    """mapInArrow body of one tree level: the summaries a task received, merged into one row."""
    total = (0, None, None)
    for batch in batches:
        total = _merge_rows(total, batch.to_pylist())
    if total[0]:
        yield _summary_batch(total)


def _summary_batch(total: tuple):
    """A ``(count, mean, scatter)`` summary as the one-row Arrow batch of ``MOMENTS_SCHEMA``."""
    import pyarrow as pa

    return pa.RecordBatch.from_pydict({"n": pa.array([total[0]], pa.int64()), "mean": [total[1].tobytes()],
                                       "m2": [total[2].tobytes()]})


def _merge_rows(total: tuple, rows: list) -> tuple:
    """``total`` merged with every summary row (dicts of ``MOMENTS_SCHEMA``'s fields)."""
    for row in rows:
        total = _merge(total, _summary(row))
    return total


def _summary(row) -> tuple:
    """A ``_partition_moments`` row as ``(count, mean, scatter)`` numpy arrays."""
    mean = np.frombuffer(row["mean"], dtype=np.float64)
    return int(row["n"]), mean, np.frombuffer(row["m2"], dtype=np.float64).reshape(len(mean), len(mean))


def merge_plan(summaries: int) -> list:
    """Task counts of the merge levels that take ``summaries`` down to at most ``DRIVER_SUMMARIES``.

    Each level merges up to ``MERGE_FAN_IN`` summaries per task, so the driver receives a bounded
    number of them (52 MB for d = 1280) whatever the number of partitions.
    """
    plan = []
    while summaries > DRIVER_SUMMARIES:
        summaries = max(DRIVER_SUMMARIES, math.ceil(summaries / MERGE_FAN_IN))
        plan.append(summaries)
    return plan


def _mean_covariance(features: DataFrame, column: str, tasks: int | None = None) -> tuple:
    """``(rows, mean, covariance)`` of a Vector or array column, in one distributed pass.

    ``tasks`` tasks (default: one per core, never more than the partitions; coalesced, no shuffle; two per
    core took 1.3-1.9x as long, docs/performance.md) each sum their rows into one d x d summary; levels of
    merge tasks (a shuffle of the summaries each, see :func:`merge_plan`) leave at most 4 for the driver,
    whatever the number of partitions. Collecting one per partition instead passes Spark's
    ``spark.driver.maxResultSize`` (1 GiB by default) at ~80 partitions. Summaries travel as Arrow
    batches, never pickled.
    """
    values = F.col(column) if _is_array(features, column) else vector_to_array(column, "float64")
    arrays = features.select(values.alias("x"))
    partitions = arrays.rdd.getNumPartitions()
    tasks = min(partitions, tasks or features.sparkSession.sparkContext.defaultParallelism)
    if tasks < partitions:
        arrays = arrays.coalesce(tasks)
    summaries = arrays.mapInArrow(_partition_moments, MOMENTS_SCHEMA)
    for level in merge_plan(tasks):
        summaries = summaries.repartition(level).mapInArrow(_merge_moments, MOMENTS_SCHEMA)
    rows, mean, m2 = _merge_rows((0, None, None), summaries.toPandas().to_dict("records"))
    if not rows:
        return 0, np.zeros(0), np.zeros((0, 0))
    return rows, mean, m2 / max(rows - 1, 1)


def _eigh(covariance: np.ndarray) -> tuple:
    """Eigenvalues (descending, >= 0) and eigenvectors (columns) of a covariance matrix.

    Each eigenvector's sign is fixed (largest entry positive) so refits give the same projections.
    """
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])])
    return values, vectors * np.where(signs == 0, 1.0, signs)


def _scaler_model(mean: np.ndarray, std: np.ndarray, input_col: str, output_col: str) -> StandardScalerModel:
    """The centring stage as a regular Spark ML StandardScalerModel (what ``StandardScaler.fit`` gives)."""
    estimator = StandardScaler(inputCol=input_col, outputCol=output_col, withMean=True, withStd=False)
    java_model = _new_java_model("org.apache.spark.ml.feature.StandardScalerModel", estimator.uid,
                                 DenseVector(std), DenseVector(mean))
    return StandardScalerModel(java_model)._set(inputCol=input_col, outputCol=output_col, withMean=True,
                                                withStd=False)


def _pca_model(components: np.ndarray, ratios: np.ndarray, input_col: str, output_col: str) -> PCAModel:
    """A regular Spark ML PCAModel (saveable, same transform) from components as columns."""
    dimension, k = components.shape
    estimator = PCA(k=k, inputCol=input_col, outputCol=output_col)
    matrix = DenseMatrix(dimension, k, components.flatten(order="F").tolist())
    java_model = _new_java_model("org.apache.spark.ml.feature.PCAModel", estimator.uid, matrix, DenseVector(ratios))
    return PCAModel(java_model)._set(k=k, inputCol=input_col, outputCol=output_col)


def _new_java_model(java_class: str, uid: str, *args):
    """A fitted Spark ML model built on the JVM from given arrays: the one Spark internal this module uses.

    PySpark has no public way to make a ``PCAModel`` or ``StandardScalerModel`` from known
    components/mean (only ``fit`` or ``load``), while the Scala classes have public constructors
    ``(uid, pc, explainedVariance)`` and ``(uid, std, mean)``. ``JavaWrapper._new_java_obj`` is how
    PySpark's own estimators call them. ``tests/test_reduce.py`` builds both models through this
    function and checks their transform, so a Spark upgrade that changes either breaks a test.
    """
    return JavaWrapper._new_java_obj(java_class, uid, *args)
