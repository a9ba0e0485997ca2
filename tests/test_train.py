"""train: the hold-out split, the metrics, the saved model (network bundled, altered files refused).

conftest's run of data_sample/ (8 labels x 20 images, 224 px) is the input (helpers.classifier);
the real-photo figures are checked in test_real_photos.py.
"""

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import SAMPLE_LABELS as LABELS

from fruits_lib.train import classification_metrics, split_holdout, train

pytest_plugins = ["helpers.classifier"]  # the trained sample model, shared with identify/export tests


def test_metrics_hand_example():
    metrics = classification_metrics(["a", "b"], ["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert metrics["accuracy"] == 0.75
    assert metrics["confusion_matrix"]["rows_true_columns_predicted"] == [[1, 1], [0, 2]]
    assert metrics["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2}
    assert metrics["per_class"]["b"]["precision"] == 0.666667 and metrics["per_class"]["b"]["recall"] == 1.0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2, abs=1e-6)


def test_split_is_stratified_deterministic_and_location_free(spark):
    rows = [(f"/data/{label}/{i}.jpg", label) for label in ("x", "y") for i in range(10 if label == "x" else 7)]
    frame = spark.createDataFrame(rows, "path string, label string")
    moved = spark.createDataFrame([(p.replace("/data/", "s3://bucket/elsewhere/"), lab) for p, lab in rows],
                                  "path string, label string")

    def held_out(df, seed):  # label/file name of the held-out images
        return sorted("/".join(r["path"].split("/")[-2:]) for r in split_holdout(df, 0.3, seed)[1].collect())

    train_part, test_part = split_holdout(frame, 0.3, 0)
    test = sorted("/".join(r["path"].split("/")[-2:]) for r in test_part.collect())
    assert [name.split("/")[0] for name in test].count("x") == 3 and len(test) == 3 + 2  # round(0.3 n) per label
    assert not {r["path"] for r in train_part.collect()} & {"/data/" + name for name in test}
    assert train_part.count() == 17 - 5
    assert held_out(moved, 0) == test  # same seed, data moved (another folder, s3://): same photos held out
    assert held_out(frame, 1) != test  # the seed matters


def test_train_saves_one_pipeline_model_and_its_metrics(trained, classifier_run, offline_weights):
    from pyspark.ml import PipelineModel

    model_dir = classifier_run / "model"
    names = [type(stage).__name__ for stage in PipelineModel.load(str(model_dir)).stages]
    assert names == ["ImageFeaturizer", "StandardScalerModel", "PCAModel", "LogisticRegressionModel", "IndexToString"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    test = 5 * len(LABELS)  # a quarter of the 20 images of each label
    assert metrics["n_train"] == 3 * test and metrics["n_test"] == test
    assert metrics["weights"]["sha256"] == offline_weights.sha256 and metrics["image_size"] == 224
    assert metrics["labels"] == list(LABELS) and set(metrics["per_class"]) == set(LABELS)
    scores = metrics["classifier"]["cv_log_loss_by_regParam"]  # JSON keys are strings
    assert str(metrics["classifier"]["regParam"]) == min(scores, key=scores.get)  # the lowest CV log-loss won
    assert (model_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (model_dir / "labels.txt").read_text().split() == list(LABELS)
    predictions = pd.read_csv(model_dir / "test_predictions.csv")
    assert len(predictions) == test and (predictions.groupby("label").size() == 5).all()
    assert metrics["accuracy"] == pytest.approx((predictions["label"] == predictions["predicted"]).mean(), abs=1e-6)
    assert np.sum(metrics["confusion_matrix"]["rows_true_columns_predicted"]) == test
    assert metrics["accuracy"] >= 0.8  # 8 synthetic fruits, pretrained features: far above chance (0.125)


def test_train_logs_its_three_steps_in_order(trained):
    from helpers.classifier import TRAIN_LOG

    assert [line[:5] for line in TRAIN_LOG if line.startswith("[")] == ["[1/3]", "[2/3]", "[3/3]"], TRAIN_LOG


def test_existing_model_is_not_overwritten_silently(spark, trained, classifier_run):
    from fruits_lib.support.errors import OutputError

    before = (classifier_run / "model" / "metrics.json").read_text()
    with pytest.raises(OutputError, match="already exists"):
        train(spark, str(classifier_run / "run"), str(classifier_run / "model"), log=lambda m: None)
    assert (classifier_run / "model" / "metrics.json").read_text() == before


def test_saved_model_carries_its_network_and_refuses_an_altered_one(spark, trained, classifier_run, tmp_path):
    from pyspark.ml import PipelineModel

    from fruits_lib.featurize import TamperedModelError

    stage = next((classifier_run / "model" / "stages").glob("0_ImageFeaturizer_*"))
    manifest = json.loads((stage / "network" / "manifest.json").read_text())
    assert manifest["weights_sha256"] == trained.metrics["weights"]["sha256"] and manifest["bytes"] > 8e6
    loaded = PipelineModel.load(str(classifier_run / "model")).stages[0]
    assert "bundled" in loaded.resolved_weights().source  # not re-resolved from "offline"
    flatbuffer = (stage / "network" / "mobilenetv2.tflite").read_bytes()  # the tflite engine's network too
    assert manifest["tflite"]["file_sha256"] == hashlib.sha256(flatbuffer).hexdigest()
    assert manifest["tflite"]["image_size"] == 224 and manifest["tflite"]["layers"] == ["out_relu"]
    assert loaded._bundled_tflite == (224, ("out_relu",), flatbuffer)

    altered_tflite = tmp_path / "altered-tflite"
    shutil.copytree(classifier_run / "model", altered_tflite)
    network = next((altered_tflite / "stages").glob("0_*")) / "network" / "mobilenetv2.tflite"
    network.write_bytes(flatbuffer[:-1] + bytes([flatbuffer[-1] ^ 0xFF]))
    with pytest.raises(TamperedModelError, match="cannot read network/mobilenetv2.tflite .*Checksum"):
        PipelineModel.load(str(altered_tflite))  # Hadoop's .crc of the file sees it first
    (network.parent / f".{network.name}.crc").unlink()
    with pytest.raises(TamperedModelError, match="network/mobilenetv2.tflite has sha256"):
        PipelineModel.load(str(altered_tflite))  # without it, the manifest's sha256 does

    altered = tmp_path / "altered"
    shutil.copytree(classifier_run / "model", altered)
    network = next((altered / "stages").glob("0_*")) / "network" / "weights.npz"
    data = bytearray(network.read_bytes())
    data[len(data) // 2] ^= 0xFF
    network.write_bytes(bytes(data))
    with pytest.raises(TamperedModelError, match="altered file"):
        PipelineModel.load(str(altered))
