"""bench (``python -m bench``): the harness runs end to end on a tiny N and reports ratios of measured values.

A smoke test of the harness itself (structure and arithmetic), never of the timings: those
depend on the machine and on whatever else runs on it. The end-to-end run (~2 min) is ``slow``.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, SAMPLE

from bench.report import TARGETS, get_path, linear_fit
from bench.runner import replicate


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """``python -m bench`` on a tiny N: ``(its folder, results.json, its stdout)``."""
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--input", str(SAMPLE), "--sizes", "40,80",
         "--headline-n", "80", "--image-size", "96", "--skip-study", "--skip-cold", "--skip-parallel",
         "--skip-ablations", "--skip-plain-scaling", "--repeats", "1",
         "--pure-seconds", "0.5", "--pca-solvers", "eigh", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text()), result.stdout


@pytest.mark.slow
def test_writes_results_plot_and_cleans_its_work_folder(bench_run):
    out, _, stdout = bench_run
    assert (out / "results.json").stat().st_size > 0
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "work").exists()  # replicated photos and run outputs are not left behind
    for name in TARGETS:
        assert name in stdout
    assert "PASS" in stdout or "FAIL" in stdout


@pytest.mark.slow
def test_results_structure(bench_run):
    _, results, _ = bench_run
    for key in ("machine", "versions", "config", "setup", "runs", "pure_inference", "pca", "all_workers",
                "ratios", "all_targets_met", "bench_wall_s"):
        assert key in results, key
    assert results["machine"]["logical_cpus"] >= 1 and results["versions"]["pyspark"]
    runs = results["runs"]
    assert [r["n"] for r in runs["scaling"]] == [40, 80]
    assert runs["headline"]["n"] == 80 and runs["headline"]["pipeline_run_is_scaling_run"]
    for run in runs["scaling"] + [runs["headline"]["plain_loop"]]:
        assert run["wall_s"] > 0 and run["images_per_s_end_to_end"] > 0
    for run in runs["scaling"]:
        assert run["images_ok"] == run["n"]
        assert set(run["seconds"]) >= {"spark", "list", "featurize", "write", "pca"}
        assert run["worker_count"] >= 1 and run["max_builds_per_worker"] >= 1
        assert run["max_peak_rss_per_worker_bytes"] > 0
    assert runs["headline"]["plain_loop"]["n"] == 80
    litert = runs["headline"]["plain_litert"]  # issue 10's yardstick: the pipeline's engine without Spark
    assert litert["n"] == 80 and litert["engine"] == "litert" and litert["images_per_s_loop"] > 0
    assert not litert["tensorflow_imported"]  # the cached TFLite model needs no TensorFlow
    pure = results["pure_inference"]
    assert pure["reference_for_targets"] == "keras_all_cores"
    for name in ("keras_all_cores", "tflite_1_thread", "tflite_all_threads"):
        assert pure[name]["images_per_s"] > 0 and pure[name]["image_size"] == 96
    for name in ("litert", "tf_lite"):
        assert results["worker_build"][name]["seconds"] > 0
    assert not results["worker_build"]["litert"]["tensorflow_imported"]
    assert results["worker_build"]["tf_lite"]["tensorflow_imported"]
    assert results["pca"]["rows"] == 80 and results["pca"]["same_k"]
    assert results["pca"]["max_abs_diff_explained_variance_ratio_top50"] < 1e-6
    assert "size_study" not in results  # --skip-study


@pytest.mark.slow
def test_ratios_are_computed_from_measured_fields(bench_run):
    _, results, _ = bench_run
    assert set(results["ratios"]) == set(TARGETS)
    for name, ratio in results["ratios"].items():
        numerator = get_path(results, ratio["numerator"])
        expected = numerator / get_path(results, ratio["denominator"]) if ratio["denominator"] else numerator
        assert ratio["value"] == pytest.approx(expected, rel=1e-3, abs=1e-4), name
        comparison, threshold = TARGETS[name]
        assert ratio["target"] == f"{comparison} {threshold}"
        assert ratio["pass"] == (expected <= threshold if comparison == "<=" else expected >= threshold)
    assert results["all_targets_met"] == all(r["pass"] for r in results["ratios"].values())
    scaling = results["runs"]["scaling"]
    fit = linear_fit([r["n"] for r in scaling], [r["wall_s"] for r in scaling])
    assert results["runs"]["scaling_fit_wall"]["r2"] == pytest.approx(fit["r2"])


def test_linear_fit_and_replicate(tmp_path):
    fit = linear_fit([500, 1000, 2000, 4000], [10 + 0.01 * n for n in (500, 1000, 2000, 4000)])
    assert fit["r2"] == pytest.approx(1.0) and fit["slope_s_per_image"] == pytest.approx(0.01)
    assert linear_fit([1, 2, 3], [1, 3, 2])["r2"] < 0.5
    folder = replicate(SAMPLE, 170, tmp_path / "n170")  # more than the 160 sample images
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert len(files) == 170
    assert {p.parent.name for p in files} == {p.name for p in SAMPLE.iterdir() if p.is_dir()}
    assert sum("__r1" in p.name for p in files) == 10
    assert np.all([p.stat().st_size > 0 for p in files])


def test_ablations_are_spark_settings_of_the_bench_session_not_library_arguments():
    from bench.ablate import ablated_conf
    from fruits_lib.support import session

    before = dict(session.LOCAL_DEFAULTS)
    conf = ablated_conf(["arrow_batch", "jit", "conf:spark.sql.shuffle.partitions=2"])
    assert session.LOCAL_DEFAULTS == before  # nothing in the library was changed
    settings = session.local_settings("local[2]", conf)  # what get_spark(conf=...) starts the driver with
    assert settings["spark.sql.execution.arrow.maxRecordsPerBatch"] == "10000"
    assert "TieredStopAtLevel" not in settings["spark.driver.extraJavaOptions"]
    assert settings["spark.driver.extraJavaOptions"].startswith("-Xms")  # the fixed heap stays
    assert settings["spark.sql.shuffle.partitions"] == "2"
    assert ablated_conf([]) == {}
    with pytest.raises(SystemExit, match="unknown ablation"):
        ablated_conf(["nope"])


def test_scale_helpers_take_the_first_n_images_and_judge_each_ratio(tmp_path):
    """Scale mode's own arithmetic on made-up figures (the mode itself runs for ~35 min: make bench-scale)."""
    from bench.scale import SCALE_TARGETS, _first_n, scale_ratios

    for index in range(10):
        folder = tmp_path / "augmented" / ("apple" if index % 2 else "kiwi")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"photo{index % 3}_a{index:07d}.jpg").write_bytes(b"x")
    subset = _first_n(tmp_path / "augmented", 4, tmp_path / "n4")
    assert sorted(p.name for p in subset.rglob("*.jpg")) == [
        "photo0_a0000000.jpg", "photo0_a0000003.jpg", "photo1_a0000001.jpg", "photo2_a0000002.jpg"]
    with pytest.raises(SystemExit, match="not 20"):
        _first_n(tmp_path / "augmented", 20, tmp_path / "n20")

    def run(wall, featurize=100.0):
        return {"wall_s": wall, "images_per_s_featurize_stage": featurize}

    gib = 1024 ** 3
    results = {
        "headline": {"pipeline": run(24.0, featurize=90.0), "plain_litert": {"wall_s": 16.0, "images_per_s_loop": 100.0}},
        "sizes": [{"n": 5000, "pipeline": run(60.0), "plain_litert": {"wall_s": 50.0},
                   "peaks": {"driver_bytes": 2 * gib, "python_worker_bytes": gib}},
                  {"n": 20000, "pipeline": run(210.0), "plain_litert": {"wall_s": 160.0},
                   "peaks": {"driver_bytes": 2.2 * gib, "python_worker_bytes": 1.3 * gib}}],
        "fit_wall": linear_fit([5000, 20000], [60.0, 210.0]),
    }
    ratios = scale_ratios(results)
    assert set(ratios) == set(SCALE_TARGETS)
    assert ratios["featurize_images_per_s_over_plain_litert_loop"]["value"] == 0.9
    assert ratios["featurize_images_per_s_over_plain_litert_loop"]["pass"]
    assert ratios["pipeline_wall_over_plain_litert_wall_headline"]["value"] == 1.5
    assert ratios["pipeline_wall_over_plain_litert_wall_20k"]["value"] == round(210 / 160, 4)
    assert not ratios["pipeline_wall_over_plain_litert_wall_20k"]["pass"]  # 1.31 > 1.25
    assert ratios["driver_peak_rss_largest_over_smallest"]["pass"]  # 1.1
    assert not ratios["worker_peak_rss_largest_over_smallest"]["pass"]  # 1.3
