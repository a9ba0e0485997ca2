"""The real-world check: the evaluation set (held-out fruits, held-out backgrounds) and its scoring."""

import json
from pathlib import Path

import pytest
from PIL import Image

from fruits_lib import evaluate
from fruits_lib.split import assign_splits, fruit_group

SAMPLE = Path(__file__).resolve().parents[1] / "data_sample"


def test_eval_set_holds_only_test_split_fruits_in_every_condition(tmp_path):
    manifest = evaluate.write_eval_set(tmp_path / "set", SAMPLE, per_label=2, seed=1)
    labels = sorted(p.name for p in SAMPLE.iterdir() if p.is_dir())
    assert sorted(manifest["images"]) == labels
    groups = {label: [fruit_group(p.name) for p in (SAMPLE / label).iterdir()] for label in labels}
    splits = assign_splits(groups, 0)
    for label in labels:
        files = sorted((tmp_path / "set" / label).glob("*.jpg"))
        assert len(files) == 2 * len(evaluate.CONDITIONS)
        for file in files:
            photo, condition = file.stem.rsplit("__", 1)
            assert condition in evaluate.CONDITIONS
            assert splits[(label, fruit_group(photo + ".jpg"))] == "test", "never a photo the model trained on"
            with Image.open(file) as image:
                assert image.size == ((100, 100) if condition == "studio" else (224, 224))
    assert json.loads((tmp_path / "set" / evaluate.MANIFEST).read_text())["images"] == manifest["images"]
    with pytest.raises(ValueError, match="not empty"):
        evaluate.write_eval_set(tmp_path / "set", SAMPLE)


def test_score_counts_abstentions_as_errors_on_known_and_as_right_on_unknown():
    answers = [("s/apple/1__scene.jpg", "apple", "apple"), ("s/apple/2__scene.jpg", "apple", None),
               ("s/apple/3__studio.jpg", "apple", "kiwi"), ("s/kiwi/1__grayscale.jpg", "kiwi", "kiwi"),
               ("s/mango/1__scene.jpg", "mango", None), ("s/mango/2__scene.jpg", "mango", "kiwi")]
    report = evaluate.score(answers, ["apple", "kiwi"])
    assert report["known"] == {"n": 4, "accuracy": 0.5, "abstained": 0.25}
    assert report["known_without_studio"]["n"] == 3
    assert report["unknown"]["n"] == 2 and report["unknown"]["abstained"] == 0.5
    assert report["unknown"]["named_as"] == {"kiwi": 1}
    assert report["per_class"]["apple"] == {"n": 3, "accuracy": round(1 / 3, 4), "abstained": round(1 / 3, 4)}
    assert report["per_condition"]["scene"] == {"n": 2, "accuracy": 0.5, "abstained": 0.5}
    matrix = report["confusion_matrix"]
    assert matrix["labels"] == ["apple", "kiwi", "unknown"]
    assert matrix["rows_true_columns_predicted"] == [[1, 1, 1], [0, 1, 0], [0, 1, 1]]


def test_hard_cases_show_mistakes_then_unknowns(tmp_path):
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (8, 8)).save(photo)
    answers = ([{"path": str(photo), "truth": "apple", "answer": "apple"}] * 5
               + [{"path": str(photo), "truth": "apple", "answer": None}] * 3
               + [{"path": str(photo), "truth": "apple", "answer": "kiwi"}, {"path": str(photo), "truth": "kiwi",
                                                                           "answer": "apple"}])
    cases = evaluate.hard_cases({"answers": answers}, count=6)
    assert [(t, a) for t, a, _ in cases] == [("apple", "kiwi"), ("kiwi", "apple"), ("apple", None),
                                               ("apple", None), ("apple", "apple"), ("apple", "apple")]


def test_report_is_written_whole_and_a_failed_one_leaves_the_previous(tmp_path):
    report = evaluate.score([("s/apple/1__scene.jpg", "apple", "apple"), ("s/kiwi/1__scene.jpg", "kiwi", None)],
                            ["apple", "kiwi"])
    written = evaluate.write_report(report, str(tmp_path / "check"))
    assert json.loads(Path(written).read_text())["known"] == report["known"]
    assert (tmp_path / "check" / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")
    broken = dict(report, confusion_matrix={"labels": ["apple"], "rows_true_columns_predicted": "not a matrix"})
    with pytest.raises(ValueError):  # the figure cannot be drawn from it
        evaluate.write_report(broken, str(tmp_path / "check"))
    assert json.loads(Path(written).read_text()) == report, "the previous report must stay whole"
    assert sorted(p.name for p in (tmp_path / "check").iterdir()) == ["confusion_matrix.png", "report.json"]
