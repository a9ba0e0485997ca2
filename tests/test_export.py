"""export: the folded matrices reproduce the Spark model's probabilities; the file itself is
checked against the Spark pipeline on the real photos in test_real_photos.py."""

import numpy as np
import pytest
from helpers import SAMPLE_LABELS as LABELS
from pyspark.ml import PipelineModel
from pyspark.ml.functions import array_to_vector, vector_to_array

from fruits_lib.export import export, folded_matrices
from fruits_lib.support.errors import OutputError

pytest_plugins = ["helpers.classifier"]


def test_folded_matrices_give_the_spark_probabilities(spark, trained, classifier_run):
    model = PipelineModel.load(str(classifier_run / "model"))
    features = spark.read.parquet(str(classifier_run / "run" / "features")).select(
        "path", array_to_vector("features").alias("features"))
    rows = (PipelineModel(model.stages[1:]).transform(features)
            .select("features", vector_to_array("probability").alias("probability")).toPandas())
    x = np.stack([v.toArray() for v in rows["features"]])
    m = folded_matrices(model)
    logits = (x @ m["pca_kernel"] + m["pca_bias"]) @ m["classifier_kernel"] + m["classifier_bias"]
    ours = np.exp(logits - logits.max(axis=1, keepdims=True))
    ours /= ours.sum(axis=1, keepdims=True)
    assert np.allclose(ours, np.stack(rows["probability"]), atol=1e-9)
    assert m["labels"] == list(LABELS)  # every label of data_sample/, sorted


def test_export_refuses_to_overwrite_or_write_remote(trained, tmp_path):
    (tmp_path / "fruits.tflite").write_bytes(b"previous")
    with pytest.raises(OutputError, match="--overwrite"):
        export(trained.model, str(tmp_path / "fruits.tflite"))
    with pytest.raises(OutputError, match="local file"):
        export(trained.model, "s3://bucket/fruits.tflite")
    with pytest.raises(OutputError, match=r"fruits.tflite is not a writable folder"):  # a file where a folder goes
        export(trained.model, str(tmp_path / "fruits.tflite" / "app" / "fruits.tflite"))
    assert (tmp_path / "fruits.tflite").read_bytes() == b"previous"
