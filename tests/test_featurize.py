"""fruits_lib.featurize: the Transformer's params, in a Pipeline, saved and loaded, handleInvalid."""

import numpy as np
import pytest
from helpers.images import picture

from fruits_lib.featurize import ImageFeaturizer


def test_invalid_params_are_refused(spark):
    frame = spark.createDataFrame([(bytearray(picture()),)], "content binary")
    with pytest.raises(ValueError, match="handleInvalid"):
        ImageFeaturizer(weights="offline", handleInvalid="drop").transform(frame)
    with pytest.raises(ValueError, match="engine"):
        ImageFeaturizer(weights="offline", engine="onnx").transform(frame)


@pytest.mark.slow
def test_featurizer_composes_with_pca_in_a_pipeline_that_saves_and_loads(spark, tmp_path):
    from helpers import SAMPLE
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.feature import PCA

    from fruits_lib.load import read_images

    images = read_images(spark, str(SAMPLE / "apple")).union(read_images(spark, str(SAMPLE / "lime")))
    featurizer = ImageFeaturizer(weights="offline", imageSize=96, handleInvalid="skip")
    model = Pipeline(stages=[featurizer, PCA(k=3, inputCol="features", outputCol="pca")]).fit(images)
    model.save(str(tmp_path / "model"))
    loaded = PipelineModel.load(str(tmp_path / "model"))

    assert isinstance(loaded.stages[0], ImageFeaturizer)
    assert loaded.stages[0].getWeightsSha256() == featurizer.resolved_weights().sha256
    before = {r["path"]: r["pca"].toArray() for r in model.transform(images).select("path", "pca").collect()}
    after = {r["path"]: r["pca"].toArray() for r in loaded.transform(images).select("path", "pca").collect()}
    assert len(before) == 40 and before.keys() == after.keys()
    assert max(np.abs(before[p] - after[p]).max() for p in before) < 1e-4


def test_handle_invalid_keep_skip_error(spark):
    frame = spark.createDataFrame([("good", bytearray(picture())), ("bad", bytearray(b"nope"))],
                                  "path string, content binary")
    kept = {r["path"]: r for r in ImageFeaturizer(weights="offline", imageSize=96).transform(frame).collect()}
    assert kept["bad"]["features"] is None and "not a readable image" in kept["bad"]["error"]
    assert len(kept["good"]["features"]) == 1280 and kept["good"]["error"] is None
    skipped = ImageFeaturizer(weights="offline", imageSize=96, handleInvalid="skip").transform(frame)
    assert [r["path"] for r in skipped.collect()] == ["good"]
    with pytest.raises(Exception, match="undecodable image"):
        ImageFeaturizer(weights="offline", imageSize=96, handleInvalid="error").transform(frame).collect()


def test_a_saved_featurizer_refuses_different_weights(tmp_path, random_weights_file):
    featurizer = ImageFeaturizer(weights=str(random_weights_file))
    featurizer.resolved_weights()
    featurizer.save(str(tmp_path / "featurizer"))
    loaded = ImageFeaturizer.load(str(tmp_path / "featurizer"))
    loaded._set(weights="offline")
    with pytest.raises(ValueError, match="saved with"):
        loaded.resolved_weights()


def test_feature_layers_travel_with_a_saved_featurizer(spark, tmp_path):
    """Several pooled layers: wider features whose first 1280 are the default ones; saved and loaded with the
    converted network that pools them, never confused with the default network's cache or worker key."""
    import json

    from fruits_lib.featurize import NETWORK_MANIFEST
    from fruits_lib.support.weights import FEATURE_DIM

    layers = ["out_relu", "block_16_project_BN"]
    frame = spark.createDataFrame([(bytearray(picture()),), (bytearray(picture(colour=(40, 160, 40))),)],
                                  "content binary")
    default = [r["features"].toArray() for r in ImageFeaturizer(weights="offline", imageSize=96).transform(frame).collect()]
    featurizer = ImageFeaturizer(weights="offline", imageSize=96, featureLayers=layers)
    wide = [r["features"].toArray() for r in featurizer.transform(frame).collect()]
    assert [len(f) for f in wide] == [FEATURE_DIM + 320] * 2
    assert all(np.allclose(w[:FEATURE_DIM], d, atol=1e-4) for w, d in zip(wide, default))
    featurizer.save(str(tmp_path / "featurizer"))
    assert json.loads((tmp_path / "featurizer" / NETWORK_MANIFEST).read_text())["tflite"]["layers"] == layers
    loaded = ImageFeaturizer.load(str(tmp_path / "featurizer"))
    assert loaded.getFeatureLayers() == tuple(layers) and loaded._bundled_tflite[:2] == (96, tuple(layers))
    again = [r["features"].toArray() for r in loaded.transform(frame).collect()]
    assert all(np.allclose(a, w, atol=1e-6) for a, w in zip(again, wide))
    with pytest.raises(ValueError, match="int8 needs the tflite engine"):
        ImageFeaturizer(weights="offline", featureLayers=layers, precision="int8").transform(frame)


def test_a_keras_transform_checks_its_layer_names_without_building_a_network(spark, monkeypatch):
    """The driver checks the names against MobileNetV2's, read once per process: a transform builds no
    network there (it did: 0.28 s per transform, 0.06 s now); an unknown name still fails on the driver."""
    import keras

    from fruits_lib.support.weights import check_layers

    check_layers(["out_relu"])  # the names, read once in this process

    def no_network(*args, **kwargs):
        raise AssertionError("a network was built on the driver")

    monkeypatch.setattr(keras.applications, "MobileNetV2", no_network)
    frame = spark.createDataFrame([(bytearray(picture()),)], "content binary")
    featurized = ImageFeaturizer(weights="offline", imageSize=96, engine="keras",
                                 featureLayers=["out_relu", "block_15_add"]).transform(frame)
    assert "features" in featurized.columns
    with pytest.raises(ValueError, match="layers must be distinct MobileNetV2 layer names"):
        ImageFeaturizer(weights="offline", engine="keras", featureLayers=["out_relu", "block_99"]).transform(frame)
