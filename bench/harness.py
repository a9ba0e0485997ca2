"""Benchmark harness: ``python -m bench`` or ``make bench`` (issue 5), run from a checkout.

One command, one run, one machine: it measures the pipeline end to end through its CLI,
a plain single-process Keras loop and a plain LiteRT loop (the pipeline's engine without Spark) over the same files, pure inference on pre-decoded arrays,
Spark PCA against scikit-learn PCA on the same features, how the pipeline's wall time grows
with N, the Python workers' model builds and peak memory, and an input-size study (speed and
real-photo accuracy). It writes ``<out>/results.json`` and ``<out>/benchmark.png`` and prints
the target ratios, each computed from two figures measured in this same run, with PASS/FAIL.

Every timed command runs in its own subprocess, so each wall time includes its own start-up
(Python imports, JVM, TensorFlow) exactly as a user would pay it. Replicated inputs and run
outputs live in ``<out>/work/`` (git-ignored) and are deleted at the end unless ``--keep-work``.

``--scale`` measures instead the chain on 5k/20k/50k augmented photos beside the plain LiteRT loop
(wall time, images/s, peak RSS of driver and workers): ``<out>/scale.json`` and ``<out>/scale.png``.

Split by job: ``runner`` (timed subprocesses), ``probes`` (the internal modes ``--plain-loop``,
``--pure-inference``, ``--build-time``, ``--pca-compare``, each a program of its own), ``report`` (ratios,
printout, figure), ``scale`` (``--scale``); this module orchestrates them and parses the arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench.probes import build_time, pca_compare, plain_loop, pure_inference
from bench.report import (
    TARGETS,
    _all_workers,
    _machine,
    _versions,
    compute_ratios,
    linear_fit,
    plot,
    print_report,
)
from bench.runner import (
    DEFAULT_INPUT,
    _cold_cache,
    _list_images,
    _load,
    _median_run,
    _now,
    _prepare_tflite,
    _resolve_input,
    _Steps,
    _warm_page_cache,
    replicate,
    run_ablations,
    run_build_times,
    run_pca_compare,
    run_pipeline,
    run_plain_loop,
    run_pure_inference,
    run_pure_parallel,
)
from bench.scale import plot_scale, print_scale_report, scale
from fruits_lib.support.store import write_atomically


def harness(args) -> dict:
    """Run every measurement in a fixed order and return the results document."""
    started, began = _now(), time.perf_counter()
    source = _resolve_input(args.input)
    out = Path(args.out).resolve()
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    (work / "out").mkdir(parents=True)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    study = [] if args.skip_study else sorted(int(s) for s in args.study_sizes.split(","))
    images = _list_images(source)
    print(f"fruits bench: {len(images)} images under {source}; sizes {sizes}; {args.image_size} px; "
          f"{args.master}; load {_load()}", flush=True)

    results: dict = {
        "schema": 1, "command": " ".join(["python -m bench"] + sys.argv[1:]), "started_at": started,
        "machine": _machine(), "versions": _versions(),
        "config": {"input": str(source), "input_images": len(images), "image_size": args.image_size,
                   "sizes": sizes, "study_sizes": study, "master": args.master, "engine": args.engine,
                   "batch_size": args.batch_size, "weights": args.weights, "repeats": args.repeats,
                   "headline_n": args.headline_n or len(images),
                   "pure_seconds": args.pure_seconds},
        "targets": {name: f"{cmp} {value}" for name, (cmp, value) in TARGETS.items()},
    }
    step = _Steps()

    step("replicating inputs and warming the page cache")
    folders = {n: replicate(source, n, work / "inputs" / f"n{n}") for n in sizes}
    _warm_page_cache(images)
    for folder in folders.values():
        _warm_page_cache(_list_images(folder))

    step("TFLite models in the cache (fetch-weights, as the EMR bootstrap does)")
    results["setup"] = {"tflite": _prepare_tflite(work, args, sorted({args.image_size, *study}))}

    runs: dict = {}
    if not args.skip_cold:
        step("pipeline, cold TFLite cache (the driver converts Keras -> TFLite)")
        runs["pipeline_cold_cache"] = run_pipeline("pipeline-cold", source, work, args, args.image_size,
                                                   env=_cold_cache(work, args))

    headline_n = args.headline_n or len(images)
    head_dir = source if headline_n == len(images) else folders.get(headline_n) or replicate(
        source, headline_n, work / "inputs" / f"n{headline_n}")
    shared = headline_n in sizes and args.repeats == 1  # the scaling run at that N is the headline run
    headline = {"plain_loop": [], "plain_litert": [], "pipeline": []}
    for repeat in range(args.repeats):
        step(f"headline {repeat + 1}/{args.repeats}: plain Keras loop, plain LiteRT loop, then the pipeline, "
             f"on {headline_n} images")
        headline["plain_loop"].append(run_plain_loop(f"plain-{repeat}", head_dir, work, args, args.image_size))
        headline["plain_litert"].append(run_plain_loop(f"plain-litert-{repeat}", head_dir, work, args, args.image_size,
                                                       engine="litert"))
        if not shared:
            headline["pipeline"].append(run_pipeline(f"pipeline-{repeat}", head_dir, work, args, args.image_size))

    scaling = []
    for n in sizes:
        step(f"pipeline scaling: N = {n}")
        scaling.append(run_pipeline(f"pipeline-n{n}", folders[n], work, args, args.image_size))
        if shared and n == headline_n:
            headline["pipeline"].append(scaling[-1])
    runs["headline"] = {
        "n": headline_n, "input": str(head_dir), "pipeline_run_is_scaling_run": shared,
        "plain_loop": _median_run(headline["plain_loop"]), "pipeline": _median_run(headline["pipeline"]),
        "plain_litert": _median_run(headline["plain_litert"]),
        "all_plain_loop": headline["plain_loop"], "all_plain_litert": headline["plain_litert"],
        "all_pipeline": headline["pipeline"],
    }
    runs["scaling"] = scaling
    if not args.skip_plain_scaling:
        plain = []
        for n in sizes:
            if n == headline_n and args.repeats == 1:
                plain.append(runs["headline"]["plain_loop"])
                continue
            step(f"plain Keras loop scaling: N = {n}")
            plain.append(run_plain_loop(f"plain-n{n}", folders[n], work, args, args.image_size))
        runs["scaling_plain_loop"] = plain
        runs["scaling_plain_fit_wall"] = linear_fit([r["n"] for r in plain], [r["wall_s"] for r in plain])
        runs["scaling_ratio_pipeline_over_plain"] = [
            {"n": p["n"], "ratio": round(p["wall_s"] / q["wall_s"], 4)} for p, q in zip(scaling, plain)]
    runs["scaling_fit_wall"] = linear_fit([r["n"] for r in scaling], [r["wall_s"] for r in scaling])
    runs["scaling_fit_featurize"] = linear_fit([r["n"] for r in scaling],
                                               [r["seconds"]["featurize"] for r in scaling])
    results["runs"] = runs

    step("pure inference on pre-decoded arrays (Keras all cores; TFLite 1 and all threads)")
    threads = os.cpu_count() or 1
    pure = run_pure_inference(work, args, source, args.image_size,
                              f"keras:0,tflite:1,tflite:{threads},tflite:1:{args.batch_size}", "main")
    results["pure_inference"] = {
        "reference_for_targets": "keras_all_cores",
        "keras_all_cores": pure["keras:0"], "tflite_1_thread": pure["tflite:1"],
        "tflite_all_threads": pure[f"tflite:{threads}"],
        "tflite_1_thread_invoke_batch_32": pure[f"tflite:1:{args.batch_size}"],
        "load_before": pure["load_before"], "load_after": pure["load_after"],
    }
    step("model load in a fresh Python process: LiteRT vs tf.lite (import tensorflow)")
    results["worker_build"] = run_build_times(work, args, args.image_size)
    if not args.skip_parallel:
        step(f"pure inference, {threads} TFLite processes x 1 thread (the pipeline's layout)")
        results["pure_inference"]["tflite_processes_x_1_thread"] = run_pure_parallel(
            work, args, source, args.image_size, threads)

    step("Spark ML PCA against scikit-learn PCA on the headline features")
    results["pca"] = run_pca_compare(work, args, str(Path(runs["headline"]["pipeline"]["output"]) / "features"))

    if study:
        results["size_study"] = _size_study(work, args, source, study, runs["headline"]["pipeline"], step)
    if not args.skip_ablations:
        results["ablations"] = run_ablations(work, args, Path(runs["headline"]["input"]), runs["headline"]["pipeline"],
                                             step)

    results["all_workers"] = _all_workers(results)
    results["ratios"] = compute_ratios(results)
    results["all_targets_met"] = all(r["pass"] for r in results["ratios"].values())
    results["finished_at"] = _now()
    results["bench_wall_s"] = round(time.perf_counter() - began, 1)
    results["steps_s"] = step.finish()
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _size_study(work: Path, args, source: Path, sizes: list, headline: dict, step) -> list:
    rows = []
    for size in sizes:
        if size == args.image_size:
            run = headline
        else:
            step(f"size study: pipeline at {size} px")
            run = run_pipeline(f"pipeline-{size}px", source, work, args, size)
        step(f"size study: pure inference and accuracy at {size} px")
        pure = run_pure_inference(work, args, source, size, "tflite:1", f"{size}px")["tflite:1"]
        accuracy = size_study_accuracy(str(Path(run["output"]) / "features"))
        rows.append({"image_size": size, "pipeline_wall_s": run["wall_s"],
                     "pipeline_images_per_s_end_to_end": run["images_per_s_end_to_end"],
                     "pipeline_images_per_s_featurize_stage": run["images_per_s_featurize_stage"],
                     "featurize_s": run["seconds"]["featurize"],
                     "pure_tflite_1_thread_images_per_s": pure["images_per_s"],
                     "max_peak_rss_per_worker_bytes": run["max_peak_rss_per_worker_bytes"],
                     "max_builds_per_worker": run["max_builds_per_worker"],
                     "load_before": run["load_before"], **accuracy})
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--input", default=DEFAULT_INPUT, help=f"image folder (default: {DEFAULT_INPUT})")
    parser.add_argument("--sizes", default="500,1000,2000,4000", help="N for the scaling runs")
    parser.add_argument("--image-size", type=int, default=224, help="network input side in pixels")
    parser.add_argument("--study-sizes", default="96,128,160,224", help="input sizes of the size study")
    parser.add_argument("--out", default="bench", help="folder for results.json and benchmark.png")
    parser.add_argument("--master", default="local[2]", help="Spark master of the pipeline runs")
    parser.add_argument("--weights", default="offline", help="weights of both the pipeline and the loop")
    parser.add_argument("--engine", default="tflite", choices=("tflite", "keras"), help="pipeline engine")
    parser.add_argument("--batch-size", type=int, default=32, help="inference batch of every method")
    parser.add_argument("--repeats", type=int, default=2,
                        help="headline repeats, plain loop and pipeline interleaved (lower median kept)")
    parser.add_argument("--headline-n", type=int, default=0,
                        help="images of the headline comparison (default: the input folder as it is)")
    parser.add_argument("--pure-seconds", type=float, default=6.0, help="duration of each pure-inference run")
    parser.add_argument("--pca-solvers", default="eigh,spark",
                        help="fruits_lib.reduce solvers timed against scikit-learn (first: the pipeline's)")
    parser.add_argument("--skip-study", action="store_true", help="no input-size study")
    parser.add_argument("--skip-cold", action="store_true", help="no cold-TFLite-cache pipeline run")
    parser.add_argument("--skip-parallel", action="store_true", help="no multi-process pure inference")
    parser.add_argument("--skip-ablations", action="store_true", help="no lever-by-lever pipeline runs")
    parser.add_argument("--skip-plain-scaling", action="store_true", help="plain loop at the headline N only")
    parser.add_argument("--keep-work", action="store_true", help="keep <out>/work (inputs, outputs, logs)")
    scaling = parser.add_argument_group("scale mode (--scale): <out>/scale.json and <out>/scale.png")
    scaling.add_argument("--scale", action="store_true",
                         help="run the chain on --scale-sizes augmented images beside the plain LiteRT loop")
    scaling.add_argument("--scale-sizes", default="5000,20000,50000", help="N of the scale runs")
    scaling.add_argument("--scale-plain-max", type=int, default=20000,
                         help="largest N at which the plain LiteRT loop also runs (default: 20000)")
    scaling.add_argument("--scale-data", help="folder of the augmented set, kept between runs "
                                              "(default: <out>/work/scale-data)")
    scaling.add_argument("--seed", type=int, default=0, help="seed of the augmented set")
    internal = parser.add_argument_group("internal modes (run by the harness)")
    internal.add_argument("--plain-loop", action="store_true", help=argparse.SUPPRESS)
    internal.add_argument("--plain-output", help=argparse.SUPPRESS)
    internal.add_argument("--plain-engine", default="keras", choices=("keras", "litert"), help=argparse.SUPPRESS)
    internal.add_argument("--plain-model", help=argparse.SUPPRESS)  # litert: this .tflite file (e.g. int8)
    internal.add_argument("--pure-inference", help=argparse.SUPPRESS)
    internal.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    internal.add_argument("--pca-compare", action="store_true", help=argparse.SUPPRESS)
    internal.add_argument("--build-time", action="store_true", help=argparse.SUPPRESS)
    internal.add_argument("--tf-lite", action="store_true", help=argparse.SUPPRESS)
    internal.add_argument("--features", help=argparse.SUPPRESS)
    internal.add_argument("--json-out", help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--peers"]:  # issue 22: the chain against Ray Data and Daft (bench/peers.py)
        from bench.peers import main as peers

        return peers(argv[1:])
    args = build_parser().parse_args(argv)
    if args.plain_loop:
        return plain_loop(args)
    if args.pure_inference:
        return pure_inference(args)
    if args.pca_compare:
        return pca_compare(args)
    if args.build_time:
        return build_time(args)
    out = Path(args.out)
    name, figure, draw, report = (("scale.json", "scale.png", plot_scale, print_scale_report) if args.scale
                                  else ("results.json", "benchmark.png", plot, print_report))
    results = scale(args) if args.scale else harness(args)
    write_atomically(str(out / name), json.dumps(results, indent=1).encode())
    draw(results, out / figure)
    report(results)
    print(f"wrote {out / name} and {out / figure}")


def size_study_accuracy(features_dir: str, seed: int = 0) -> dict:
    """Held-out accuracy of a logistic regression on the pipeline's features (25% stratified split).

    Fruits-360 photos of one class are frames of one rotating fruit, so a random split is easy;
    the 5-per-class probe (5 training images per class, everything else held out) separates sizes
    better when the full split saturates.
    """
    import pyarrow.parquet as pq
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    table = pq.read_table(features_dir, columns=["path", "label", "features"]).to_pandas()
    table = table.sort_values("path").reset_index(drop=True)
    x = np.stack(table["features"].to_numpy()).astype(np.float64)
    y = table["label"].to_numpy()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    model.fit(x_train, y_train)
    result = {"images": int(len(y)), "classes": int(len(set(y))), "test_images": int(len(y_test)),
              "accuracy": round(float(accuracy_score(y_test, model.predict(x_test))), 4),
              "log_loss": round(float(log_loss(y_test, model.predict_proba(x_test), labels=model.classes_)), 4)}
    rng = np.random.default_rng(seed)
    train = np.concatenate([rng.choice(np.nonzero(y == c)[0], size=5, replace=False) for c in np.unique(y)])
    test = np.setdiff1d(np.arange(len(y)), train)
    few = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x[train], y[train])
    result["accuracy_5_per_class"] = round(float(accuracy_score(y[test], few.predict(x[test]))), 4)
    return result


if __name__ == "__main__":
    main()
