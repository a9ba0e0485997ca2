"""Bad inputs, nothing lost, incremental runs, atomic results, retried tasks."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT, SAMPLE
from helpers.images import bad_files, odd_but_valid_files

from fruits_lib.pipeline import run


def quiet(message):
    pass


def copy_classes(target, classes, per_class=None):
    for label in classes:
        (target / label).mkdir(parents=True, exist_ok=True)
        for source in sorted((SAMPLE / label).iterdir())[:per_class]:
            shutil.copy2(source, target / label / source.name)


@pytest.fixture(scope="module")
def messy_run(spark, tmp_path_factory):
    """A folder mixing good photos with every bad kind, in folders with spaces and accents."""
    root = tmp_path_factory.mktemp("messy")
    source = root / "input"
    copy_classes(source, ["apple", "kiwi"], per_class=5)
    (source / "pêche d'été").mkdir()
    (source / "Red Apple").mkdir()
    for name, data in odd_but_valid_files().items():
        (source / "pêche d'été" / name).write_bytes(data)
    for name, data in bad_files().items():
        (source / "Red Apple" / f"bad {name}").write_bytes(data)
    (source / "Red Apple" / "notes.txt").write_text("not an image: ignored, but counted")
    summary = run(str(source), str(root / "out"), weights="offline", image_size=96, spark=spark, log=quiet)
    return root / "out", summary


def test_every_file_ends_in_exactly_one_place(messy_run):
    output, summary = messy_run
    features, errors = pd.read_parquet(output / "features"), pd.read_parquet(output / "errors")
    expected = 10 + len(odd_but_valid_files()) + len(bad_files())
    assert summary["images_in"] == expected == summary["images_ok"] + summary["images_failed"]
    assert len(features) == summary["images_ok"] and len(errors) == summary["images_failed"]
    assert set(features["path"]).isdisjoint(errors["path"])
    assert summary["other_files_ignored"] == 1


def test_bad_files_are_listed_with_their_reason(messy_run):
    errors = pd.read_parquet(messy_run[0] / "errors")
    reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in zip(errors["path"], errors["error"])}
    assert reasons.keys() == {f"bad {name}" for name in bad_files()}
    assert "empty file" in reasons["bad empty.jpg"]
    assert "not a readable image" in reasons["bad text.jpg"]
    assert "truncated" in reasons["bad truncated.jpg"]
    assert "too large" in reasons["bad bomb.png"]
    assert set(errors["label"]) == {"Red Apple"}


def test_odd_but_valid_images_are_featurized_with_decoded_labels(messy_run):
    features = pd.read_parquet(messy_run[0] / "features")
    odd = features[features["label"] == "pêche d'été"]
    assert {p.rsplit("/", 1)[-1] for p in odd["path"]} == set(odd_but_valid_files())
    assert all(np.isfinite(v).all() and len(v) == 1280 for v in odd["features"])


@pytest.mark.slow  # three runs of the chain
def test_incremental_runs_add_only_new_images(spark, tmp_path):
    source, output = tmp_path / "input", tmp_path / "out"
    copy_classes(source, ["apple", "lemon", "lime"])
    first = run(str(source), str(output), weights="offline", image_size=96, mode="incremental", spark=spark,
                log=quiet)
    assert first["images_in"] == 60
    second = run(str(source), str(output), weights="offline", image_size=96, mode="incremental", spark=spark,
                 log=quiet)
    assert second["images_in"] == 0 and second["images_skipped_already_done"] == 60
    assert len(pd.read_parquet(output / "features")) == 60

    copy_classes(source, ["grape"], per_class=10)
    third = run(str(source), str(output), weights="offline", image_size=96, mode="incremental", spark=spark,
                log=quiet)
    assert third["images_in"] == third["images_ok"] == 10 and third["images_skipped_already_done"] == 60
    features, pca = pd.read_parquet(output / "features"), pd.read_parquet(output / "pca")
    assert len(features) == 70 and features["path"].is_unique
    assert len(pca) == 70 and pca["path"].is_unique  # PCA refitted on everything
    assert features["run"].nunique() == 2  # one partition per run that added images

    copy_classes(source, ["kiwi"], per_class=5)
    reused = run(str(source), str(output), weights="offline", image_size=96, mode="incremental",
                 pca_reuse=True, spark=spark, log=quiet)
    pca = pd.read_parquet(output / "pca")
    assert reused["images_in"] == 5 and reused["k"] == third["k"] and reused["pca"] == "reused"
    assert len(pca) == 75 and pca["path"].is_unique
    assert json.loads((output / "summary.json").read_text())["run_id"] == reused["run_id"]


@pytest.mark.slow
def test_full_mode_refuses_an_existing_output_and_overwrite_replaces_it(spark, tmp_path):
    from fruits_lib.support.errors import OutputError

    source, output = tmp_path / "input", tmp_path / "out"
    copy_classes(source, ["apple", "banana"], per_class=4)
    run(str(source), str(output), weights="offline", image_size=96, spark=spark, log=quiet)
    with pytest.raises(OutputError, match="already holds results"):
        run(str(source), str(output), weights="offline", image_size=96, spark=spark, log=quiet)
    copy_classes(source, ["grape"], per_class=4)
    again = run(str(source), str(output), weights="offline", image_size=96, overwrite=True, spark=spark,
                log=quiet)
    features = pd.read_parquet(output / "features")
    assert again["images_in"] == 12 and len(features) == 12 and features["run"].nunique() == 1


def test_nothing_processed_is_an_error_but_reasons_are_published(fruits, tmp_path):
    source = tmp_path / "input" / "junk"
    source.mkdir(parents=True)
    for name, data in bad_files().items():
        (source / name).write_bytes(data)
    result = fruits("run", "--input", tmp_path / "input", "--output", tmp_path / "out", "--weights", "offline",
                    "--image-size", "64")
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"none of the {len(bad_files())} images could be processed" in result.stderr
    assert len(pd.read_parquet(tmp_path / "out" / "errors")) == len(bad_files())


@pytest.fixture(scope="module")
def killed_then_recovered(tmp_path_factory):
    """A run killed while featurizing, then the next run on the same output, each a real process.

    The next run also has its partition 1 fail on the first attempt (``local[2,3]``: 3 attempts) and a
    fake AWS secret in its environment, so that one recovery serves both the interrupted-run and the
    retried-task tests (the same 160 photos at 224 px are not featurized a third time).
    Returns what was seen between the two runs, the recovery's completed process, and their folders.
    """
    root = tmp_path_factory.mktemp("killed")
    output, stats = root / "out", root / "stats"
    run = ["run", "--input", str(SAMPLE), "--output", str(output), "--weights", "offline"]
    process = subprocess.Popen([sys.executable, "-m", "fruits_lib", *run, "--master", "local[2]"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                               start_new_session=True)
    for line in process.stdout:
        if line.startswith("[3/5] featurizing"):
            time.sleep(2)
            os.killpg(process.pid, signal.SIGKILL)  # the driver, its JVM and its Python workers
            break
    process.wait(timeout=60)
    seen = {"returncode": process.returncode, "pid": process.pid,
            "summary": (output / "summary.json").exists(), "features": (output / "features").exists(),
            "staged": list((output / "_runs").iterdir()),
            "lock_pid": json.loads((output / "_lock.json").read_text())["pid"]}

    # the same command line, with bench.observe's hook failing partition 1's first attempt in its worker
    observed = [sys.executable, "-m", "bench.observe", "--stats", str(stats), "--fail-first-attempt", "1", "--"]
    recovery = subprocess.run([*observed, *run, "--master", "local[2,3]"], capture_output=True, text=True,
                              cwd=ROOT, env=dict(os.environ, AWS_SECRET_ACCESS_KEY="FAKE-SECRET-VALUE"),
                              timeout=600)
    return seen, recovery, output, stats


@pytest.mark.slow  # two real processes, one of them killed
def test_a_killed_run_never_looks_complete_and_the_next_run_recovers(killed_then_recovered):
    seen, result, output, _ = killed_then_recovered
    assert seen["returncode"] == -signal.SIGKILL
    assert not seen["summary"] and not seen["features"]
    assert seen["staged"]  # only a staging area was left behind
    assert seen["lock_pid"] == seen["pid"]  # and the dead run's lock

    assert result.returncode == 0, result.stderr[-2000:]
    assert "removed the leftovers of interrupted run" in result.stdout
    assert "took over the lock of run" in result.stdout and "its process is gone" in result.stdout
    assert json.loads((output / "summary.json").read_text())["images_ok"] == 160
    assert not (output / "_runs").exists()


@pytest.mark.slow
def test_a_task_failing_once_is_retried_and_the_result_is_identical(killed_then_recovered, sample_run):
    """The reference is the session's clean run (conftest ``sample_run``: same input, weights, size)."""
    _, result, retried, stats = killed_then_recovered
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FAKE-SECRET-VALUE" not in result.stdout + result.stderr
    outputs = {"clean": sample_run[0], "retried": retried}
    assert (stats / "injected-failure-partition-1").exists()  # the first attempt really failed
    assert "FAKE-SECRET-VALUE" not in (outputs["retried"] / "summary.json").read_text()
    clean = pd.read_parquet(outputs["clean"] / "features").set_index("path").sort_index()
    retried = pd.read_parquet(outputs["retried"] / "features").set_index("path").sort_index()
    assert list(clean.index) == list(retried.index) and len(clean) == 160
    assert np.abs(np.stack(clean["features"]) - np.stack(retried["features"])).max() < 1e-6
    summaries = [json.loads((outputs[n] / "summary.json").read_text()) for n in ("clean", "retried")]
    assert summaries[0]["image_size"] == summaries[1]["image_size"] == 224
    assert summaries[0]["k"] == summaries[1]["k"]
    assert summaries[0]["images_ok"] == summaries[1]["images_ok"] == 160
