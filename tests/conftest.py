"""Shared fixtures: one Spark session for the whole run, and each costly result computed once.

``local-cluster[2,1,1024]`` starts two executor JVMs, each with its own Python workers,
so the broadcast weights really cross process boundaries as on EMR. Every Python worker
logs its model loads and peak memory under ``WORKER_STATS`` (see fruits_lib.featurize) unless a
test gives it a folder of its own. The real photos (``../shared``) are featurized once per session
(``real_run``); when they are missing the tests that need them skip, or FAIL under ``CI=true``.
data_sample/ goes through the command line once at the default size (``sample_run``): the CLI, PCA
and retry tests read that run's outputs instead of featurizing the same 160 photos again.
"""

import os
import subprocess
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


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_real_photos(folder: Path = REAL_PHOTOS) -> Path:
    """The real photos' ``Training`` folder; when absent: skip, or fail under CI (a missing folder is no pass)."""
    training = folder / "Training"
    if not training.is_dir():
        message = f"real photos not found at {folder} (../shared/data/fruits360-subset beside the repo)"
        if in_ci():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return training


@pytest.fixture(scope="session")
def real_photos() -> Path:
    return require_real_photos()


@pytest.fixture(scope="session")
def real_run(real_photos, spark, tmp_path_factory):
    """The chain run once on the 1,962 real photos (offline weights, 224 px): ``(output folder, summary)``.

    The one featurization of the real photos in the test session: tests that need their features
    read this run's outputs (``features/``, ``pca/``, ``summary.json``) instead of featurizing again.
    ``real_photos`` comes first: a missing folder skips (or fails) before Spark starts.
    """
    from fruits_lib.pipeline import run

    output = tmp_path_factory.mktemp("real") / "offline"
    summary = run(str(real_photos), str(output), weights="offline", spark=spark, log=lambda m: None)
    return output, summary


def cli(*args, env=None, timeout=600):
    """Run ``python -m fruits_lib`` like a user (no worker statistics); returns the completed process."""
    environment = dict(os.environ, **(env or {}))
    environment.pop("FRUITS_WORKER_STATS_DIR", None)
    return subprocess.run([sys.executable, "-m", "fruits_lib", *args], capture_output=True, text=True,
                          cwd=ROOT, env=environment, timeout=timeout)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory):
    """``fruits run`` once on data_sample/ (offline weights, default 224 px, ``local[2]``): ``(output, process)``.

    The one featurization of data_sample/ at 224 px in the session: test_cli checks this run,
    test_reduce fits PCA on its ``features/``, test_robustness compares a retried run with it.
    """
    output = tmp_path_factory.mktemp("cli") / "out"
    result = cli("run", "--input", str(SAMPLE), "--output", str(output), "--weights", "offline",
                 "--master", "local[2]")
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def pytest_report_header(config):
    return [f"spark master for tests: {MASTER}; worker stats in {WORKER_STATS}"]
