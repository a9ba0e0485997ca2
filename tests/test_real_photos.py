"""On 1,962 real Fruits-360 photos: the trained classifier reaches the bar, random weights do not,
and the exported TFLite file agrees with the Spark pipeline.

The offline-weights features come from ``real_run`` (this module's one featurization of the real
photos); random weights featurize a stratified quarter of them (every 4th photo of each label),
enough to show that they stay below the bar. Without ../shared the tests skip, or fail under
CI=true (helpers.require_real_photos). Every test here but the last is ``slow``: minutes of CPU.
"""

import json
import shutil

import numpy as np
import pytest
from helpers import require_real_photos

BAR = 0.95
EVERY = 4  # the random-weights check runs on every 4th photo of each label


def _train(spark, run_folder, model_folder):
    from fruits_lib.train import train

    return train(spark, str(run_folder), str(model_folder), holdout=0.2, seed=0, log=lambda m: None)


@pytest.fixture(scope="module")
def real_run(real_photos, spark, tmp_path_factory):
    """The chain run once on the 1,962 real photos (offline weights, 224 px): ``(output folder, summary)``.

    ``real_photos`` comes first: a missing folder skips (or fails) before Spark starts.
    """
    from fruits_lib.pipeline import run

    output = tmp_path_factory.mktemp("real") / "offline"
    summary = run(str(real_photos), str(output), weights="offline", spark=spark, log=lambda m: None)
    return output, summary


@pytest.fixture(scope="module")
def offline_real(spark, real_run, tmp_path_factory):
    """Pretrained (offline) weights: the real-photo run + a classifier, once per module."""
    output, summary = real_run
    return summary, _train(spark, output, tmp_path_factory.mktemp("real-offline") / "model")


def stratified_subset(source, target, every: int) -> dict:
    """Copy every ``every``-th photo (by name) of each label folder of ``source`` to ``target``: label -> count."""
    counts = {}
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        chosen = sorted(p for p in folder.iterdir() if p.is_file())[::every]
        (target / folder.name).mkdir(parents=True)
        for photo in chosen:
            shutil.copy2(photo, target / folder.name / photo.name)
        counts[folder.name] = len(chosen)
    return counts


@pytest.fixture(scope="module")
def random_real(spark, real_photos, tmp_path_factory, random_weights_file):
    """Keras' random initialisation on a stratified quarter of the photos: run + classifier, once per session.

    The only second featurization of real photos: a quarter of them (about 490), which is enough to
    tell features that separate the fruits from features that do not.
    """
    from fruits_lib.pipeline import run

    root = tmp_path_factory.mktemp("real-random")
    counts = stratified_subset(real_photos, root / "photos", EVERY)
    summary = run(str(root / "photos"), str(root / "run"), weights=str(random_weights_file), spark=spark,
                  log=lambda m: None)
    assert summary["labels"] == counts and summary["images_failed"] == 0
    return summary, _train(spark, root / "run", root / "model")


@pytest.mark.slow
def test_all_real_photos_are_featurized(offline_real):
    summary, _ = offline_real
    assert summary["images_in"] == summary["images_ok"] == 1962 and summary["images_failed"] == 0
    assert summary["labels"] == {"apple": 492, "lemon": 490, "mango": 490, "raspberry": 490}


@pytest.mark.slow
def test_pretrained_classifier_reaches_the_bar_on_held_out_photos(offline_real):
    metrics = offline_real[1].metrics
    print(f"offline weights: hold-out accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
          f"on {metrics['n_test']} photos (k = {metrics['k']}, regParam {metrics['classifier']['regParam']})")
    assert metrics["n_test"] == 392 and metrics["n_train"] == 1570
    assert metrics["accuracy"] >= BAR and metrics["macro_f1"] >= BAR


@pytest.mark.slow
def test_random_weights_do_not(random_real):
    summary, result = random_real
    metrics = result.metrics
    print(f"random weights: hold-out accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
          f"on {metrics['n_test']} photos (every {EVERY}th of each label)")
    assert summary["images_ok"] == sum(summary["labels"].values()) >= 1962 // EVERY
    assert metrics["n_test"] + metrics["n_train"] == summary["images_ok"] and metrics["n_test"] >= 90
    assert metrics["accuracy"] < BAR


@pytest.mark.slow
def test_exported_tflite_agrees_with_the_spark_pipeline(spark, offline_real, tmp_path):
    """On the held-out photos: top-1 agreement >= 99 % and probabilities within 1e-3.

    Spark side: the run's features (the featurizer stage's output) through the rest of the saved
    PipelineModel; app side: the exported file on the decoded photo, nothing else.
    """
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    from fruits_lib.export import export, tflite_classifier
    from fruits_lib.support.image import decode_image

    _, result = offline_real
    model = PipelineModel.load(result.model_path)
    exported = export(model, str(tmp_path / "fruits.tflite"))
    assert (tmp_path / "labels.txt").read_text().split() == result.metrics["labels"]
    metadata = json.loads((tmp_path / "fruits.json").read_text())  # a model without a gate: probabilities only
    assert metadata["unknown_threshold"] == 0.0 and "studio_gate" not in metadata
    assert metadata["output"]["shape"] == [1, len(result.metrics["labels"])]
    paths = list(result.predictions["path"])
    features = spark.read.parquet(result.metrics["run"] + "/features")
    spark_side = (PipelineModel(model.stages[1:])
                  .transform(features.filter(F.col("path").isin(paths)).withColumn("features", array_to_vector("features")))
                  .select("path", vector_to_array("probability").alias("p")).toPandas().set_index("path"))
    predict = tflite_classifier(exported["path"])
    app_side = np.concatenate([predict(decode_image(open(p.replace("file:", ""), "rb").read(), 224)[None])
                               for p in paths])
    expected = np.stack(spark_side.loc[paths, "p"])
    agreement = float(np.mean(app_side.argmax(1) == expected.argmax(1)))
    gap = float(np.abs(app_side - expected).max())
    print(f"exported {exported['bytes'] / 1e6:.1f} MB: top-1 agreement {agreement:.4f}, max |dp| {gap:.2e} "
          f"on {len(paths)} photos")
    assert len(paths) == 392 and agreement >= 0.99 and gap <= 1e-3


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_real_photos_fail_under_ci_and_skip_elsewhere(tmp_path, monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="real photos not found"):
        require_real_photos(tmp_path / "absent")
