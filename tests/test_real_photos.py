"""On real Fruits-360 photos: pretrained (offline) features classify well, random ones do not."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from fruits_lib.pipeline import run

# The slow tests need ../shared: without it they skip, or fail under CI=true (conftest.real_photos).
BAR = 0.95


def held_out_accuracy(output) -> float:
    """Logistic regression on the published PCA features, 25% held out (stratified, fixed seed)."""
    pca = pd.read_parquet(output / "pca")
    points, labels = np.stack(pca["pca"]), pca["label"].to_numpy()
    train_x, test_x, train_y, test_y = train_test_split(points, labels, test_size=0.25, stratify=labels,
                                                        random_state=0)
    classifier = LogisticRegression(max_iter=5000).fit(train_x, train_y)
    return float(classifier.score(test_x, test_y))


@pytest.mark.slow
def test_all_real_photos_are_featurized(real_run):
    _, summary = real_run
    assert summary["images_in"] == summary["images_ok"] == 1962 and summary["images_failed"] == 0
    assert summary["labels"] == {"apple": 492, "lemon": 490, "mango": 490, "raspberry": 490}


@pytest.mark.slow
def test_pretrained_features_classify_real_photos(real_run):
    accuracy = held_out_accuracy(real_run[0])
    print(f"held-out accuracy with offline (pretrained) weights: {accuracy:.4f}")
    assert accuracy >= BAR


@pytest.mark.slow
def test_random_weights_do_not(real_photos, spark, tmp_path, random_weights_file):
    output = tmp_path / "random"
    run(str(real_photos), str(output), weights=str(random_weights_file), spark=spark,
        log=lambda m: None)
    accuracy = held_out_accuracy(output)
    print(f"held-out accuracy with random weights: {accuracy:.4f}")
    assert accuracy < BAR


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_real_photos_fail_under_ci_and_skip_elsewhere(tmp_path, monkeypatch, ci, outcome):
    from conftest import require_real_photos

    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="real photos not found"):
        require_real_photos(tmp_path / "absent")
