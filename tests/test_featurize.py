"""fruits_lib.featurize: decoding every kind of file, fixed-size batches, the Transformer in a Pipeline."""

import numpy as np
import pytest
from images import bad_files, odd_but_valid_files, picture

from fruits_lib.featurize import (
    MAX_DECODED_PIXELS,
    ImageDecodeError,
    ImageFeaturizer,
    decode_image,
    featurize_images,
    preprocess,
)


@pytest.mark.parametrize("name", sorted(odd_but_valid_files()))
def test_valid_images_in_any_mode_decode_to_rgb(name):
    pixels = decode_image(odd_but_valid_files()[name], 96)
    assert pixels.shape == (96, 96, 3) and pixels.dtype == np.uint8
    assert tuple(pixels[0, 0]) == (255, 255, 255)  # white background kept (transparency included)


@pytest.mark.parametrize("name, reason", [
    ("empty.jpg", "empty file"), ("text.jpg", "not a readable image"), ("random.png", "not a readable image"),
    ("truncated.jpg", "truncated"), ("bomb.png", "too large"),
])
def test_bad_files_raise_a_readable_reason(name, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(bad_files()[name], 96)


def test_large_png_over_our_limit_is_refused_before_decoding():
    from images import png_bomb

    side = int(np.sqrt(MAX_DECODED_PIXELS)) + 100
    with pytest.raises(ImageDecodeError, match="too large to decode safely"):
        decode_image(png_bomb(side, side), 96)


def test_non_square_images_are_padded_not_distorted():
    pixels = decode_image(picture(size=(200, 100), colour=(0, 0, 255)), 100)
    assert tuple(pixels[5, 50]) == (255, 255, 255)  # padding band above the picture
    assert pixels[50, 50, 2] > 200 and pixels[50, 50, 0] < 60  # the blue disc stays round, in the middle


def test_preprocess_maps_pixels_to_minus_one_one():
    out = preprocess(np.array([[0, 255]], dtype=np.uint8))
    assert out.dtype == np.float32 and out.tolist() == [[-1.0, 1.0]]


def test_featurize_images_uses_fixed_size_batches_and_keeps_errors_in_place():
    seen = []

    def predict(batch):
        seen.append(batch.shape)
        return np.tile(batch.mean(axis=(1, 2, 3))[:, None], (1, 4))

    contents = [picture()] * 5 + [b""] + [picture()] * 4
    features, errors = featurize_images(predict, contents, 32, batch_size=4)
    assert [shape[0] for shape in seen] == [4, 3, 2]  # batch of 4 minus the bad one, then the rest
    assert all(shape[1:] == (32, 32, 3) for shape in seen)
    assert errors[5] == "empty file (0 bytes)" and features[5] is None
    assert all(f is not None and f.dtype == np.float32 for i, f in enumerate(features) if i != 5)


def test_invalid_params_are_refused(spark):
    frame = spark.createDataFrame([(bytearray(picture()),)], "content binary")
    with pytest.raises(ValueError, match="handleInvalid"):
        ImageFeaturizer(weights="offline", handleInvalid="drop").transform(frame)
    with pytest.raises(ValueError, match="engine"):
        ImageFeaturizer(weights="offline", engine="onnx").transform(frame)


def test_featurizer_composes_with_pca_in_a_pipeline_that_saves_and_loads(spark, tmp_path):
    from conftest import SAMPLE
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.feature import PCA

    from fruits_lib.load import read_images

    images = read_images(spark, str(SAMPLE / "apple")).union(read_images(spark, str(SAMPLE / "lime")))
    featurizer = ImageFeaturizer(weights="offline", imageSize=96, handleInvalid="skip")
    model = Pipeline(stages=[featurizer, PCA(k=3, inputCol="features", outputCol="pca")]).fit(images)
    model.save(str(tmp_path / "model"))
    loaded = PipelineModel.load(str(tmp_path / "model"))

    assert isinstance(loaded.stages[0], ImageFeaturizer)
    assert loaded.stages[0].getOrDefault("weightsSha256") == featurizer.resolved_weights().sha256
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


def test_the_tflite_interpreter_is_a_parameter():
    from fruits_lib.featurize import _interpreter_class

    assert _interpreter_class("litert").__module__.startswith("ai_edge_litert")  # the wheel declares it
    assert "tensorflow" in _interpreter_class("tf.lite").__module__
    with pytest.raises(ValueError, match="interpreter must be"):
        _interpreter_class("onnx")
