"""The app recipe on data_sample/, once per pytest run, loaded as a pytest plugin (``pytest_plugins = ["helpers.app"]``).

test_app_model checks the model it builds; test_notebooks gives it to 01_local as its APP_MODEL, so that the
notebook does not fit the same recipe again (a clean clone has no models/app).
"""

import pytest

from helpers import SAMPLE


@pytest.fixture(scope="session")
def app(spark, tmp_path_factory):
    """The recipe on data_sample/ (8 labels x 20 photos, one scene each): ``(result, root, log lines)``.

    ``root / "model"`` is the model, ``root / "work"`` its featurized photos and scenes (only read by other tests).
    """
    from fruits_lib import app_model

    root = tmp_path_factory.mktemp("app")
    lines = []
    result = app_model.build_app_model(spark, str(SAMPLE), str(root / "model"), work=str(root / "work"),
                                       scenes=1, weights="offline", pca_k=8, log=lines.append)
    return result, root, lines
