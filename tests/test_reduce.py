"""fruits_lib.reduce: the Spark ML PCA equals scikit-learn's on the same features."""

import numpy as np
import pytest
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import Vectors
from sklearn.decomposition import PCA as SkPCA

from fruits_lib.reduce import choose_k, fit_pca


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
    # solver="spark" (plain PCA.fit) is left out: on these features Spark 3.5.9's d x d
    # decomposition (F2jLAPACK) returns a wrong spectrum although its covariance is right
    # (fruits_lib/reduce.py, docs/critique.md).
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
