"""fruits_lib.reduce: the Spark ML PCA equals scikit-learn's on the same features."""

from contextlib import contextmanager

import numpy as np
import pytest
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F
from sklearn.decomposition import PCA as SkPCA

from fruits_lib.reduce import choose_k, fit_pca, project


def test_choose_k_is_the_smallest_k_reaching_the_threshold():
    ratios = [0.5, 0.3, 0.15, 0.05]
    assert choose_k(ratios, 0.5) == 1
    assert choose_k(ratios, 0.8) == 2
    assert choose_k(ratios, 0.95) == 3
    assert choose_k(ratios, 1.0) == 4
    with pytest.raises(ValueError):
        choose_k(ratios, 0)


@pytest.fixture(scope="module")
def sample_features(spark, sample_run):
    """Real MobileNetV2 features of data_sample/ (160 images), as a numpy matrix and a DataFrame.

    Read from the session's CLI run (conftest ``sample_run``) rather than featurized again.
    """
    import pandas as pd

    published = pd.read_parquet(sample_run[0] / "features").sort_values("path")
    matrix = np.stack(published["features"]).astype(np.float64)
    assert matrix.shape == (160, 1280)
    frame = spark.createDataFrame([(path, Vectors.dense(x)) for path, x in zip(published["path"], matrix)],
                                  ["path", "features"]).cache()
    return matrix, frame


def test_spark_pca_matches_scikit_learn(sample_features):
    # solver="spark" (plain PCA.fit) is left out here: on these features its d x d SVD is wrong when the
    # driver JVM falls back to F2jLAPACK (no native LAPACK), right with a native one
    # (bench/spark_pca_spectrum.py); test_spark_solver_on_a_full_rank_matrix covers it.
    matrix, frame = sample_features
    result = fit_pca(frame, k=None, variance=0.95)
    reference = SkPCA().fit(matrix)
    k = result.k
    assert k == int(np.searchsorted(np.cumsum(reference.explained_variance_ratio_), 0.95 - 1e-12) + 1)
    np.testing.assert_allclose(result.explained_variance_ratio[:k], reference.explained_variance_ratio_[:k],
                               rtol=1e-6)
    projected = result.model.transform(frame).select("path", vector_to_array("pca").alias("pca"))
    spark_points = np.array([r["pca"] for r in projected.orderBy("path").collect()])
    sk_points = reference.transform(matrix)[:, :k]
    assert spark_points.shape == (matrix.shape[0], k)
    signs = np.sign((spark_points * sk_points).sum(axis=0))  # each component is defined up to its sign
    np.testing.assert_allclose(spark_points * signs, sk_points, atol=1e-6 * np.abs(sk_points).max())


def test_spark_solver_on_a_full_rank_matrix(spark):
    """solver="spark" (StandardScaler.fit + PCA.fit) on data where it is right whatever the LAPACK."""
    matrix = np.random.default_rng(1).normal(size=(300, 12)) * np.linspace(5, 1, 12)
    frame = spark.createDataFrame([(Vectors.dense(row),) for row in matrix], ["features"])
    reference = SkPCA().fit(matrix).explained_variance_ratio_
    plain, ours = (fit_pca(frame, k=None, solver=solver) for solver in ("spark", "eigh"))
    np.testing.assert_allclose(plain.explained_variance_ratio, reference, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(plain.explained_variance_ratio, ours.explained_variance_ratio, rtol=1e-9, atol=1e-12)
    assert plain.k == ours.k == int(np.searchsorted(np.cumsum(reference), 0.95 - 1e-12) + 1)


def test_fixed_k_and_saved_model(sample_features, tmp_path):
    from pyspark.ml import PipelineModel

    _, frame = sample_features
    result = fit_pca(frame, k=5)
    assert result.k == 5 and result.model.stages[-1].getK() == 5
    assert len(result.model.stages[-1].explainedVariance) == 5
    result.model.save(str(tmp_path / "pca"))
    loaded = PipelineModel.load(str(tmp_path / "pca"))
    a = [r["pca"] for r in result.model.transform(frame).orderBy("path").collect()]
    b = [r["pca"] for r in loaded.transform(frame).orderBy("path").collect()]
    assert np.allclose(np.array(a), np.array(b))
    with pytest.raises(ValueError, match="between 1 and"):
        fit_pca(frame, k=10_000)


def test_project_gives_what_the_model_transform_gives(sample_features, spark):
    """The chain projects with numpy batches (``reduce.project``); Spark ML's transform is the reference."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import StandardScaler
    from pyspark.ml.functions import vector_to_array as to_array

    matrix, frame = sample_features
    frame = frame.withColumn("label", F.lit("x"))
    result = fit_pca(frame, k=7)
    expected = np.array([r["pca"] for r in result.model.transform(frame).select("path", to_array("pca").alias("pca"))
                         .orderBy("path").collect()])
    arrays = frame.withColumn("features", to_array("features", "float32"))
    for source in (frame, arrays):  # Vector and array<float> columns, as fit_pca takes
        projected = project(result.model, source).orderBy("path")
        assert projected.columns == ["path", "label", "pca"] and dict(projected.dtypes)["pca"] == "array<double>"
        found = np.array([r["pca"] for r in projected.collect()])
        assert found.shape == (len(matrix), 7)
        tolerance = 1e-9 if source is frame else 1e-4  # the array was cast to float32
        np.testing.assert_allclose(found, expected, rtol=0, atol=tolerance * np.abs(expected).max())
    scaled = StandardScaler(inputCol="features", outputCol="centred", withStd=True).fit(frame)
    with pytest.raises(ValueError, match="centring only"):
        project(PipelineModel([scaled, result.model.stages[1]]), frame)


def test_project_keeps_a_null_row_null_and_refuses_rows_of_another_length(spark):
    frame = spark.createDataFrame([("a", "x", [2.0, 3.0]), ("b", "x", None), ("c", "y", [4.0, 1.0])],
                                  "path string, label string, features array<float>")
    model = fit_pca(frame, k=1).model
    found = {r["path"]: r["pca"] for r in project(model, frame).collect()}
    assert found["b"] is None and np.allclose([found["a"][0], found["c"][0]], [-np.sqrt(2), np.sqrt(2)])
    ragged = spark.createDataFrame([("a", "x", [2.0, 3.0]), ("c", "y", [4.0])], "path string, label string, "
                                   "features array<float>")
    with pytest.raises(Exception, match="rows of 1 values, the model takes 2"):
        project(model, ragged).collect()


def test_models_built_from_arrays_on_the_jvm_transform_as_spark_would(spark):
    """Guards ``reduce._new_java_model`` (Spark internal, see its docstring): breaks on an incompatible upgrade."""
    from fruits_lib.reduce import _pca_model, _scaler_model, truncate

    mean, std = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.0])
    components = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    scaler = _scaler_model(mean, std, "x", "centred")
    pca = _pca_model(components, np.array([0.7, 0.3]), "centred", "pca")
    frame = spark.createDataFrame([(Vectors.dense([2.0, 4.0, 6.0]),)], ["x"])
    row = pca.transform(scaler.transform(frame)).first()
    assert row["centred"].toArray().tolist() == [1.0, 2.0, 3.0]  # centred only (withStd=False)
    assert row["pca"].toArray().tolist() == [1.0, 2.0]
    assert scaler.mean.toArray().tolist() == mean.tolist() and scaler.std.toArray().tolist() == std.tolist()
    assert pca.explainedVariance.toArray().tolist() == [0.7, 0.3] and pca.getK() == 2
    cut = truncate(pca, 1)
    assert cut.pc.numCols == 1 and cut.transform(scaler.transform(frame)).first()["pca"].toArray().tolist() == [1.0]


@contextmanager
def max_result_size(spark, size):
    """Set ``spark.driver.maxResultSize`` on the running context for the jobs started inside.

    The scheduler reads it from the SparkContext's live SparkConf for every new TaskSetManager
    (one per stage), so it can be changed between jobs without a second session. ``spark.conf.set``
    refuses Spark core settings, hence the SparkContext's own conf (``SparkContext._conf`` wraps
    the JVM's). ``test_old_collect_breaks_the_driver_limit`` fails if this stops taking effect.
    """
    conf = spark.sparkContext._conf
    previous = conf.get("spark.driver.maxResultSize")
    conf.set("spark.driver.maxResultSize", size)
    try:
        yield
    finally:
        if previous is None:
            spark.sparkContext._jsc.sc().conf().remove("spark.driver.maxResultSize")
        else:
            conf.set("spark.driver.maxResultSize", previous)


@pytest.fixture(scope="module")
def many_partitions(spark):
    """400 x 1280 float32 features of known low-rank structure, in 400 partitions (cached as float32).

    d = 1280 makes each task's scatter matrix 13 MB, as in the chain; rows are kept few (speed).
    """
    rng = np.random.default_rng(0)
    matrix = (rng.normal(size=(400, 20)) * np.linspace(10, 1, 20)) @ rng.normal(size=(20, 1280))
    matrix = (matrix + rng.normal(scale=0.1, size=matrix.shape)).astype(np.float32)
    # repartition: the 400 partitions are made by a JVM shuffle, not by 400 Python tasks
    frame = spark.createDataFrame([(i, row.tolist()) for i, row in enumerate(matrix)],
                                  "id long, features array<float>").repartition(400).cache()
    assert frame.rdd.getNumPartitions() == 400 and frame.count() == 400
    yield matrix.astype(np.float64), frame
    frame.unpersist()


def test_old_collect_breaks_the_driver_limit(spark, many_partitions):
    """One 13 MB scatter matrix per task collected to the driver (8 x 13 MB > 64m): what fit_pca must not do."""
    from fruits_lib.reduce import _partition_moments

    _, frame = many_partitions
    with max_result_size(spark, "64m"), pytest.raises(Exception, match="maxResultSize"):
        frame.select(F.col("features").alias("x")).coalesce(8).mapInArrow(
            _partition_moments, "n long, mean binary, m2 binary").collect()


@pytest.mark.slow
def test_pca_of_400_partitions_fits_under_a_64m_driver_result_limit(spark, many_partitions):
    from fruits_lib.reduce import _mean_covariance, merge_plan

    matrix, frame = many_partitions
    reference = SkPCA().fit(matrix)
    with max_result_size(spark, "64m"):
        result = fit_pca(frame, "features", "pca", k=None, variance=0.95)
        # 8 tasks: 8 summaries (105 MB) the tree merges on the executors before the driver sees them
        rows, mean, covariance = _mean_covariance(frame, "features", tasks=8)
    assert result.k == int(np.searchsorted(np.cumsum(reference.explained_variance_ratio_), 0.95 - 1e-12) + 1)
    np.testing.assert_allclose(result.explained_variance_ratio[:30], reference.explained_variance_ratio_[:30],
                               rtol=1e-6)
    assert rows == 400
    np.testing.assert_allclose(mean, matrix.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(covariance, np.cov(matrix, rowvar=False), rtol=1e-7, atol=1e-9)
    assert [merge_plan(n) for n in (1, 4, 8, 16, 400)] == [[], [], [4], [4], [50, 7, 4]]
