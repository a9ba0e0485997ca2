"""The app's recipe: split by fruit, scenes featurized once, a threshold saved and applied, exported."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SAMPLE

from fruits_lib import app_model, unknown
from fruits_lib.support.errors import InputError, OutputError
from fruits_lib.support.store import cache_dir
from fruits_lib.support.weights import resolve_weights

pytest_plugins = ["helpers.app"]  # the fixture ``app``: the recipe on data_sample/, shared with test_notebooks


@pytest.mark.slow  # the recipe on data_sample (featurize 320 images, PCA, LR): about a minute
def test_recipe_saves_a_model_with_its_threshold_and_every_figure(app):
    result, root, lines = app
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    assert 0.0 <= metrics["abstain"]["threshold"] < 1.0
    assert metrics["abstain"]["threshold"] == result.metrics["abstain"]["threshold"]
    abstain = metrics["abstain"]
    assert "calibration" in abstain["rule"] and abstain["calibration_photos"] == 8 * 2 * 2
    # open-set calibration: 4 models, each without 2 of the 8 labels, answered those labels' calibration images
    assert abstain["open_set"]["models"] == 4 and sorted(sum(abstain["open_set"]["left_out"], [])) == metrics["labels"]
    assert abstain["open_set"]["photos"] == 8 * 2 * 2, "every label's calibration images, by the model without it"
    models = [line for line in lines if re.match(r"\s+model [1-4]/4 without .*, \d+ s$", line)]
    assert len(models) == 4, lines  # each open-set model logged when fitted, with its seconds
    assert abstain["threshold"] == max(abstain["threshold_right_minus_wrong"], abstain["threshold_refusing_unknown"])
    assert abstain["refuse_unknown"] == 0.6 and abstain["open_set"]["refused"] >= 0.6
    gate = abstain["studio_gate"]  # studio-like photos are judged by their nearest studio training photo
    assert gate["similarity_threshold"] == max(gate["similarity_right_minus_wrong"], gate["similarity_refusing_unknown"])
    # the head tells studio photos from scenes (16 of each among the calibration photos; roughly, on 8 components)
    assert 12 <= gate["calibration_photos"] <= 20 and 12 <= gate["unknown_photos"] <= 20
    rows = pd.read_csv(root / "model" / "test_predictions.csv")
    assert np.mean((rows["studio_likeness"] >= 0.5) == (rows["view"] == "studio")) >= 0.9
    assert gate["bank"] == 8 * 14, "every studio training photo (14 of each label's 20) is in the bank"
    saved = unknown.StudioGate.from_bytes((root / "model" / gate["file"]).read_bytes())
    assert saved.bank.shape == (112, 8) and np.allclose(np.linalg.norm(saved.bank, axis=1), 1.0, atol=1e-5)
    assert saved.coefficients.shape == (8, 8) and saved.intercepts.shape == (8,), "the studio classifier: 8 labels"
    assert metrics["recipe"]["scenes_per_photo"] == 1
    studio, scenes = metrics["test_studio"], metrics["test_scenes"]
    assert studio["n"] == scenes["n"] == 8 * 4, "4 of each label's 20 photos are test, each with its scene"
    assert metrics["n_train"] + metrics["n_calibration"] + metrics["n_test"] == 160 * 2
    assert studio["top1"] >= 0.9 and 0 <= scenes["abstained"] <= 1
    assert metrics["failed"] == []
    assert any("featurized in" in line for line in lines)
    tuned = metrics["weights"]["fine_tuning"]  # the last blocks retrained on the training photos and their scenes
    assert tuned["epochs"] == 3 and tuned["images"] == 8 * 14 * 2 and tuned["from"] == "offline"
    # progress: each pass logged (test_finetune), or the weights reused from this machine's cache (a second run)
    assert any("fine-tuning epoch 3/3" in line or "fine-tuning: reusing" in line for line in lines), lines
    if any("fine-tuning: weights saved" in line for line in lines):  # a new one: the cache keeps the 4 last used
        assert len(list(cache_dir().glob("finetuned-*.npz"))) <= 4
    assert metrics["weights"]["sha256"] != resolve_weights("offline").sha256, "the model bundles the tuned weights"
    predictions = (root / "model" / "test_predictions.csv").read_text().splitlines()
    assert predictions[0].split(",")[:4] == ["path", "label", "split", "view"]


@pytest.mark.slow  # the recipe on data_sample (featurize 320 images, PCA, LR): about a minute
def test_recipe_reuses_its_features_and_refuses_an_existing_model(app, spark, monkeypatch):
    result, root, _ = app
    with pytest.raises(OutputError, match="--overwrite"):
        app_model.build_app_model(spark, str(SAMPLE), str(root / "model"), work=str(root / "work"), scenes=1,
                                  weights="offline", pca_k=8)
    lines = []
    second = app_model.build_app_model(spark, str(SAMPLE), str(root / "open"), work=str(root / "work"),
                                       scenes=1, weights="offline", pca_k=8, exclude_labels=["kiwi"],
                                       refuse_unknown=0, studio_bank=0,  # open-set and gate: tested above
                                       log=lines.append)
    assert any("reusing" in line for line in lines), lines
    # the rows the recipe kept for its fits are released (no public PySpark call lists persisted RDDs)
    assert spark.sparkContext._jsc.getPersistentRDDs().isEmpty(), "the recipe left rows persisted"
    def failing_fit(*args):
        raise RuntimeError("fit failed")

    with monkeypatch.context() as patch:  # a fit that fails releases them too
        patch.setattr(app_model, "_fit_classifier", failing_fit)
        with pytest.raises(RuntimeError, match="fit failed"):
            app_model.build_app_model(spark, str(SAMPLE), str(root / "failed"), work=str(root / "work"), scenes=1,
                                      weights="offline", pca_k=8)
    assert spark.sparkContext._jsc.getPersistentRDDs().isEmpty(), "a failed recipe left rows persisted"
    assert "kiwi" not in second.metrics["labels"] and len(second.metrics["labels"]) == 7
    assert second.metrics["weights"]["fine_tuning"]["images"] == 8 * 14 * 2 - 14 * 2, "kiwi never seen, even there"
    assert second.metrics["recipe"]["excluded_labels"] == ["kiwi"]
    assert second.metrics["abstain"]["open_set"]["models"] == 0, "--refuse-unknown 0: no open-set model"
    assert second.metrics["abstain"]["threshold"] == second.metrics["abstain"]["threshold_right_minus_wrong"]
    with pytest.raises(InputError, match="--scenes must be 0 or more"):
        app_model.build_app_model(spark, str(SAMPLE), str(root / "negative"), work=str(root / "work"), scenes=-1,
                                  weights="offline", pca_k=8)
    with pytest.raises(InputError, match="--fine-tune-epochs must be 0 or more"):
        app_model.build_app_model(spark, str(SAMPLE), str(root / "negative"), work=str(root / "work"), scenes=1,
                                  weights="offline", pca_k=8, fine_tune_epochs=-1)
    with pytest.raises(InputError, match="no label kiwii"):
        app_model.build_app_model(spark, str(SAMPLE), str(root / "typo"), work=str(root / "work"), scenes=1,
                                  weights="offline", pca_k=8, exclude_labels=["kiwii"])


def _with_threshold(model: Path, target: Path, threshold: float, similarity: float | None = None) -> Path:
    """A copy of ``model`` with another probability threshold and, with ``similarity``, another studio gate
    threshold (without: no gate)."""
    shutil.copytree(model, target)
    metrics = json.loads((target / "metrics.json").read_text())
    metrics["abstain"]["threshold"] = threshold
    if similarity is None:
        metrics["abstain"]["studio_gate"] = None
    else:
        metrics["abstain"]["studio_gate"]["similarity_threshold"] = similarity
    (target / "metrics.json").write_text(json.dumps(metrics))
    (target / ".metrics.json.crc").unlink()  # Hadoop's checksum of the file as saved: it would refuse the edit
    return target


@pytest.mark.slow  # the recipe on data_sample (featurize 320 images, PCA, LR): about a minute
def test_identify_answers_unknown_under_the_saved_threshold(app, fruits, tmp_path):
    _, root, _ = app
    photos = [SAMPLE / "kiwi" / "kiwi_000.jpg", SAMPLE / "lemon" / "lemon_001.jpg"]
    confident = fruits("identify", "--model", root / "model", "--json", *photos)
    assert confident.returncode == 0, confident.stderr[-2000:]
    answers = [json.loads(line) for line in confident.stdout.splitlines()]
    for answer in answers:  # studio photos near the studio photos learnt: answered
        assert answer["label"] == answer["top"][0]["label"] and answer["unknown_reason"] is None
    probability_only = _with_threshold(root / "model", tmp_path / "cautious", 0.9999)
    refused = fruits("identify", "--model", probability_only, *photos)  # as text: each line says unknown, and why
    assert refused.returncode == 0
    assert [line.split(": ", 1)[1].startswith("unknown (not confident enough: ") for line in refused.stdout.splitlines()
            ] == [True, True], refused.stdout
    assert "2 unknown (best probability under 1.00)" in refused.stderr
    gated = _with_threshold(root / "model", tmp_path / "gated", 0.0, similarity=1.01)  # no photo is that close
    refused = fruits("identify", "--model", gated, "--json", *photos)
    assert [json.loads(line)["label"] for line in refused.stdout.splitlines()] == [None, None]
    assert all("no studio photo learnt is close" in json.loads(line)["unknown_reason"]
               for line in refused.stdout.splitlines())
    assert "studio-like photos: nearest studio photo under 1.01" in refused.stderr


@pytest.fixture(scope="module")
def exported(app, fruits, tmp_path_factory):
    """``fruits export`` once, of a copy of the app model with the probability threshold set to 0.42 and its
    studio gate kept: ``(folder, completed export, the copy)``. Both export tests read it (one TFLite conversion
    instead of two); a model without a gate is exported in test_real_photos (its metadata has no gate)."""
    _, root, _ = app
    folder = tmp_path_factory.mktemp("export")
    similarity = json.loads((root / "model" / "metrics.json").read_text())["abstain"]["studio_gate"]["similarity_threshold"]
    model = _with_threshold(root / "model", folder / "model", 0.42, similarity=similarity)
    result = fruits("export", "--model", model, "--out", folder / "app" / "fruits.tflite")  # a folder to make
    assert result.returncode == 0, result.stderr[-2000:]
    return folder / "app", result, model


@pytest.mark.slow  # the recipe on data_sample, then a TFLite conversion
def test_export_carries_the_threshold_for_the_app(exported):
    folder, result, _ = exported
    metadata = json.loads((folder / "fruits.json").read_text())
    assert metadata["unknown_threshold"] == 0.42
    assert metadata["labels"] == (folder / "labels.txt").read_text().split("\n")[:-1]
    similarity = metadata["studio_gate"]["similarity_threshold"]
    assert (f"unknown: studio-like photos: nearest studio photo under {similarity:.2f}; others: best probability "
            "under 0.42") in result.stdout


@pytest.mark.slow  # the recipe on data_sample, then a TFLite conversion
def test_export_carries_the_studio_gate_and_scores_as_spark_does(app, exported, spark):
    from pyspark.ml.functions import vector_to_array

    from fruits_lib.export import tflite_classifier
    from fruits_lib.identify import load_model
    from fruits_lib.support.image import decode_image

    _, root, _ = app
    folder, result, _ = exported  # the app model's gate, its threshold set to 0.42 (the scores do not read it)
    metadata = json.loads((folder / "fruits.json").read_text())
    saved = json.loads((root / "model" / "metrics.json").read_text())["abstain"]
    assert metadata["studio_gate"]["similarity_threshold"] == saved["studio_gate"]["similarity_threshold"]
    assert metadata["output"]["columns"] == metadata["labels"] + ["studio_likeness", "nearest_studio"]
    photos = sorted(str(p) for p in SAMPLE.glob("*/*_00[0-2].jpg"))
    app_side = tflite_classifier(str(folder / "fruits.tflite"))(
        np.stack([decode_image(open(p, "rb").read(), 224) for p in photos]))
    model, rule = load_model(spark, str(root / "model")), unknown.load_rule(spark, str(root / "model"))
    images = spark.read.format("binaryFile").load(photos)
    projected = (model.stages[3].transform(model.stages[2].transform(model.stages[1].transform(
                     model.stages[0].transform(images))))
                 .select("path", vector_to_array("pca").alias("pca"), vector_to_array("probability").alias("p"))
                 .toPandas().sort_values("path"))
    likeness, nearest = rule.gate.score(np.stack(projected["pca"]))
    named = rule.naming(np.stack(projected["p"]), likeness, rule.gate.probabilities(np.stack(projected["pca"])))
    assert app_side.shape == (len(photos), len(metadata["labels"]) + 2)
    assert np.abs(app_side[:, -2] - likeness).max() < 1e-3 and np.abs(app_side[:, -1] - nearest).max() < 1e-3
    assert np.abs(app_side[:, :-2] - named).max() < 1e-3, "studio-like photos: the studio classifier's probabilities"
    assert likeness.min() > 0.5 and nearest.min() > 0.9, "studio photos of the sample: studio-like, near one learnt"
