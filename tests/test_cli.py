"""The command line end to end on data_sample/, and its one-line errors.

``fruits`` (conftest) runs ``cli.main`` in this process on the session's Spark; ``cli`` starts a real
``python -m fruits_lib``, kept for the test that the entry point itself exits 2 with one line.
"""

import json

import numpy as np
import pandas as pd
import pytest
from helpers import SAMPLE, cli

# ``sample_run`` (conftest): ``fruits run`` on data_sample/ at the default size, once per session.


def test_help_documents_every_option(fruits):
    result = fruits("run", "--help")
    assert result.returncode == 0
    for option in ["--input", "--output", "--weights", "imagenet", "offline", "PATH", "--pca-variance",
                   "--pca-k", "--image-size", "--batch-size", "--master", "--mode", "--overwrite", "--engine", "--precision",
                   "--pca-reuse", "exit codes"]:
        assert option in result.stdout, option


def test_run_writes_every_output(sample_run):
    output, result = sample_run
    for name in ["features", "pca", "errors", "model", "explained_variance.png", "summary.json"]:
        assert (output / name).exists(), name
    assert (output / "explained_variance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (output / "_runs").exists()  # staging area cleaned once published
    assert "[3/5] featurizing 160 images" in result.stdout and "Fruits! run" in result.stdout
    assert f"results     {output}  (features/, errors/, pca/, model/, explained_variance.png, summary.json)" \
        in result.stdout


def test_copies_of_one_photo_are_published_without_a_pca(fruits, tmp_path):
    """One feature vector, no variance: the features stand, the PCA is skipped and the run says why, listing only
    what it published (it stopped with exit 2 and an error about a --pca-k nobody gave)."""
    photo = next((SAMPLE / "apple").iterdir())
    for label in ("apple", "pear"):
        (tmp_path / "copies" / label).mkdir(parents=True)
        (tmp_path / "copies" / label / photo.name).write_bytes(photo.read_bytes())
    output = tmp_path / "out"
    result = fruits("run", "--input", tmp_path / "copies", "--output", output, "--weights", "offline",
                    "--image-size", "64")
    assert result.returncode == 0, result.stderr[-2000:]
    reason = "the 2 featurized images have the same features (no variance)"
    assert f"[4/5] PCA: {reason}, skipped" in result.stdout and f"PCA         skipped: {reason}" in result.stdout
    assert f"results     {output}  (features/, errors/, summary.json)" in result.stdout
    summary = json.loads((output / "summary.json").read_text())
    assert (summary["images_ok"], summary["k"], summary["pca"], summary["pca_skipped_because"]) == (2, None, "skipped", reason)
    published = sorted(p.name for p in output.iterdir() if not p.name.startswith("."))  # not Hadoop's .crc files
    assert sorted(summary["outputs"]) == published == ["errors", "features", "summary.json"]
    assert len(pd.read_parquet(output / "features")) == 2
    trained = fruits("train", "--features", output, "--model", tmp_path / "model")  # no model to build on
    assert trained.returncode == 2 and f"has no PCA nor model to train on: {reason}" in trained.stderr


def test_outputs_have_the_right_shapes_and_consistent_counts(sample_run):
    output, _ = sample_run
    summary = json.loads((output / "summary.json").read_text())
    features = pd.read_parquet(output / "features")
    pca = pd.read_parquet(output / "pca")
    errors = pd.read_parquet(output / "errors")
    assert summary["images_in"] == summary["images_ok"] + summary["images_failed"] == 160
    assert len(features) == summary["images_ok"] == 160 and len(errors) == summary["images_failed"] == 0
    assert features["path"].is_unique and set(features["label"]) == set(summary["labels"])
    assert all(len(v) == 1280 and v.dtype == np.float32 for v in features["features"])
    assert summary["labels"] == {label.name: 20 for label in SAMPLE.iterdir() if label.is_dir()}
    k = summary["k"]
    assert len(pca) == 160 and all(len(v) == k for v in pca["pca"])
    assert len(summary["explained_variance_ratio"]) == len(summary["cumulative"]) == k
    assert summary["cumulative"][-1] >= 0.95 > summary["cumulative"][-2]
    assert np.isclose(np.sum(summary["explained_variance_ratio"]), summary["cumulative"][-1])
    assert set(summary["seconds"]) >= {"weights", "spark", "list", "featurize", "write", "pca", "total"}
    assert summary["versions"]["spark"].startswith("3.5") and summary["versions"]["tensorflow"].startswith("2.19")


def test_summary_records_the_weights_fingerprint(sample_run, offline_weights):
    summary = json.loads((sample_run[0] / "summary.json").read_text())
    assert summary["weights"] == {"source": "offline", "sha256": offline_weights.sha256,
                                  "bytes": offline_weights.nbytes}
    assert summary["image_size"] == 224


def test_saved_model_reproduces_the_published_pca(sample_run, spark):
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array

    from fruits_lib.load import read_images

    output = sample_run[0]
    model = PipelineModel.load(str(output / "model"))
    images = read_images(spark, str(SAMPLE / "grape"))
    again = model.transform(images).select("path", vector_to_array("pca").alias("pca")).toPandas()
    published = pd.read_parquet(output / "pca").set_index("path")
    for path, values in zip(again["path"], again["pca"]):
        assert np.allclose(values, published.loc[path, "pca"], atol=1e-3)


def test_rerun_refuses_to_overwrite_silently(sample_run, fruits):
    output, _ = sample_run
    before = (output / "summary.json").read_text()
    result = fruits("run", "--input", str(SAMPLE), "--output", str(output), "--weights", "offline")
    assert result.returncode == 2
    assert "already holds results" in result.stderr and "--overwrite" in result.stderr
    assert (output / "summary.json").read_text() == before


@pytest.mark.parametrize("args, message", [
    (["--input", "/no/such/folder"], "input folder not found"),
    (["--weights", "imagenette"], "unknown weights source"),
    (["--output", "/proc/fruits-out"], "cannot write to"),
    (["--image-size", "8"], "--image-size must be between"),
    (["--pca-variance", "1.5"], "must be in (0, 1]"),
    (["--pca-k", "2000"], "--pca-k must be between 1 and 1280 (the features per image), not 2000"),
    (["--pca-k", "161"], f"--pca-k 161 needs at least 161 images; {SAMPLE} has 160"),  # found by the listing
])
def test_configuration_errors_exit_2_with_one_line(fruits, tmp_path, args, message):
    base = {"--input": str(SAMPLE), "--output": str(tmp_path / "out"), "--weights": "offline"}
    base.update(dict(zip(args[::2], args[1::2])))
    result = fruits("run", *[item for pair in base.items() for item in pair])
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "featurizing" not in result.stdout  # refused before the work


def test_the_installed_command_exits_2_with_one_line(tmp_path):
    """A real ``python -m fruits_lib`` process: its exit code and its stderr, as a shell sees them."""
    result = cli("run", "--input", "/no/such/folder", "--output", str(tmp_path / "out"), "--weights", "offline")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == "fruits: error: input folder not found: /no/such/folder"


def test_empty_input_folder_is_a_clear_error(fruits, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.txt").write_text("no images here")
    result = fruits("run", "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "out"),
                    "--weights", "offline")
    assert result.returncode == 2
    assert "no .jpg/.jpeg/.png image" in result.stderr and "1 other files" in result.stderr
    assert not (tmp_path / "out" / "summary.json").exists()


def test_output_into_a_closed_pipe_stops_quietly(tmp_path):
    """``fruits ... | head -1``: the reader closes the pipe; no traceback, the shell's SIGPIPE status."""
    import subprocess
    import sys

    script = ("import sys\nfrom fruits_lib import cli\n"
              "def flood(args):\n    while True:\n        print('line', flush=True)\n"
              "cli._fetch = flood\ncli.main(['fetch-weights'])\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()  # what `head -1` does once it has its line
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 141 and b"Traceback" not in errors and b"BrokenPipe" not in errors, errors


def test_app_model_defaults_are_the_recipes():
    """``fruits app-model`` states its defaults without importing the recipe (``--help`` stays fast): they
    must be the recipe's own."""
    import inspect

    from fruits_lib import app_model
    from fruits_lib.cli import build_parser

    args = build_parser().parse_args(["app-model", "--input", "in", "--model", "out"])
    defaults = inspect.signature(app_model.build_app_model).parameters
    for name in ("scenes", "seed", "pca_k", "reg_param", "refuse_unknown", "studio_bank"):
        assert getattr(args, name) == defaults[name].default, name
    assert args.feature_layers.split(",") == list(defaults["feature_layers"].default)
