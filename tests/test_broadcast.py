"""The broadcast really works across processes: same features as the driver, one build per worker."""

import json
import os

import numpy as np
import pytest
from conftest import SAMPLE, WORKER_STATS

from fruits_lib.featurize import ImageFeaturizer, decode_image, preprocess
from fruits_lib.load import read_images
from fruits_lib.weights import build_model


@pytest.mark.parametrize("engine", ["tflite", "keras"])
def test_features_from_executors_equal_the_driver_model(spark, offline_weights, engine):
    images = read_images(spark, str(SAMPLE / "kiwi")).union(read_images(spark, str(SAMPLE / "orange")))
    featurized = ImageFeaturizer(weights="offline", imageSize=128, engine=engine).transform(images.repartition(4))
    rows = featurized.select("path", "content", "features").collect()
    assert len(rows) == 40

    driver_model = build_model(offline_weights.arrays, 128)  # the weights the driver broadcast
    batch = preprocess(np.stack([decode_image(bytes(r["content"]), 128) for r in rows]))
    expected = driver_model.predict_on_batch(batch)
    from_spark = np.stack([r["features"].toArray() for r in rows])
    assert from_spark.shape == (40, 1280)
    assert np.abs(from_spark - expected).max() < 1e-4


def test_model_built_at_most_once_per_python_worker(spark):
    images = read_images(spark, str(SAMPLE))
    ImageFeaturizer(weights="offline", imageSize=64).transform(images.repartition(8)).select("features").collect()
    stats = [json.loads(p.read_text()) for p in WORKER_STATS.glob("worker-*.json")]
    assert stats, "no Python worker reported its builds"
    assert all(count == 1 for s in stats for count in s["builds"].values()), stats
    assert {s["pid"] for s in stats}.isdisjoint({os.getpid()})  # built in workers, not in the driver
    workers_64px = [s for s in stats if any(key.endswith("-64px-tflite") for key in s["builds"])]
    assert len(workers_64px) >= 2  # two executor JVMs, so at least two Python workers used the broadcast
    assert sum(s["tasks"] for s in workers_64px) >= 8 > len(workers_64px)  # workers were reused across tasks
