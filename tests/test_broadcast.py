"""The broadcast really works across processes: same features as the driver, one model load per worker."""

import json
import os
from collections import Counter

import numpy as np
import pytest
from conftest import SAMPLE

from fruits_lib.featurize import WORKER_STATS_ENV, ImageFeaturizer, decode_image, preprocess, read_model_loads
from fruits_lib.load import read_images
from fruits_lib.weights import build_model


@pytest.fixture(scope="module")
def two_classes(spark):
    """40 images (kiwi + orange) in 4 partitions: both executors take part."""
    images = read_images(spark, str(SAMPLE / "kiwi")).union(read_images(spark, str(SAMPLE / "orange")))
    return images.repartition(4).cache()


# 224 px is the default size: TFLite (the default engine) is compared with the driver's Keras there too.
@pytest.mark.parametrize("engine, size", [("tflite", 128), ("keras", 128), ("tflite", 224)])
def test_features_from_executors_equal_the_driver_model(two_classes, offline_weights, engine, size):
    featurized = ImageFeaturizer(weights="offline", imageSize=size, engine=engine).transform(two_classes)
    rows = featurized.select("path", "content", "features").collect()
    assert len(rows) == 40

    driver_model = build_model(offline_weights.arrays, size)  # the weights the driver broadcast
    batch = preprocess(np.stack([decode_image(bytes(r["content"]), size) for r in rows]))
    expected = driver_model.predict_on_batch(batch)
    from_spark = np.stack([r["features"].toArray() for r in rows])
    assert from_spark.shape == (40, 1280)
    assert np.abs(from_spark - expected).max() < 1e-4


# 64 px: a size no other test uses in this session, so every worker loads this model for the first
# time here, whatever ran before; the load log and the statistics go to this test's own folder.
@pytest.mark.parametrize("engine", ["tflite", "keras"])
def test_model_loaded_once_per_python_worker(spark, two_classes, tmp_path, monkeypatch, engine):
    monkeypatch.setenv(WORKER_STATS_ENV, str(tmp_path))  # read on the driver, sent with the tasks
    featurizer = ImageFeaturizer(weights="offline", imageSize=64, engine=engine)
    featurizer.transform(two_classes.repartition(8)).select("features").collect()

    loads = [r for r in read_model_loads(tmp_path) if r["key"].endswith(f"-64px-{engine}")]
    per_worker = Counter(r["pid"] for r in loads)
    assert per_worker, "no Python worker logged a model load"
    assert all(count == 1 for count in per_worker.values()), per_worker  # each real load is logged
    assert os.getpid() not in per_worker  # loaded in the workers, not in the driver
    assert len(per_worker) >= 2  # two executor JVMs, so at least two Python workers used the broadcast
    stats = [json.loads(p.read_text()) for p in tmp_path.glob("worker-*.json")]
    assert {s["pid"] for s in stats} == set(per_worker)  # every worker that ran a task loaded it, here
    assert sum(s["tasks"] for s in stats) == 8 > len(per_worker)  # workers were reused across tasks
