"""The targets, their ratios (each computed from two figures measured in the same run), the printed report
and ``benchmark.png``."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from bench.runner import GIB

# The issue's targets, as (comparison, threshold); every ratio is measured within one run.
TARGETS = {
    "pipeline_wall_over_plain_loop_wall": ("<=", 0.9),
    "pipeline_images_per_s_over_pure_keras_images_per_s": (">=", 0.8),
    "max_model_builds_per_worker": ("<=", 1),
    "max_peak_rss_per_worker_gib": ("<=", 1.5),
    "wall_time_linear_in_n_r2": (">=", 0.98),
}


STAGES = ("weights", "spark", "list", "featurize", "write", "pca", "publish")


def linear_fit(xs, ys) -> dict:
    """Least-squares line ``y = intercept + slope * x`` and its R^2."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual ** 2).sum()) / total if total > 0 else 1.0
    return {"slope_s_per_image": float(slope), "intercept_s": float(intercept), "r2": r2}


def get_path(document: dict, dotted: str):
    """The value at ``a.b.0.c`` in nested dicts/lists (how ratios name their measured inputs)."""
    value = document
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _ratio(results: dict, name: str, numerator: str, denominator: str | None = None) -> dict:
    """A target figure computed from fields of ``results`` (a ratio, or one value if no denominator)."""
    top = get_path(results, numerator)
    value = top / get_path(results, denominator) if denominator else top
    return _check(name, value, TARGETS, numerator, denominator)


def _check(name: str, value: float, targets: dict, numerator: str, denominator: str | None) -> dict:
    """``value`` judged against ``targets[name]``, with the fields it was computed from."""
    comparison, threshold = targets[name]
    passed = value <= threshold if comparison == "<=" else value >= threshold
    return {"value": round(float(value), 4), "target": f"{comparison} {threshold}", "pass": bool(passed),
            "numerator": numerator, "denominator": denominator}


def _all_workers(results: dict) -> dict:
    """Builds and peak RSS over every Python worker of every warm-cache pipeline run."""
    runs = results["runs"]
    records = {r["name"]: r for r in list(runs["headline"]["all_pipeline"]) + list(runs["scaling"])}.values()
    workers = [w for r in records for w in r["workers"]]
    return {
        "runs": len(records), "workers": len(workers),
        "max_builds_per_worker": max((max(w["builds"].values(), default=0) for w in workers), default=0),
        "max_peak_rss_per_worker_bytes": max((w["peak_rss_bytes"] for w in workers), default=0),
        "max_peak_rss_per_worker_gib": round(max((w["peak_rss_bytes"] for w in workers), default=0) / GIB, 3),
    }


def compute_ratios(results: dict) -> dict:
    """The issue's five target figures, each from fields of ``results`` named in the output."""
    return {
        "pipeline_wall_over_plain_loop_wall": _ratio(
            results, "pipeline_wall_over_plain_loop_wall",
            "runs.headline.pipeline.wall_s", "runs.headline.plain_loop.wall_s"),
        "pipeline_images_per_s_over_pure_keras_images_per_s": _ratio(
            results, "pipeline_images_per_s_over_pure_keras_images_per_s",
            "runs.headline.pipeline.images_per_s_featurize_stage",
            "pure_inference.keras_all_cores.images_per_s"),
        "max_model_builds_per_worker": _ratio(results, "max_model_builds_per_worker",
                                              "all_workers.max_builds_per_worker"),
        "max_peak_rss_per_worker_gib": _ratio(results, "max_peak_rss_per_worker_gib",
                                              "all_workers.max_peak_rss_per_worker_gib"),
        "wall_time_linear_in_n_r2": _ratio(results, "wall_time_linear_in_n_r2", "runs.scaling_fit_wall.r2"),
    }


def informative_ratios(results: dict) -> dict:
    """Further same-run ratios shown next to the targets (not targets themselves)."""
    runs, pure = results["runs"], results["pure_inference"]
    head = runs["headline"]
    info = {
        "pipeline end-to-end images/s / pure Keras images/s":
            head["pipeline"]["images_per_s_end_to_end"] / pure["keras_all_cores"]["images_per_s"],
        "plain loop images/s / pure Keras images/s":
            head["plain_loop"]["images_per_s_end_to_end"] / pure["keras_all_cores"]["images_per_s"],
        "pure TFLite all threads / pure Keras":
            pure["tflite_all_threads"]["images_per_s"] / pure["keras_all_cores"]["images_per_s"],
    }
    if "plain_litert" in head:  # issue 10: the same engine without Spark
        info["pipeline featurize images/s / plain LiteRT loop images/s (its loop)"] = (
            head["pipeline"]["images_per_s_featurize_stage"] / head["plain_litert"]["images_per_s_loop"])
        info["pipeline wall / plain LiteRT loop wall"] = head["pipeline"]["wall_s"] / head["plain_litert"]["wall_s"]
    if "tflite_processes_x_1_thread" in pure:
        info["pipeline featurize images/s / pure TFLite processes x 1 thread"] = (
            head["pipeline"]["images_per_s_featurize_stage"] / pure["tflite_processes_x_1_thread"]["images_per_s"])
    if "pipeline_cold_cache" in runs:
        info["cold-cache pipeline wall / warm pipeline wall"] = (
            runs["pipeline_cold_cache"]["wall_s"] / head["pipeline"]["wall_s"])
    info["Spark PCA / scikit-learn PCA (seconds)"] = results["pca"]["spark_over_sklearn"]
    return {key: round(float(value), 3) for key, value in info.items()}


def print_report(results: dict) -> None:
    runs, pure = results["runs"], results["pure_inference"]
    head = runs["headline"]
    print("\nMeasured in this run (wall times include each process's start-up):")
    print(f"  plain Keras loop  {head['plain_loop']['wall_s']:7.1f} s  ({head['n']} images, "
          f"{head['plain_loop']['images_per_s_end_to_end']} images/s)")
    if "plain_litert" in head:
        print(f"  plain LiteRT loop {head['plain_litert']['wall_s']:7.1f} s  "
              f"({head['plain_litert']['images_per_s_loop']} images/s in its loop, all cores)")
    print(f"  pipeline (CLI)    {head['pipeline']['wall_s']:7.1f} s  (stages: "
          + ", ".join(f"{k} {head['pipeline']['seconds'].get(k, 0):.1f}" for k in STAGES) + ")")
    print(f"  pure inference    Keras {pure['keras_all_cores']['images_per_s']} images/s (all cores), "
          f"TFLite {pure['tflite_1_thread']['images_per_s']} (1 thread), "
          f"{pure['tflite_all_threads']['images_per_s']} (all threads)")
    print("  scaling           " + ", ".join(f"N={r['n']}: {r['wall_s']:.1f} s" for r in runs["scaling"])
          + f"  (R^2 {runs['scaling_fit_wall']['r2']:.4f})")
    print("\nTargets (each figure from two measurements of this run):")
    print(f"  {'figure':55s} {'value':>9s}  {'target':>8s}  verdict")
    for name, ratio in results["ratios"].items():
        print(f"  {name:55s} {ratio['value']:9.3f}  {ratio['target']:>8s}  {'PASS' if ratio['pass'] else 'FAIL'}")
    print("\nOther same-run ratios:")
    for name, value in informative_ratios(results).items():
        print(f"  {name:63s} {value:7.3f}")
    if runs.get("scaling_ratio_pipeline_over_plain"):
        print("  pipeline / plain loop wall time by N: " + ", ".join(
            f"N={r['n']}: {r['ratio']:.2f}" for r in runs["scaling_ratio_pipeline_over_plain"]))
    if results.get("ablations"):
        print(f"\nLevers, one switched off at a time (headline pipeline {head['pipeline']['wall_s']:.1f} s):")
        for row in results["ablations"]:
            print(f"  {row['lever_off']:12s} {row['wall_s']:6.1f} s ({row['delta_wall_s_vs_headline']:+.1f} s)  "
                  f"{row['description']}")
    if results.get("size_study"):
        print("\nInput size study (real photos, logistic regression, 25% held out):")
        for row in results["size_study"]:
            print(f"  {row['image_size']:4d} px  featurize {row['pipeline_images_per_s_featurize_stage']:7.1f} "
                  f"images/s, pure TFLite 1 thread {row['pure_tflite_1_thread_images_per_s']:7.1f}, "
                  f"accuracy {row['accuracy']:.4f}, 5-per-class {row['accuracy_5_per_class']:.4f}")
    print(f"\nall targets met: {results['all_targets_met']}   (benchmark took {results['bench_wall_s']:.0f} s)")


def _save_figure(fig, results: dict, title: str, path: Path) -> None:
    """Title the figure with the machine and the time of the run, write it as PNG and close it."""
    import matplotlib.pyplot as plt

    fig.suptitle(f"{title}, {results['machine']['cpu_model']} x{results['machine']['logical_cpus']}, "
                 f"{results['finished_at']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(results: dict, path: Path) -> None:
    """Left: images/s against N (pipeline vs references); right: seconds per stage for each N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, pure = results["runs"], results["pure_inference"]
    scaling = runs["scaling"]
    ns = [r["n"] for r in scaling]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.plot(ns, [r["images_per_s_end_to_end"] for r in scaling], "o-", label="pipeline, end to end (CLI)")
    left.plot(ns, [r["images_per_s_featurize_stage"] for r in scaling], "s--", label="pipeline, featurize stage")
    head = runs["headline"]
    if runs.get("scaling_plain_loop"):
        plain = runs["scaling_plain_loop"]
        left.plot([r["n"] for r in plain], [r["images_per_s_end_to_end"] for r in plain], "k^-",
                  label="plain Keras loop, end to end")
    else:
        left.plot([head["n"]], [head["plain_loop"]["images_per_s_end_to_end"]], "k^", markersize=9,
                  label="plain Keras loop, end to end")
    left.axhline(pure["keras_all_cores"]["images_per_s"], color="grey", linestyle=":",
                 label="pure inference, Keras all cores")
    left.axhline(0.8 * pure["keras_all_cores"]["images_per_s"], color="red", linestyle=":", linewidth=0.8,
                 label="target: 0.8 x pure Keras")
    if "tflite_processes_x_1_thread" in pure:
        left.axhline(pure["tflite_processes_x_1_thread"]["images_per_s"], color="green", linestyle=":",
                     label="pure inference, TFLite 1 thread x processes")
    left.set_xlabel("N images")
    left.set_ylabel("images / s")
    left.set_title(f"Throughput at {results['config']['image_size']} px on {results['config']['master']}")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8, loc="upper left")
    bottom = np.zeros(len(scaling))
    for stage in ("process", *STAGES):
        values = np.array([r["process_overhead_s"] if stage == "process" else r["seconds"].get(stage, 0.0)
                           for r in scaling])
        right.bar([str(n) for n in ns], values, bottom=bottom, label=stage)
        bottom += values
    right.set_xlabel("N images")
    right.set_ylabel("seconds (stacked = process wall time)")
    right.set_title("Pipeline time per stage")
    right.legend(fontsize=8)
    _save_figure(fig, results, "fruits_lib benchmark", path)


def _machine() -> dict:
    import psutil

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu_model": model or platform.processor(),
            "logical_cpus": os.cpu_count(), "physical_cores": psutil.cpu_count(logical=False),
            "memory_gib": round(psutil.virtual_memory().total / GIB, 1), "python": platform.python_version()}


def _versions() -> dict:
    from importlib import metadata

    found = {}
    for name in ("pyspark", "tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas", "pyarrow",
                 "scikit-learn", "pillow"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr
        found["java"] = java.splitlines()[0] if java else None
    except (OSError, subprocess.SubprocessError):
        found["java"] = None
    return found
