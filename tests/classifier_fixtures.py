"""Session-scoped fixtures for the classifier tests (train, identify, export), loaded as a pytest plugin.

One run on 4 labels x 20 images of data_sample/ (224 px: the TFLite model is already cached by
make setup) and one model trained on it, shared by every module that declares
``pytest_plugins = ["classifier_fixtures"]``. Ready to move into conftest.py.
"""

import shutil

import pytest
from conftest import SAMPLE

LABELS = ("apple", "banana", "grape", "lemon")


@pytest.fixture(scope="session")
def classifier_run(spark, tmp_path_factory):
    from fruits_lib.pipeline import run

    root = tmp_path_factory.mktemp("classifier")
    for label in LABELS:
        shutil.copytree(SAMPLE / label, root / "input" / label)
    run(str(root / "input"), str(root / "run"), weights="offline", spark=spark, log=lambda m: None)
    return root


@pytest.fixture(scope="session")
def trained(spark, classifier_run):
    from fruits_lib.train import train

    return train(spark, str(classifier_run / "run"), str(classifier_run / "model"), holdout=0.25, seed=0,
                 log=lambda m: None)
