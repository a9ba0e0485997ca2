"""The broadcast really works across processes: same features as the driver, one model load per worker.

Marked ``cluster``: these tests run on ``local-cluster[2,1,1024]`` (two executor JVMs, as on EMR), in
a pytest run of their own (``make test``'s second run, see conftest).
"""

import os
from collections import Counter

import numpy as np
import pytest
from helpers import SAMPLE

from bench.observe import WorkerLog, read_model_loads, read_worker_stats
from fruits_lib.featurize import ImageFeaturizer, add_worker_hook, remove_worker_hook
from fruits_lib.load import read_images
from fruits_lib.support.image import decode_image, preprocess
from fruits_lib.support.weights import build_model

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def two_classes(spark):
    """40 images (kiwi + orange) in 4 partitions: both executors take part."""
    images = read_images(spark, str(SAMPLE / "kiwi")).union(read_images(spark, str(SAMPLE / "orange")))
    return images.repartition(4).cache()


def test_tasks_run_in_two_executor_jvms(spark, two_classes):
    """The premise of this module: tasks run in executor JVMs of their own, not in the driver's."""

    def executor_jvm(_):  # defined here: cloudpickle ships it by value (the workers cannot import tests/)
        """The JVM above this Python worker (worker -> pyspark daemon -> JVM): ``(pid, main class)``."""
        import os

        with open(f"/proc/{os.getppid()}/stat") as stat:
            jvm = int(stat.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{jvm}/cmdline", "rb") as cmdline:
            words = cmdline.read().decode().split("\0")
        return [(jvm, next((w for w in words if w.startswith("org.apache.spark.")), ""))]

    jvms = set(two_classes.rdd.mapPartitions(executor_jvm).collect())
    assert len({pid for pid, _ in jvms}) == 2, jvms
    assert {main for _, main in jvms} == {"org.apache.spark.executor.CoarseGrainedExecutorBackend"}, jvms


@pytest.fixture(scope="module")
def driver_features(two_classes, offline_weights):
    """``features(size)``: path -> the driver's own Keras features of the 40 images at ``size`` (the weights the
    driver broadcast), computed once per size: both engines at 128 px are compared with the same model."""
    rows, made = two_classes.select("path", "content").collect(), {}

    def features(size: int) -> dict:
        if size not in made:
            batch = preprocess(np.stack([decode_image(bytes(r["content"]), size) for r in rows]))
            predicted = build_model(offline_weights.arrays, size).predict_on_batch(batch)
            made[size] = dict(zip((r["path"] for r in rows), predicted))
        return made[size]

    return features


# 224 px is the default size: TFLite (the default engine) is compared with the driver's Keras there too.
@pytest.mark.parametrize("engine, size", [("tflite", 128), ("keras", 128), ("tflite", 224)])
def test_features_from_executors_equal_the_driver_model(two_classes, driver_features, engine, size):
    featurized = ImageFeaturizer(weights="offline", imageSize=size, engine=engine).transform(two_classes)
    rows = featurized.select("path", "features").collect()
    assert len(rows) == 40

    expected = np.stack([driver_features(size)[r["path"]] for r in rows])
    from_spark = np.stack([r["features"].toArray() for r in rows])
    assert from_spark.shape == (40, 1280)
    assert np.abs(from_spark - expected).max() < 1e-4


# 64 px: a size no other test uses in this session, so every worker loads this model for the first
# time here, whatever ran before; the load log and the statistics go to this test's own folder.
@pytest.mark.parametrize("engine", ["tflite", "keras"])
def test_model_loaded_once_per_python_worker(spark, two_classes, tmp_path, engine):
    hook = WorkerLog(tmp_path)  # the featurizer's public hook: shipped with the tasks, runs in the workers
    add_worker_hook(hook)
    try:
        featurizer = ImageFeaturizer(weights="offline", imageSize=64, engine=engine)
        featurizer.transform(two_classes.repartition(8)).select("features").collect()
    finally:
        remove_worker_hook(hook)

    loads = [r for r in read_model_loads(tmp_path) if r["key"].endswith(f"-64px-{engine}")]
    per_worker = Counter(r["pid"] for r in loads)
    assert per_worker, "no Python worker logged a model load"
    assert all(count == 1 for count in per_worker.values()), per_worker  # each real load is logged
    assert os.getpid() not in per_worker  # loaded in the workers, not in the driver
    assert len(per_worker) >= 2  # two executor JVMs, so at least two Python workers used the broadcast
    stats = read_worker_stats(tmp_path)
    assert {s["pid"] for s in stats} == set(per_worker)  # every worker that ran a task loaded it, here
    assert sum(s["tasks"] for s in stats) == 8 > len(per_worker)  # workers were reused across tasks


def test_the_whole_chain_runs_across_executor_jvms(spark, offline_weights, tmp_path):
    """``run()`` end to end with two executor JVMs: listing, featurizing, staging, PCA's merge tasks, publish."""
    import shutil

    from pyspark.sql import functions as F

    from fruits_lib.pipeline import run

    source = tmp_path / "in"
    for label in ("kiwi", "orange"):
        shutil.copytree(SAMPLE / label, source / label)
    summary = run(str(source), str(tmp_path / "out"), weights="offline", spark=spark, log=lambda m: None)

    assert summary["images_in"] == summary["images_ok"] == 40 and summary["images_failed"] == 0
    assert summary["weights"]["sha256"] == offline_weights.sha256
    features = spark.read.parquet(str(tmp_path / "out" / "features"))
    assert features.select("path").distinct().count() == features.count() == 40
    assert {r["label"]: r["count"] for r in features.groupBy("label").count().collect()} == {"kiwi": 20, "orange": 20}
    pca = spark.read.parquet(str(tmp_path / "out" / "pca"))
    assert pca.count() == 40
    assert pca.select(F.size("pca").alias("k")).distinct().collect()[0]["k"] == summary["k"]
