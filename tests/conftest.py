"""One Spark session for the whole test run, on a real multi-process master.

``local-cluster[2,1,1024]`` starts two executor JVMs, each with its own Python workers,
so the broadcast weights really cross process boundaries as on EMR. Every Python worker
records its model builds and peak memory under ``WORKER_STATS`` (see fruits_lib.featurize).
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_sample"
REAL_PHOTOS = ROOT.parent / "shared" / "data" / "fruits360-subset"
MASTER = "local-cluster[2,1,1024]"
WORKER_STATS = Path(tempfile.mkdtemp(prefix="fruits-worker-stats-"))

# Before any Spark or TensorFlow start: quiet logs, this interpreter on the workers, stats on.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ["FRUITS_WORKER_STATS_DIR"] = str(WORKER_STATS)


@pytest.fixture(scope="session")
def spark():
    from fruits_lib.session import get_spark

    session = get_spark(MASTER, app_name="fruits-tests",
                        conf={"spark.executorEnv.FRUITS_WORKER_STATS_DIR": str(WORKER_STATS)})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def offline_weights():
    from fruits_lib.weights import resolve_weights

    return resolve_weights("offline")


@pytest.fixture(scope="session")
def random_weights_file(tmp_path_factory):
    """A MobileNetV2 with Keras' random initialisation (fixed seed), saved as .npz."""
    import keras
    import numpy as np

    from fruits_lib.weights import build_model

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random_mobilenetv2.npz"
    np.savez(path, *build_model(None).get_weights())
    return path


def pytest_report_header(config):
    return [f"spark master for tests: {MASTER}; worker stats in {WORKER_STATS}"]
