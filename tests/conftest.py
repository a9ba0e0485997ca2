"""Shared fixtures: one Spark session for the whole run, and each costly result computed once.

The session's master follows the tests selected: ``local-cluster[2,1,1024]`` (two executor JVMs,
each with its own Python workers, so the broadcast really crosses JVM processes as on EMR) when
any of them is marked ``cluster``, else ``local[2]`` (one JVM: the same Python workers and Arrow
path at about half the JVM cost). ``make test`` runs the suite as two pytest runs side by side, ``-m
"not cluster"`` and ``-m cluster``; ``FRUITS_TEST_MASTER`` forces one master for all. Every Python worker
logs its model loads and peak memory under ``WORKER_STATS`` (see fruits_lib.featurize) unless a
test gives it a folder of its own. The real photos (``../shared``) are featurized once per session
(``real_run``); when they are missing the tests that need them skip, or FAIL under ``CI=true``.
data_sample/ goes through the command line once at the default size (``sample_run``): the CLI, PCA,
retry, slides and classifier tests (train, identify, export) read that run's outputs instead of
featurizing the same 160 photos again.

The command line runs in this process (``fruits``: ``cli.main`` on the session's Spark) wherever a
fresh process proves nothing more; ``cli`` starts a real ``python -m fruits_lib`` (JVM, Spark and
TensorFlow start-up, ~15-25 s each) only where the test is about the process itself: a killed run,
an empty weights cache, the installed entry point's exit code and message.
"""

import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_sample"
SAMPLE_LABELS = tuple(sorted(p.name for p in SAMPLE.iterdir() if p.is_dir()))  # its label folders
REAL_PHOTOS = ROOT.parent / "shared" / "data" / "fruits360-subset"
CLUSTER_MASTER = "local-cluster[2,1,1024]"  # tests marked ``cluster``: executors in JVMs of their own
LOCAL_MASTER = "local[2]"  # every other test
MASTER = os.environ.get("FRUITS_TEST_MASTER") or LOCAL_MASTER  # set from the selection at collection

# Before any Spark or TensorFlow start: quiet logs, this interpreter on the workers.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable


class Background:
    """Slow work that runs in processes of its own and needs nothing from this session's Spark.

    The bench harness and the notebooks' kernels spend much of their time starting JVMs, kernels and
    TensorFlow, while this session's in-process tests leave a core idle waiting on Spark jobs. A job
    registered here (by its test module, at import) starts when collection ends, if a selected test
    uses the fixture of that name, and runs beside the other tests, one job at a time; the tests that
    read it are moved to the end of the run. ``result(name)`` waits for it (and re-raises its error).
    """

    def __init__(self):
        self.jobs, self.futures, self.pool = {}, {}, None

    def register(self, name: str, job) -> None:
        self.jobs[name] = job

    def start(self, names) -> None:
        for name in names:
            if name not in self.futures:
                self.pool = self.pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="background")
                self.futures[name] = self.pool.submit(self.jobs[name])

    def result(self, name: str):
        self.start([name])
        return self.futures[name].result()


BACKGROUND = Background()


@pytest.hookimpl(trylast=True)  # after ``-m``/``-k`` deselection: only the tests that will run count
def pytest_collection_modifyitems(config, items):
    """Pick the session's master; start the background jobs the selected tests need, run their tests last."""
    global MASTER
    if not os.environ.get("FRUITS_TEST_MASTER") and any(item.get_closest_marker("cluster") for item in items):
        MASTER = CLUSTER_MASTER
    needed = [name for name in BACKGROUND.jobs if any(name in item.fixturenames for item in items)]
    if not config.option.collectonly:
        BACKGROUND.start(needed)
    later = [item for item in items if set(item.fixturenames) & set(needed)]
    items[:] = [item for item in items if item not in later] + later


@pytest.fixture(scope="session")
def spark():
    from fruits_lib.session import get_spark

    session = get_spark(MASTER, app_name="fruits-tests")
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
    """Run ``python -m fruits_lib`` like a user; returns the completed process."""
    environment = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "fruits_lib", *args], capture_output=True, text=True,
                          cwd=ROOT, env=environment, timeout=timeout)


@pytest.fixture(scope="session")
def fruits(spark):
    """``fruits(*args)``: ``fruits_lib.cli.main(args)`` in this process, on the session's Spark.

    Returns a ``CompletedProcess`` (exit code, stdout, stderr) like :func:`cli`, without a new JVM,
    Spark or TensorFlow. ``--master`` is refused: ``get_spark`` would hand back the session's anyway.
    """
    from fruits_lib import cli as fruits_cli

    def call(*args) -> subprocess.CompletedProcess:
        args = [str(a) for a in args]
        assert "--master" not in args, "in-process runs use the session's Spark; use cli() for another master"
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

    The one featurization of data_sample/ at 224 px in the session: test_cli checks this run,
    test_reduce fits PCA on its ``features/``, test_robustness compares a retried run with it,
    test_slides builds the deck from it, and the classifier tests train on it (classifier_fixtures).
    """
    output = tmp_path_factory.mktemp("cli") / "out"
    result = fruits("run", "--input", SAMPLE, "--output", output, "--weights", "offline")
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def pytest_sessionfinish(session, exitstatus):
    """Jobs not started yet (a run stopped early) are dropped; a running one ends with its timeout."""
    if BACKGROUND.pool is not None:
        BACKGROUND.pool.shutdown(wait=False, cancel_futures=True)


def pytest_report_collectionfinish(config, start_path, items):
    return [f"spark master for these tests: {MASTER}"]
