"""The app's recipe: split by fruit, scenes featurized once, a threshold saved and applied, exported."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fruits_lib import app_model
from fruits_lib.errors import InputError, OutputError

SAMPLE = Path(__file__).resolve().parents[1] / "data_sample"


def test_fruit_group_is_a_block_of_frames():
    assert app_model.fruit_group("12_100.jpg") == "0"
    assert app_model.fruit_group("45_100.jpg") == "1"
    assert app_model.fruit_group("r_45_100.jpg") == "r_1"
    assert app_model.fruit_group("apple_003.jpg") == "apple_003.jpg"


def test_splits_keep_each_fruit_block_on_one_side_and_are_seeded():
    groups = {"kiwi": [str(g) for g in range(20)], "lime": ["a", "b", "c"]}
    splits = app_model.assign_splits(groups, seed=0, test=0.2, calibration=0.1)
    kiwi = [splits[("kiwi", g)] for g in groups["kiwi"]]
    assert kiwi.count("test") == 4 and kiwi.count("calibration") == 2 and kiwi.count("train") == 14
    assert sorted(splits[("lime", g)] for g in "abc") == ["calibration", "test", "train"]
    assert app_model.assign_splits(groups, seed=0) == splits
    assert app_model.assign_splits(groups, seed=1) != splits
    with pytest.raises(InputError, match="at least 3"):
        app_model.assign_splits({"fig": ["a", "b"]})


def test_threshold_answers_only_where_right_answers_outnumber_wrong_ones():
    confidence = np.linspace(0.01, 1.0, 100)
    assert app_model.choose_threshold(np.ones(100, bool), confidence) == 0.0, "never wrong: always answer"
    assert app_model.choose_threshold(confidence >= 0.4, confidence) == 0.4, "wrong below 0.4: unknown there"
    mixed = (np.arange(100) % 3 == 0) | (confidence > 0.705)  # above 0.7 all right, below a third right
    assert app_model.choose_threshold(mixed, confidence) == 0.7, "0.70 itself is right (index 69): +1"
    with pytest.raises(ValueError, match="no calibration photo"):
        app_model.choose_threshold([], [])


def test_open_set_threshold_refuses_the_asked_share_of_unlearnt_fruits():
    confidence = np.linspace(0.005, 0.995, 100)  # photos of fruits a model did not learn: how sure it was
    assert app_model.threshold_refusing(confidence, 0.6) == 0.6, "60 of the 100 fall under 0.60"
    assert app_model.threshold_refusing(confidence, 0.0) == 0.0, "0: no open-set rule"
    assert app_model.threshold_refusing(np.full(10, 0.999), 0.5) == 1.0, "sure of them all: only 1.0 refuses"
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        app_model.threshold_refusing(confidence, 1.0)
    with pytest.raises(ValueError, match="no photo of an unlearnt fruit"):
        app_model.threshold_refusing([], 0.5)


def test_class_folds_leave_each_label_out_once_and_keep_two():
    labels = [f"fruit {i}" for i in range(33)]
    folds = app_model.class_folds(labels, 4, seed=0)
    assert len(folds) == 4 and sorted(sum(folds, [])) == sorted(labels), "every label left out exactly once"
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert app_model.class_folds(labels, 4, seed=0) == folds and app_model.class_folds(labels, 4, seed=1) != folds
    assert sorted(app_model.class_folds(["a", "b", "c"], 4)) == [["a"], ["b"], ["c"]], "each model keeps two"
    assert app_model.class_folds(["a", "b"], 4) == [], "two labels: a model without one would learn one label"
    assert app_model.class_folds(labels, 1) == [], "one group would be every label"


@pytest.fixture(scope="module")
def app(spark, tmp_path_factory):
    """The recipe on data_sample/ (8 labels x 20 photos, one scene each): ``(model folder, work, log)``."""
    root = tmp_path_factory.mktemp("app")
    lines = []
    result = app_model.build_app_model(spark, str(SAMPLE), str(root / "model"), work=str(root / "work"),
                                       scenes=1, weights="offline", pca_k=8, log=lines.append)
    return result, root, lines


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
    assert abstain["threshold"] == max(abstain["threshold_right_minus_wrong"], abstain["threshold_refusing_unknown"])
    assert abstain["refuse_unknown"] == 0.6 and abstain["open_set"]["refused"] >= 0.6
    assert metrics["recipe"]["scenes_per_photo"] == 1
    studio, scenes = metrics["test_studio"], metrics["test_scenes"]
    assert studio["n"] == scenes["n"] == 8 * 4, "4 of each label's 20 photos are test, each with its scene"
    assert metrics["n_train"] + metrics["n_calibration"] + metrics["n_test"] == 160 * 2
    assert studio["top1"] >= 0.9 and 0 <= scenes["abstained"] <= 1
    assert metrics["failed"] == []
    assert any("featurized in" in line for line in lines)
    predictions = (root / "model" / "test_predictions.csv").read_text().splitlines()
    assert predictions[0].split(",")[:4] == ["path", "label", "split", "view"]


@pytest.mark.slow  # the recipe on data_sample (featurize 320 images, PCA, LR): about a minute
def test_recipe_reuses_its_features_and_refuses_an_existing_model(app, spark):
    result, root, _ = app
    with pytest.raises(OutputError, match="--overwrite"):
        app_model.build_app_model(spark, str(SAMPLE), str(root / "model"), work=str(root / "work"), scenes=1,
                                  weights="offline", pca_k=8)
    lines = []
    second = app_model.build_app_model(spark, str(SAMPLE), str(root / "open"), work=str(root / "work"),
                                       scenes=1, weights="offline", pca_k=8, exclude_labels=["kiwi"],
                                       refuse_unknown=0, log=lines.append)  # open-set: tested above
    assert any("reusing" in line for line in lines), lines
    assert "kiwi" not in second.metrics["labels"] and len(second.metrics["labels"]) == 7
    assert second.metrics["recipe"]["excluded_labels"] == ["kiwi"]
    assert second.metrics["abstain"]["open_set"]["models"] == 0, "--refuse-unknown 0: no open-set model"
    assert second.metrics["abstain"]["threshold"] == second.metrics["abstain"]["threshold_right_minus_wrong"]
    with pytest.raises(InputError, match="--scenes must be 0 or more"):
        app_model.build_app_model(spark, str(SAMPLE), str(root / "negative"), work=str(root / "work"), scenes=-1,
                                  weights="offline", pca_k=8)
    with pytest.raises(InputError, match="no label kiwii"):
        app_model.build_app_model(spark, str(SAMPLE), str(root / "typo"), work=str(root / "work"), scenes=1,
                                  weights="offline", pca_k=8, exclude_labels=["kiwii"])


def _with_threshold(model: Path, target: Path, threshold: float) -> Path:
    shutil.copytree(model, target)
    metrics = json.loads((target / "metrics.json").read_text())
    metrics["abstain"]["threshold"] = threshold
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
    threshold = json.loads((root / "model" / "metrics.json").read_text())["abstain"]["threshold"]
    for answer in answers:
        expected = answer["top"][0]["label"] if answer["top"][0]["probability"] >= threshold else None
        assert answer["label"] == expected
    cautious = _with_threshold(root / "model", tmp_path / "cautious", 0.9999)
    refused = fruits("identify", "--model", cautious, "--json", *photos)
    assert refused.returncode == 0
    assert [json.loads(line)["label"] for line in refused.stdout.splitlines()] == [None, None]
    assert "2 unknown" in refused.stderr
    text = fruits("identify", "--model", cautious, photos[0])
    assert "unknown (not confident enough" in text.stdout


@pytest.mark.slow  # the recipe on data_sample (featurize 320 images, PCA, LR): about a minute
def test_export_carries_the_threshold_for_the_app(app, fruits, tmp_path):
    _, root, _ = app
    model = _with_threshold(root / "model", tmp_path / "model", 0.42)
    result = fruits("export", "--model", model, "--out", tmp_path / "fruits.tflite")
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = json.loads((tmp_path / "fruits.json").read_text())
    assert metadata["unknown_threshold"] == 0.42
    assert metadata["labels"] == (tmp_path / "labels.txt").read_text().split("\n")[:-1]
    assert "unknown under 0.42" in result.stdout
