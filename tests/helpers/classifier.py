"""Session-scoped fixtures for the classifier tests (train, identify, export), loaded as a pytest plugin (``pytest_plugins = ["helpers.classifier"]``).

The classifier trains on conftest's ``sample_run`` (data_sample/: 8 labels x 20 images at 224 px),
the session's one featurization of those photos, linked as ``<root>/run``; the model it trains is
``<root>/model``, shared by every module that declares ``pytest_plugins = ["helpers.classifier"]``.
"""

import pytest

TRAIN_LOG = []  # the lines the ``trained`` fixture's train() printed


@pytest.fixture(scope="session")
def classifier_run(sample_run, tmp_path_factory):
    """A folder holding ``run`` (a link to sample_run's published output, only read) and, once trained, ``model``."""
    root = tmp_path_factory.mktemp("classifier")
    (root / "run").symlink_to(sample_run[0], target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def trained(spark, classifier_run):
    from fruits_lib.train import train

    return train(spark, str(classifier_run / "run"), str(classifier_run / "model"), holdout=0.25, seed=0,
                 log=TRAIN_LOG.append)
