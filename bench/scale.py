"""``python -m bench --scale`` (issue 10): the chain on 5k/20k/50k augmented photos beside the plain LiteRT loop
(wall time, images/s, peak RSS of driver and workers): ``<out>/scale.json`` and ``<out>/scale.png``."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench.report import STAGES, _check, _machine, _save_figure, _versions, linear_fit
from bench.runner import (
    GIB,
    _list_images,
    _load,
    _median_run,
    _now,
    _prepare_tflite,
    _resolve_input,
    _Steps,
    _warm_page_cache,
    run_pipeline,
    run_plain_loop,
    run_timed,
)

SCALE_TARGETS = {
    "featurize_images_per_s_over_plain_litert_loop": (">=", 0.85),
    "pipeline_wall_over_plain_litert_wall_headline": ("<=", 1.6),
    "pipeline_wall_over_plain_litert_wall_20k": ("<=", 1.25),
    "wall_time_linear_in_n_r2": (">=", 0.98),
    "driver_peak_rss_largest_over_smallest": ("<=", 1.2),
    "worker_peak_rss_largest_over_smallest": ("<=", 1.2),
}


_AUGMENTED = re.compile(r"_a(\d{7})\.jpg$")


def _augmented_set(source: Path, folder: Path, count: int, seed: int, work: Path) -> dict:
    """The augmented set of ``count`` images (``fruits make-sample --augment``), reused when already made."""
    manifest = folder / "_augment.json"
    if manifest.exists():
        made = json.loads(manifest.read_text())
        if (made.get("source"), made.get("count"), made.get("seed"), made.get("written")) == (
                str(source), count, seed, count):
            return {"reused": True, **made}
    cmd = [sys.executable, "-m", "fruits_lib", "make-sample", "--from", str(source), "--augment", "--count",
           str(count), "--seed", str(seed), "--output", str(folder), "--overwrite"]
    measured = run_timed(cmd, work / "logs" / "make-sample-augment.log", timeout=7200)
    return {"reused": False, "make_sample_wall_s": measured["wall_s"], **json.loads(manifest.read_text())}


def _first_n(augmented: Path, n: int, target: Path) -> Path:
    """A folder of the augmented images with index < ``n`` (hard links): the first n of the set."""
    if target.exists():
        shutil.rmtree(target)
    linked = 0
    for path in augmented.glob("*/*.jpg"):
        match = _AUGMENTED.search(path.name)
        if match and int(match.group(1)) < n:
            (target / path.parent.name).mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target / path.parent.name / path.name)
            except OSError:
                shutil.copy2(path, target / path.parent.name / path.name)
            linked += 1
    if linked != n:
        raise SystemExit(f"{augmented} holds {linked} images of index < {n}, not {n}")
    return target


def _peaks(run: dict) -> dict:
    """Peak RSS by role of a pipeline run: driver (its Python + the JVM), one Python worker (max)."""
    roles = run["peak_rss_by_role_bytes"]
    reported = max((w["peak_rss_bytes"] for w in run.get("workers", [])), default=0)
    return {"driver_bytes": roles["driver_python"] + roles["jvm"], "driver_python_bytes": roles["driver_python"],
            "jvm_bytes": roles["jvm"], "python_worker_bytes": max(roles["python_worker"], reported),
            "python_workers_sum_bytes": roles["python_workers_sum"], "tree_bytes": run["peak_tree_rss_bytes"]}


def scale(args) -> dict:
    """The chain at growing N on augmented real photos, beside the plain LiteRT loop (issue 10, points 5-6).

    Measures, in one run: the headline pair (plain LiteRT loop, then the pipeline, on the source
    photos, ``--repeats`` times); then for each N of ``--scale-sizes`` the pipeline and (up to
    ``--scale-plain-max``) the plain loop on the first N augmented images: wall time, images/s,
    peak RSS of the driver (its Python + JVM) and of the Python workers.
    """
    started, began = _now(), time.perf_counter()
    source = _resolve_input(args.input)
    out = Path(args.out).resolve()
    work = out / "work" / "scale"
    shutil.rmtree(work / "inputs", ignore_errors=True)
    shutil.rmtree(work / "out", ignore_errors=True)
    for folder in ("logs", "out", "stats", "inputs"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    sizes = sorted(int(s) for s in args.scale_sizes.split(","))
    data = Path(args.scale_data).resolve() if args.scale_data else out / "work" / "scale-data"
    step = _Steps()
    print(f"fruits bench --scale: sizes {sizes} from {source}; {args.image_size} px; {args.master}; "
          f"load {_load()}", flush=True)
    step(f"augmented set of {max(sizes)} images ({data})")
    augmented = _augmented_set(source, data, max(sizes), args.seed, work)
    folders = {n: _first_n(data, n, work / "inputs" / f"n{n}") for n in sizes}
    step("TFLite model in the cache; page cache warmed")
    _prepare_tflite(work, args, [args.image_size])
    for folder in [source, *folders.values()]:
        _warm_page_cache(_list_images(folder))

    headline = {"plain_litert": [], "pipeline": []}
    for repeat in range(args.repeats):
        step(f"headline {repeat + 1}/{args.repeats}: plain LiteRT loop, then the pipeline, on {source.name}")
        headline["plain_litert"].append(run_plain_loop(f"scale-plain-{repeat}", source, work, args, args.image_size,
                                                       engine="litert"))
        headline["pipeline"].append(run_pipeline(f"scale-pipeline-{repeat}", source, work, args, args.image_size))
    rows = []
    for n in sizes:
        row = {"n": n}
        if n <= args.scale_plain_max:
            step(f"N = {n}: plain LiteRT loop")
            row["plain_litert"] = run_plain_loop(f"scale-plain-n{n}", folders[n], work, args, args.image_size,
                                                 engine="litert")
        step(f"N = {n}: pipeline")
        row["pipeline"] = run_pipeline(f"scale-pipeline-n{n}", folders[n], work, args, args.image_size)
        shutil.rmtree(row["pipeline"]["output"], ignore_errors=True)  # 50k rows of features: not kept
        row["peaks"] = _peaks(row["pipeline"])
        rows.append(row)
        print(f"    N = {n}: pipeline {row['pipeline']['wall_s']:.1f} s "
              f"(featurize {row['pipeline']['images_per_s_featurize_stage']} images/s), peak driver "
              f"{row['peaks']['driver_bytes'] / GIB:.2f} GiB, worker {row['peaks']['python_worker_bytes'] / GIB:.2f} GiB"
              + (f"; plain LiteRT loop {row['plain_litert']['wall_s']:.1f} s" if "plain_litert" in row else ""),
              flush=True)
    results = {
        "schema": 1, "command": " ".join(["python -m bench"] + sys.argv[1:]), "started_at": started,
        "machine": _machine(), "versions": _versions(),
        "config": {"input": str(source), "sizes": sizes, "image_size": args.image_size, "master": args.master,
                   "engine": args.engine, "batch_size": args.batch_size, "weights": args.weights,
                   "repeats": args.repeats, "plain_loop_max_n": args.scale_plain_max, "seed": args.seed},
        "augmented_set": {k: v for k, v in augmented.items() if k != "unreadable_sources"},
        "targets": {name: f"{cmp} {value}" for name, (cmp, value) in SCALE_TARGETS.items()},
        "headline": {"plain_litert": _median_run(headline["plain_litert"]), "pipeline": _median_run(headline["pipeline"]),
                     "all_plain_litert": headline["plain_litert"], "all_pipeline": headline["pipeline"]},
        "sizes": rows,
        "fit_wall": linear_fit([r["n"] for r in rows], [r["pipeline"]["wall_s"] for r in rows]),
    }
    plain_rows = [r for r in rows if "plain_litert" in r]
    if len(plain_rows) >= 2:
        results["fit_wall_plain_litert"] = linear_fit([r["n"] for r in plain_rows],
                                                      [r["plain_litert"]["wall_s"] for r in plain_rows])
    results["ratios"] = scale_ratios(results)
    results["all_targets_met"] = all(r["pass"] for r in results["ratios"].values())
    results["finished_at"] = _now()
    results["bench_wall_s"] = round(time.perf_counter() - began, 1)
    results["steps_s"] = step.finish()
    shutil.rmtree(work / "inputs", ignore_errors=True)
    shutil.rmtree(work / "out", ignore_errors=True)
    return results


def scale_ratios(results: dict) -> dict:
    """The issue's figures for the scale run, each from two fields of ``results`` (named)."""
    head, rows = results["headline"], results["sizes"]
    ratios = {"featurize_images_per_s_over_plain_litert_loop": _check(
        "featurize_images_per_s_over_plain_litert_loop",
        head["pipeline"]["images_per_s_featurize_stage"] / head["plain_litert"]["images_per_s_loop"], SCALE_TARGETS,
        "headline.pipeline.images_per_s_featurize_stage", "headline.plain_litert.images_per_s_loop")}
    ratios["pipeline_wall_over_plain_litert_wall_headline"] = _check(
        "pipeline_wall_over_plain_litert_wall_headline", head["pipeline"]["wall_s"] / head["plain_litert"]["wall_s"],
        SCALE_TARGETS, "headline.pipeline.wall_s", "headline.plain_litert.wall_s")
    with_plain = [i for i, r in enumerate(rows) if "plain_litert" in r]
    if with_plain:
        i = min(with_plain, key=lambda j: abs(rows[j]["n"] - 20000))
        ratios["pipeline_wall_over_plain_litert_wall_20k"] = _check(
            "pipeline_wall_over_plain_litert_wall_20k", rows[i]["pipeline"]["wall_s"] / rows[i]["plain_litert"]["wall_s"],
            SCALE_TARGETS, f"sizes.{i}.pipeline.wall_s (N = {rows[i]['n']})", f"sizes.{i}.plain_litert.wall_s")
    ratios["wall_time_linear_in_n_r2"] = _check("wall_time_linear_in_n_r2", results["fit_wall"]["r2"], SCALE_TARGETS,
                                                "fit_wall.r2", None)
    last = len(rows) - 1
    for name, field in (("driver_peak_rss_largest_over_smallest", "driver_bytes"),
                        ("worker_peak_rss_largest_over_smallest", "python_worker_bytes")):
        ratios[name] = _check(name, rows[-1]["peaks"][field] / rows[0]["peaks"][field], SCALE_TARGETS,
                              f"sizes.{last}.peaks.{field}", f"sizes.0.peaks.{field}")
    return ratios


def print_scale_report(results: dict) -> None:
    head = results["headline"]
    print(f"\nHeadline ({head['pipeline']['n']} photos): plain LiteRT loop {head['plain_litert']['wall_s']:.1f} s "
          f"({head['plain_litert']['images_per_s_loop']} images/s in its loop), pipeline {head['pipeline']['wall_s']:.1f} s "
          f"(featurize {head['pipeline']['images_per_s_featurize_stage']} images/s; stages "
          + ", ".join(f"{k} {head['pipeline']['seconds'].get(k, 0):.1f}" for k in STAGES) + ")")
    print(f"\n  {'N':>7s} {'wall s':>8s} {'img/s e2e':>10s} {'featurize':>10s} {'plain s':>8s} {'ratio':>6s} "
          f"{'driver GiB':>11s} {'worker GiB':>11s}")
    for row in results["sizes"]:
        run, peaks, plain = row["pipeline"], row["peaks"], row.get("plain_litert")
        print(f"  {row['n']:7d} {run['wall_s']:8.1f} {run['images_per_s_end_to_end']:10.1f} "
              f"{run['images_per_s_featurize_stage']:10.1f} {plain['wall_s'] if plain else float('nan'):8.1f} "
              f"{run['wall_s'] / plain['wall_s'] if plain else float('nan'):6.2f} {peaks['driver_bytes'] / GIB:11.3f} "
              f"{peaks['python_worker_bytes'] / GIB:11.3f}")
    fit = results["fit_wall"]
    print(f"\n  pipeline wall = {fit['intercept_s']:.1f} s + N x {fit['slope_s_per_image'] * 1000:.2f} ms (R^2 {fit['r2']:.4f})")
    print(f"\n  {'figure':50s} {'value':>9s}  {'target':>8s}  verdict")
    for name, ratio in results["ratios"].items():
        print(f"  {name:50s} {ratio['value']:9.3f}  {ratio['target']:>8s}  {'PASS' if ratio['pass'] else 'FAIL'}")
    print(f"\nall targets met: {results['all_targets_met']}   (scale benchmark took {results['bench_wall_s']:.0f} s)")


def plot_scale(results: dict, path: Path) -> None:
    """Left: wall time against N (pipeline, plain LiteRT loop, fitted line); right: peak RSS by role."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["sizes"]
    ns = np.array([r["n"] for r in rows])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.plot(ns, [r["pipeline"]["wall_s"] for r in rows], "o-", label="pipeline (python -m fruits_lib run)")
    fit = results["fit_wall"]
    line = np.linspace(0, ns.max(), 50)
    left.plot(line, fit["intercept_s"] + fit["slope_s_per_image"] * line, ":", color="grey",
              label=f"fit: {fit['intercept_s']:.0f} s + N x {fit['slope_s_per_image'] * 1000:.2f} ms (R² {fit['r2']:.3f})")
    plain = [r for r in rows if "plain_litert" in r]
    if plain:
        left.plot([r["n"] for r in plain], [r["plain_litert"]["wall_s"] for r in plain], "k^-",
                  label="plain LiteRT loop (one process, all cores)")
    left.set_xlabel("N images (augmented real photos)")
    left.set_ylabel("wall seconds (process start to exit)")
    left.set_title(f"Wall time at {results['config']['image_size']} px on {results['config']['master']}")
    left.set_xlim(left=0)
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    for field, label, style in (("jvm_bytes", "JVM (driver + executors)", "s-"),
                                ("driver_python_bytes", "driver Python", "o-"),
                                ("python_worker_bytes", "one Python worker (max)", "^-"),
                                ("python_workers_sum_bytes", "all Python workers", "v--")):
        right.plot(ns, [r["peaks"][field] / GIB for r in rows], style, label=label)
    right.set_xlabel("N images")
    right.set_ylabel("peak RSS, GiB")
    right.set_ylim(bottom=0)
    right.set_title("Peak memory by process role")
    right.legend(fontsize=8)
    _save_figure(fig, results, "fruits_lib scale benchmark", path)
