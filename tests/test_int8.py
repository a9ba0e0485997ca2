"""The int8 precision: a quantized model is built, bundled with its sha256, close to float32, never mixed."""

import glob
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from helpers import SAMPLE
from helpers.images import picture

from fruits_lib.featurize import NETWORK_INT8, ImageFeaturizer, TamperedModelError
from fruits_lib.load import read_images
from fruits_lib.pipeline import run
from fruits_lib.support.errors import OutputError
from fruits_lib.support.image import decode_image, preprocess
from fruits_lib.support.tflite import (
    calibration_contents,
    cosine,
    int8_model,
    is_int8,
    tflite_model,
    tflite_predict,
)


def quiet(message):
    pass


def test_the_int8_model_is_quantized_and_smaller(offline_weights):
    contents = [path.read_bytes() for path in sorted((SAMPLE / "apple").glob("*.jpg"))[:8]]
    quantized = int8_model(offline_weights, 64, contents)
    floating = tflite_model(offline_weights, 64)
    assert is_int8(quantized) and not is_int8(floating)
    assert len(quantized) < 0.4 * len(floating)
    assert int8_model(offline_weights, 64, contents) == quantized  # cached: the same bytes


def test_the_calibration_sample_does_not_depend_on_where_the_photos_sit(spark, tmp_path):
    here, there = tmp_path / "a", tmp_path / "deep" / "b"
    for root in (here, there):
        for index in range(12):
            target = root / ("red" if index % 2 else "blue") / f"{index}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(picture(colour=(20 * index, 10, 200)))
    first = calibration_contents(read_images(spark, str(here)), count=5)
    second = calibration_contents(read_images(spark, str(there)), count=5)
    assert len(first) == 5 and first == second


@pytest.mark.slow
def test_int8_features_are_close_to_float32_on_real_photos(real_photos, offline_weights):
    paths = sorted(glob.glob(str(real_photos / "*" / "*.jpg")))
    calibration = [open(path, "rb").read() for path in paths[::61][:32]]
    photos = np.stack([preprocess(decode_image(open(path, "rb").read(), 224)) for path in paths[7::49][:40]])
    quantized = tflite_predict(int8_model(offline_weights, 224, calibration), threads=1)(photos)
    floating = tflite_predict(tflite_model(offline_weights, 224), threads=1)(photos)
    similarity = cosine(quantized, floating)
    assert similarity.mean() > 0.9 and similarity.min() > 0.8, (similarity.mean(), similarity.min())


def test_a_saved_int8_featurizer_bundles_its_network_and_refuses_an_altered_one(spark, tmp_path):
    from pyspark.ml import PipelineModel

    images = read_images(spark, str(SAMPLE / "apple"))
    featurizer = ImageFeaturizer(weights="offline", imageSize=64, precision="int8")
    before = {r["path"]: r["features"] for r in featurizer.transform_to_arrays(images).collect()}
    PipelineModel([featurizer]).save(str(tmp_path / "model"))
    stage = next((tmp_path / "model" / "stages").iterdir())
    manifest = json.loads((stage / "network" / "manifest.json").read_text())
    network = (stage / NETWORK_INT8).read_bytes()
    assert manifest["tflite_int8"]["file_sha256"] == hashlib.sha256(network).hexdigest() and is_int8(network)
    loaded = PipelineModel.load(str(tmp_path / "model")).stages[0]
    assert loaded.getOrDefault("precision") == "int8" and loaded._int8[1] == network
    after = {r["path"]: r["features"] for r in loaded.transform_to_arrays(images).collect()}
    assert before.keys() == after.keys() and all(np.allclose(before[p], after[p]) for p in before)

    altered = bytearray(network)
    altered[len(altered) // 2] ^= 0xFF
    (stage / NETWORK_INT8).write_bytes(bytes(altered))
    for crc in stage.glob("network/.*int8*.crc"):
        crc.unlink()  # past Hadoop's own check: the manifest's sha256 must catch it
    with pytest.raises(TamperedModelError, match="mobilenetv2-int8.tflite has sha256"):
        PipelineModel.load(str(tmp_path / "model"))


@pytest.mark.slow  # three runs of the chain and a quantization
def test_int8_is_refused_over_float32_features_and_kept_when_added_to(spark, tmp_path):
    source, output = tmp_path / "in", tmp_path / "out"
    for index in range(6):
        target = source / ("red" if index % 2 else "blue") / f"{index}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(picture(colour=(40 * index, 30, 200)))
    options = {"weights": "offline", "image_size": 64, "mode": "incremental", "pca_k": 2, "spark": spark,
               "log": quiet}
    run(str(source), str(output), **options)
    with pytest.raises(OutputError, match=r"precision float32 \(this run: int8\)"):
        run(str(source), str(output), precision="int8", **options)
    assert pd.read_parquet(output / "features")["run"].nunique() == 1  # nothing was added

    first = run(str(source), str(output), precision="int8", overwrite=True, **options)
    (source / "red" / "new.png").write_bytes(picture(colour=(200, 200, 10)))
    added = run(str(source), str(output), precision="int8", **options)
    assert added["images_in"] == 1 and added["precision"] == "int8"
    assert added["int8_sha256"] == first["int8_sha256"]  # the saved calibrated model, not a new calibration
    with pytest.raises(OutputError, match=r"precision int8 \(this run: float32\)"):
        run(str(source), str(output), **options)


def test_a_model_trained_on_int8_features_is_not_exported_with_the_float_network():
    from fruits_lib.export import float_featurizer
    from fruits_lib.support.errors import InputError

    assert float_featurizer(ImageFeaturizer(weights="offline")).getPrecision() == "float32"
    with pytest.raises(InputError, match="trained on int8 features"):
        float_featurizer(ImageFeaturizer(weights="offline", precision="int8"))
