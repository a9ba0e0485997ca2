"""Shared fixtures: one Spark session per pytest run, and the costly results several test files read.

The session's master follows the tests selected: ``local-cluster[2,1,1024]`` (two executor JVMs,
each with its own Python workers, so the broadcast really crosses JVM processes as on EMR) when
any of them is marked ``cluster``, else ``local[2]`` (one JVM: the same Python workers and Arrow
path at about half the JVM cost). ``make test`` runs the suite in pytest runs side by side, ``-m
"not cluster"`` and ``-m cluster`` among them (the Makefile's lanes); ``FRUITS_TEST_MASTER`` forces one master for all. data_sample/
goes through the command line once per run at the default size (``sample_run``): the CLI, PCA, retry,
slides and classifier tests read that run's outputs instead of featurizing the same 160 photos again.
Tests marked ``slow`` (minutes: real photos, the notebooks, the bench, real processes) are left out by
``make test-fast``. Paths, image files and the CLI as a process are in the ``helpers`` package.
"""

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest

pytest.register_assert_rewrite("helpers")  # its fixtures' asserts read like the tests' own
from helpers import SAMPLE, require_real_photos  # noqa: E402

CLUSTER_MASTER = "local-cluster[2,1,1024]"  # tests marked ``cluster``: executors in JVMs of their own
LOCAL_MASTER = "local[2]"  # every other test
MASTER = os.environ.get("FRUITS_TEST_MASTER") or LOCAL_MASTER  # set from the selection at collection


def pytest_configure(config):
    """Before any Spark or TensorFlow start: quiet logs, this interpreter on the Python workers."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable


@pytest.hookimpl(trylast=True)  # after ``-m``/``-k`` deselection: only the tests that will run count
def pytest_collection_modifyitems(config, items):
    """The session's master: local-cluster when a selected test is marked ``cluster``."""
    global MASTER
    if not os.environ.get("FRUITS_TEST_MASTER") and any(item.get_closest_marker("cluster") for item in items):
        MASTER = CLUSTER_MASTER


def pytest_report_collectionfinish(config, start_path, items):
    return [f"spark master for these tests: {MASTER}"]


@pytest.fixture(scope="session")
def spark():
    from fruits_lib.support.session import get_spark

    session = get_spark(MASTER, app_name="fruits-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def offline_weights():
    from fruits_lib.support.weights import resolve_weights

    return resolve_weights("offline")


@pytest.fixture(scope="session")
def random_weights_file(tmp_path_factory):
    """A MobileNetV2 with Keras' random initialisation (fixed seed), saved as .npz."""
    import keras
    import numpy as np

    from fruits_lib.support.weights import build_model

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random_mobilenetv2.npz"
    np.savez(path, *build_model(None).get_weights())
    return path


@pytest.fixture(scope="session")
def real_photos():
    return require_real_photos()


@pytest.fixture(scope="session")
def fruits(spark):
    """``fruits(*args)``: ``fruits_lib.cli.main(args)`` in this process, on the session's Spark.

    Returns a ``CompletedProcess`` (exit code, stdout, stderr) like :func:`helpers.cli`, without a new
    JVM, Spark or TensorFlow. ``--master`` is refused: ``get_spark`` would hand back the session's anyway.
    """
    from fruits_lib import cli as fruits_cli

    def call(*args) -> subprocess.CompletedProcess:
        args = [str(a) for a in args]
        assert "--master" not in args, "in-process runs use the session's Spark; use helpers.cli for another master"
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                fruits_cli.main(args)
                code = 0
            except SystemExit as stopped:
                code = stopped.code
        return subprocess.CompletedProcess(["fruits", *args], code, out.getvalue(), err.getvalue())

    return call


@pytest.fixture(scope="session")
def sample_run(fruits, tmp_path_factory):
    """``fruits run`` once on data_sample/ (offline weights, default 224 px, in process): ``(output, result)``.

    The one featurization of data_sample/ at 224 px in a pytest run: test_cli checks this run,
    test_reduce fits PCA on its ``features/``, test_robustness compares a retried run with it,
    test_slides builds the deck from it, and the classifier tests train on it (helpers.classifier).
    """
    output = tmp_path_factory.mktemp("cli") / "out"
    result = fruits("run", "--input", SAMPLE, "--output", output, "--weights", "offline")
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result
