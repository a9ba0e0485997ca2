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

Internal modes, used by the harness itself: ``--plain-loop``, ``--pure-inference`` and
``--pca-compare`` (each prints or writes one JSON document).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = "../shared/data/fruits360-subset"
GIB = 1024 ** 3
# The issue's targets, as (comparison, threshold); every ratio is measured within one run.
TARGETS = {
    "pipeline_wall_over_plain_loop_wall": ("<=", 0.9),
    "pipeline_images_per_s_over_pure_keras_images_per_s": (">=", 0.8),
    "max_model_builds_per_worker": ("<=", 1),
    "max_peak_rss_per_worker_gib": ("<=", 1.5),
    "wall_time_linear_in_n_r2": (">=", 0.98),
}
STAGES = ("weights", "spark", "list", "featurize", "write", "pca", "publish")


# ------------------------------------------------------------------ small helpers
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _load() -> list:
    """The 1/5/15-minute load averages: shared machine, so every measurement records them."""
    return [round(x, 2) for x in os.getloadavg()]


def _list_images(folder: Path) -> list:
    """Every image under ``folder`` (same extensions as the pipeline), sorted, hidden names skipped."""
    from fruits_lib.load import is_image_path

    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and is_image_path(path.name) and not path.name.startswith(("_", ".")):
            found.append(path)
    return found


def _interleaved(files: list) -> list:
    """Files ordered round-robin over their label folders, so any prefix holds every label."""
    by_label: dict = {}
    for path in files:
        by_label.setdefault(path.parent.name, []).append(path)
    groups = [by_label[label] for label in sorted(by_label)]
    ordered = []
    for i in range(max(len(g) for g in groups)):
        ordered.extend(g[i] for g in groups if i < len(g))
    return ordered


def replicate(source: Path, n: int, target: Path) -> Path:
    """A folder of exactly ``n`` images from ``source`` (label folders kept), hard-linked or copied.

    Images are taken round-robin over labels; past the end, the same files come again as
    ``<name>__r<k>.<ext>`` so N can exceed the folder. Hard links cost no disk and no copy time.
    """
    files = _interleaved(_list_images(source))
    if not files:
        raise SystemExit(f"no image under {source}")
    if target.exists():
        shutil.rmtree(target)
    for i in range(n):
        src = files[i % len(files)]
        copy = i // len(files)
        name = src.name if copy == 0 else f"{src.stem}__r{copy}{src.suffix}"
        dst = target / src.parent.name / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    return target


def _warm_page_cache(files: list) -> None:
    """Read every file once so that no measured run pays the first disk read alone."""
    for path in files:
        with open(path, "rb") as handle:
            handle.read()


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


# ------------------------------------------------------------------ subprocess runner
class _TreeMemory(threading.Thread):
    """Samples the RSS of a process and all its descendants (JVM, Python workers), in total and by role.

    Roles: ``driver_python`` (the process started), ``jvm`` (the largest Java process: in ``local``
    mode the driver and its executors), ``python_worker`` (the largest single Python process started
    by a JVM: PySpark's daemon and its workers) and ``python_workers_sum`` (all of those together).
    """

    def __init__(self, pid: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.done = pid, every, 0, threading.Event()
        self.roles = {"driver_python": 0, "jvm": 0, "python_worker": 0, "python_workers_sum": 0}

    def run(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.done.is_set():
            total, seen = 0, {role: 0 for role in self.roles}
            try:
                for proc in [root] + root.children(recursive=True):
                    try:
                        rss = proc.memory_info().rss
                        role = self._role(proc, root)
                    except psutil.Error:
                        continue
                    total += rss
                    if role == "python_worker":
                        seen["python_workers_sum"] += rss
                    if role:
                        seen[role] = max(seen[role], rss)
            except psutil.Error:
                break
            self.peak = max(self.peak, total)
            for role, value in seen.items():
                self.roles[role] = max(self.roles[role], value)
            self.done.wait(self.every)

    @staticmethod
    def _role(proc, root):
        if proc.pid == root.pid:
            return "driver_python"
        if proc.name() == "java":
            return "jvm"
        if "python" in proc.name() and any(p.name() == "java" for p in proc.parents()):
            return "python_worker"
        return None


def run_timed(cmd: list, log: Path, env: dict | None = None, timeout: float = 1800) -> dict:
    """Run ``cmd`` (stdout+stderr to ``log``); wall seconds, exit code, peak RSS of its process tree."""
    environment = dict(os.environ, **(env or {}))
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = _load()
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=ROOT)
        sampler = _TreeMemory(proc.pid)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        finally:
            sampler.done.set()
        wall = time.perf_counter() - started
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed with exit code {code}; end of {log}:\n{tail}")
    return {"wall_s": round(wall, 3), "peak_tree_rss_bytes": sampler.peak, "peak_rss_by_role_bytes": sampler.roles,
            "load_before": load_before, "load_after": _load()}


# ------------------------------------------------------------------ measured runs
def run_pipeline(name: str, input_dir: Path, work: Path, args, image_size: int, env: dict | None = None,
                 ablate: str = "") -> dict:
    """The pipeline as a user runs it: ``fruits run`` in a fresh process (``bench.observe``: its workers
    logged through the featurizer's hook), timed whole.

    ``ablate`` switches levers off (``--ablate``, same process layout) to measure what each brings.
    """
    output, stats = work / "out" / name, work / "stats" / name
    for folder in (output, stats):
        shutil.rmtree(folder, ignore_errors=True)
    entry = ["bench.observe", "--stats", str(stats), *(["--ablate", ablate] if ablate else []), "--"]
    cmd = [sys.executable, "-m", *entry, "run", "--input", str(input_dir), "--output", str(output),
           "--weights", args.weights, "--image-size", str(image_size), "--batch-size", str(args.batch_size),
           "--engine", args.engine, "--master", args.master, "--overwrite"]
    measured = run_timed(cmd, work / "logs" / f"{name}.log", env)
    summary = json.loads((output / "summary.json").read_text())
    from bench.observe import read_worker_stats

    workers = read_worker_stats(stats)
    images = summary["images_in"]
    seconds = summary["seconds"]
    record = {
        "name": name, "n": images, "image_size": image_size, "ablated": ablate or None, **measured,
        "images_ok": summary["images_ok"],
        "seconds": seconds,
        # what the CLI itself does not time: interpreter start, imports, JVM exit
        "process_overhead_s": round(measured["wall_s"] - seconds.get("total", 0.0), 3),
        "images_per_s_end_to_end": round(images / measured["wall_s"], 2),
        "images_per_s_featurize_stage": summary.get("images_per_second"),
        "k": summary.get("k"),
        "workers": workers,
        "worker_count": len(workers),
        "max_builds_per_worker": max((max(w["builds"].values(), default=0) for w in workers), default=0),
        "max_peak_rss_per_worker_bytes": max((w["peak_rss_bytes"] for w in workers), default=0),
        "settings": summary.get("cluster", {}).get("settings", {}),
        "output": str(output),
    }
    return record


def run_plain_loop(name: str, input_dir: Path, work: Path, args, image_size: int, engine: str = "keras") -> dict:
    """A reference: one Python process, no Spark, same files, weights and image size.

    ``engine``: ``keras`` (the plain Keras loop) or ``litert`` (the pipeline's TFLite model, all cores).
    """
    output = work / "out" / f"{name}.parquet"
    report = work / "out" / f"{name}.json"
    cmd = [sys.executable, "-m", "bench", "--plain-loop", "--plain-engine", engine, "--input", str(input_dir),
           "--plain-output", str(output), "--json-out", str(report), "--image-size", str(image_size),
           "--batch-size", str(args.batch_size), "--weights", args.weights]
    measured = run_timed(cmd, work / "logs" / f"{name}.log")
    inner = json.loads(report.read_text())
    return {"name": name, "engine": engine, "n": inner["images"], "image_size": image_size, **measured,
            "images_per_s_end_to_end": round(inner["images"] / measured["wall_s"], 2),
            "images_per_s_loop": inner["images_per_s_loop"],
            "seconds": inner["seconds"], "process_overhead_s": round(measured["wall_s"] - inner["seconds"]["total"], 3),
            "threads": inner.get("threads") or inner.get("tf_threads"),
            "tensorflow_imported": inner["tensorflow_imported"]}


def run_pure_inference(work: Path, args, input_dir: Path, image_size: int, configs: str, tag: str) -> dict:
    """Pure inference on pre-decoded arrays (one subprocess measures every config in ``configs``)."""
    report = work / "out" / f"pure-{tag}.json"
    cmd = [sys.executable, "-m", "bench", "--pure-inference", configs, "--input", str(input_dir),
           "--image-size", str(image_size), "--batch-size", str(args.batch_size), "--weights", args.weights,
           "--pure-seconds", str(args.pure_seconds), "--json-out", str(report)]
    measured = run_timed(cmd, work / "logs" / f"pure-{tag}.log")
    return {**json.loads(report.read_text()), "load_before": measured["load_before"],
            "load_after": measured["load_after"]}


def run_pure_parallel(work: Path, args, input_dir: Path, image_size: int, processes: int) -> dict:
    """``processes`` TFLite processes of one thread each, measured over the same time window.

    This is the pipeline's own layout on ``local[P]`` (one single-threaded interpreter per worker),
    so its sum is the compute limit the pipeline can reach on this machine.
    """
    start_at = time.time() + 20.0  # after every process has imported TensorFlow and warmed up
    procs, reports = [], []
    for i in range(processes):
        report = work / "out" / f"pure-parallel-{i}.json"
        reports.append(report)
        cmd = [sys.executable, "-m", "bench", "--pure-inference", "tflite:1", "--input",
               str(input_dir), "--image-size", str(image_size), "--batch-size", str(args.batch_size),
               "--weights", args.weights, "--pure-seconds", str(args.pure_seconds), "--json-out", str(report),
               "--start-at", str(start_at)]
        log = open(work / "logs" / f"pure-parallel-{i}.log", "w")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log))
    for proc, log in procs:
        code = proc.wait(timeout=600)
        log.close()
        if code != 0:
            raise RuntimeError(f"pure inference process failed ({code}), see {work / 'logs'}")
    each = [json.loads(r.read_text())["tflite:1"] for r in reports]
    return {"processes": processes, "threads_per_process": 1,
            "images_per_s": round(sum(e["images_per_s"] for e in each), 2),
            "per_process_images_per_s": [e["images_per_s"] for e in each],
            "window_overlap": all(e.get("started_at_barrier") for e in each)}


def run_pca_compare(work: Path, args, features: str) -> dict:
    report = work / "out" / "pca-compare.json"
    cmd = [sys.executable, "-m", "bench", "--pca-compare", "--features", features,
           "--master", args.master, "--pca-solvers", args.pca_solvers, "--json-out", str(report)]
    measured = run_timed(cmd, work / "logs" / "pca-compare.log")
    return {**json.loads(report.read_text()), "process_wall_s": measured["wall_s"]}


def run_build_times(work: Path, args, image_size: int) -> dict:
    """A Python worker's model load, measured in fresh processes: LiteRT vs ``tf.lite`` (TensorFlow)."""
    found = {}
    for name, extra in (("litert", []), ("tf_lite", ["--tf-lite"])):
        report = work / "out" / f"build-{name}.json"
        cmd = [sys.executable, "-m", "bench", "--build-time", *extra, "--image-size", str(image_size),
               "--weights", args.weights, "--json-out", str(report)]
        measured = run_timed(cmd, work / "logs" / f"build-{name}.log")
        found[name] = {**json.loads(report.read_text()), "process_wall_s": measured["wall_s"]}
    return found


def run_ablations(work: Path, args, source: Path, headline: dict, step) -> list:
    """The headline pipeline run again with one lever switched off at a time (same input, same N)."""
    rows = []
    for name, description in ABLATIONS.items():
        step(f"ablation: {description}")
        run = run_pipeline(f"ablate-{name}", source, work, args, args.image_size, ablate=name)
        rows.append({"lever_off": name, "description": description, "wall_s": run["wall_s"],
                     "delta_wall_s_vs_headline": round(run["wall_s"] - headline["wall_s"], 3),
                     "seconds": run["seconds"], "images_per_s_featurize_stage": run["images_per_s_featurize_stage"],
                     "max_builds_per_worker": run["max_builds_per_worker"], "worker_count": run["worker_count"],
                     "load_before": run["load_before"]})
    return rows


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


# ------------------------------------------------------------------ internal modes
def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _decode_files(paths: list, image_size: int) -> tuple:
    """Bytes -> pixels with the pipeline's own decode_image; returns kept paths and a uint8 stack."""
    from fruits_lib.image import ImageDecodeError, decode_image

    kept, pixels = [], []
    for path in paths:
        try:
            pixels.append(decode_image(Path(path).read_bytes(), image_size))
            kept.append(path)
        except ImageDecodeError:
            pass
    return kept, pixels


def plain_loop(args) -> None:
    """A plain single-process loop: list, read, decode+resize, predict, write parquet.

    ``--plain-engine keras``: the Keras network, TensorFlow's defaults (all cores).
    ``--plain-engine litert``: the pipeline's engine without Spark: the same TFLite model in
    LiteRT's interpreter with every core as XNNPACK threads, one image per invoke (no TensorFlow
    import when the model is cached). Both decode with the pipeline's ``decode_image`` and
    ``preprocess``, so every method does the same work on the same pixels.
    """
    seconds = {}
    started = time.perf_counter()
    litert = args.plain_engine == "litert"
    tf = None if litert else _quiet_tensorflow()
    from fruits_lib.image import preprocess
    from fruits_lib.tflite import TFLITE_INVOKE_BATCH, tflite_model, tflite_predict
    from fruits_lib.weights import build_model, resolve_weights

    seconds["import"] = time.perf_counter() - started
    mark = time.perf_counter()
    weights = resolve_weights(args.weights)
    threads = os.cpu_count() or 1
    if litert:
        model = Path(args.plain_model).read_bytes() if args.plain_model else tflite_model(weights, args.image_size)
        predict = tflite_predict(model, threads)
    else:
        predict = build_model(weights.arrays, args.image_size).predict_on_batch
    seconds["build"] = time.perf_counter() - mark
    mark = time.perf_counter()
    files = [str(p) for p in _list_images(Path(args.input))]
    seconds["list"] = time.perf_counter() - mark
    decode_s = predict_s = 0.0
    paths, features = [], []
    for start in range(0, len(files), args.batch_size):
        mark = time.perf_counter()
        kept, pixels = _decode_files(files[start:start + args.batch_size], args.image_size)
        decode_s += time.perf_counter() - mark
        mark = time.perf_counter()
        if kept:
            features.extend(np.asarray(predict(preprocess(np.stack(pixels))), dtype=np.float32))
            paths.extend(kept)
        predict_s += time.perf_counter() - mark
    seconds["read_decode"], seconds["predict"] = decode_s, predict_s
    mark = time.perf_counter()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"path": paths, "label": [Path(p).parent.name for p in paths],
                      "features": pa.array([f.tolist() for f in features], pa.list_(pa.float32()))})
    pq.write_table(table, args.plain_output)
    seconds["write"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    # the loop's own rate: list + decode + predict + write, without interpreter start and model load
    working = seconds["list"] + decode_s + predict_s + seconds["write"]
    report = {"images": len(paths), "engine": args.plain_engine, "seconds": {k: round(v, 3) for k, v in seconds.items()},
              "images_per_s_loop": round(len(paths) / working, 2) if working else None,
              "tensorflow_imported": "tensorflow" in sys.modules}
    if litert:
        report["threads"] = {"xnnpack": threads, "tflite_invoke_batch": TFLITE_INVOKE_BATCH}
    else:
        report["tf_threads"] = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                                "note": "0 means TensorFlow's default: all cores"}
    Path(args.json_out).write_text(json.dumps(report))


def pure_inference(args) -> None:
    """Images/s of MobileNetV2 alone, on arrays decoded beforehand (no I/O, no decoding).

    ``args.pure_inference`` lists configs ``engine:threads[:invoke]`` (threads 0 = all cores;
    invoke = images per TFLite invoke, default the library's); each is built, warmed up with one
    batch, then run on repeated batches for ``--pure-seconds``.
    """
    _quiet_tensorflow()
    from fruits_lib.image import preprocess
    from fruits_lib.tflite import TFLITE_INVOKE_BATCH, tflite_model, tflite_predict
    from fruits_lib.weights import build_model, resolve_weights

    weights = resolve_weights(args.weights)
    files = [str(p) for p in _interleaved(_list_images(Path(args.input)))][: args.batch_size * 8]
    _, pixels = _decode_files(files, args.image_size)
    batches = [preprocess(np.stack(pixels[i:i + args.batch_size]))
               for i in range(0, len(pixels) - args.batch_size + 1, args.batch_size)]
    if not batches:
        raise SystemExit(f"need at least {args.batch_size} images under {args.input}")
    report = {}
    for config in args.pure_inference.split(","):
        engine, threads, *invoke = config.split(":")
        invoke_batch = int(invoke[0]) if invoke else TFLITE_INVOKE_BATCH
        mark = time.perf_counter()
        if engine == "keras":
            predict = build_model(weights.arrays, args.image_size).predict_on_batch
        else:
            predict = tflite_predict(tflite_model(weights, args.image_size), int(threads) or os.cpu_count(),
                                     invoke_batch)
        build_s = time.perf_counter() - mark
        predict(batches[0])  # warm-up: graph tracing, tensor allocation
        at_barrier = False
        if args.start_at:
            at_barrier = time.time() < args.start_at
            time.sleep(max(0.0, args.start_at - time.time()))
        images, mark = 0, time.perf_counter()
        while True:
            for batch in batches:
                predict(batch)
                images += len(batch)
            elapsed = time.perf_counter() - mark
            if elapsed >= args.pure_seconds:
                break
        report[config] = {"engine": engine, "threads": int(threads) or os.cpu_count(),
                          "tflite_invoke_batch": invoke_batch if engine == "tflite" else None,
                          "image_size": args.image_size, "batch_size": args.batch_size, "images": images,
                          "seconds": round(elapsed, 3), "images_per_s": round(images / elapsed, 2),
                          "build_s": round(build_s, 3), "started_at_barrier": at_barrier}
    Path(args.json_out).write_text(json.dumps(report))


def build_time(args) -> None:
    """Seconds from a fresh interpreter to a ready TFLite predict function, as a Python worker pays.

    The worker gets the converted model from the broadcast; here it comes from the driver's
    cache. With ``--tf-lite`` it is loaded by ``tf.lite.Interpreter`` (a TensorFlow import)
    instead of LiteRT's interpreter.
    """
    import resource

    started = time.perf_counter()
    from fruits_lib import tflite
    from fruits_lib.weights import resolve_weights

    model = tflite.tflite_model(resolve_weights(args.weights), args.image_size)
    tflite.tflite_predict(model, 1, interpreter="tf.lite" if args.tf_lite else "litert")
    report = {"seconds": round(time.perf_counter() - started, 3), "tensorflow_imported": "tensorflow" in sys.modules,
              "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    Path(args.json_out).write_text(json.dumps(report))


def pca_compare(args) -> None:
    """Spark ML PCA (``fruits_lib.reduce.fit_pca``) against scikit-learn on the same feature matrix."""
    import pyarrow.parquet as pq
    from sklearn.decomposition import PCA as SkPCA

    from fruits_lib.reduce import choose_k, fit_pca
    from fruits_lib.session import get_spark

    table = pq.read_table(args.features, columns=["path", "features"]).to_pandas().sort_values("path")
    matrix = np.stack(table["features"].to_numpy()).astype(np.float64)
    mark = time.perf_counter()
    reference = SkPCA(svd_solver="full").fit(matrix)
    sk_k = choose_k(reference.explained_variance_ratio_, 0.95)
    reference.transform(matrix)
    sklearn_s = time.perf_counter() - mark

    from pyspark.ml.functions import array_to_vector

    spark = get_spark(args.master, app_name="fruits-bench-pca")
    frame = spark.read.parquet(args.features).select("path", array_to_vector("features").alias("features"))
    frame = frame.cache()
    mark = time.perf_counter()
    rows = frame.count()
    cache_s = time.perf_counter() - mark
    report = {"rows": rows, "dimension": int(matrix.shape[1]), "spark_cache_s": round(cache_s, 3),
              "sklearn": {"fit_and_project_s": round(sklearn_s, 3), "k_95": int(sk_k), "svd_solver": "full"}}
    for solver in args.pca_solvers.split(","):
        mark = time.perf_counter()
        result = fit_pca(frame, "features", "pca", k=None, variance=0.95, solver=solver)
        fit_s = time.perf_counter() - mark
        mark = time.perf_counter()
        result.model.transform(frame).select("pca").write.format("noop").mode("overwrite").save()
        project_s = time.perf_counter() - mark
        top = min(len(result.explained_variance_ratio), len(reference.explained_variance_ratio_), 50)
        report[f"spark_{solver}"] = {
            "fit_s": round(fit_s, 3), "project_s": round(project_s, 3), "total_s": round(fit_s + project_s, 3),
            "k_95": result.k, "same_k_as_sklearn": int(sk_k) == result.k,
            "max_abs_diff_explained_variance_ratio_top50": float(np.max(np.abs(
                np.asarray(result.explained_variance_ratio[:top]) - reference.explained_variance_ratio_[:top]))),
        }
    spark.stop()
    main = report[f"spark_{args.pca_solvers.split(',')[0]}"]  # the pipeline's solver comes first
    report["spark"] = dict(main, solver=args.pca_solvers.split(",")[0])
    report["same_k"] = main["same_k_as_sklearn"]
    report["max_abs_diff_explained_variance_ratio_top50"] = main["max_abs_diff_explained_variance_ratio_top50"]
    report["spark_over_sklearn"] = round(main["total_s"] / max(sklearn_s, 1e-9), 2)
    Path(args.json_out).write_text(json.dumps(report))


# ------------------------------------------------------------------ ablations
ABLATIONS = {
    "listing": "list and count the input with a Spark job (cache + groupBy), as before",
    "arrow_batch": "Arrow maxRecordsPerBatch at Spark's default (10,000): a partition in one batch",
    "jit": "the driver JVM with its default JIT (C1 + C2) instead of C1 only",
    "class_archive": "the driver JVM without its class archive (AppCDS): classes loaded from the jars",
}


def ablation_levers(names: list) -> dict:
    """Keyword arguments of ``fruits_lib.pipeline.run`` that switch the named levers back off.

    Every lever is a real parameter of the library (``count_method``, ``local_defaults``,
    ``class_archive``): an
    ablation is the same call with other arguments, nothing in the library is patched.
    """
    from fruits_lib.session import LOCAL_DEFAULTS

    defaults, levers = dict(LOCAL_DEFAULTS), {}
    for name in names:
        if name.startswith("conf:"):  # experiments: conf:KEY=VALUE overrides a local Spark default
            key, _, value = name[5:].partition("=")
            defaults[key] = value
        elif name == "listing":
            levers["count_method"] = "job"
        elif name == "arrow_batch":
            defaults["spark.sql.execution.arrow.maxRecordsPerBatch"] = "10000"
        elif name == "jit":
            defaults.pop("spark.driver.extraJavaOptions", None)
        elif name == "class_archive":
            levers["class_archive"] = False
        else:
            raise SystemExit(f"unknown ablation {name!r}: one of {', '.join(ABLATIONS)}")
    if defaults != LOCAL_DEFAULTS:
        levers["local_defaults"] = defaults
    return levers


def ablated_cli(argv: list) -> None:
    """``--ablate NAME[,NAME] -- run ...``: the CLI's ``run`` with some levers switched off (see ABLATIONS)."""
    names, rest = argv[0], argv[2:] if argv[1:2] == ["--"] else argv[1:]
    levers = ablation_levers(list(filter(None, names.split(","))))
    from fruits_lib import cli

    args = cli.build_parser().parse_args(rest)
    if args.command != "run":
        raise SystemExit("--ablate applies to the run command only")
    sys.exit(cli._run(args, **levers))


# ------------------------------------------------------------------ harness
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


def _prepare_tflite(work: Path, args, sizes: list) -> dict:
    """Make sure the TFLite model of every size is in the cache (as the EMR bootstrap does); timed."""
    from fruits_lib.tflite import tflite_path
    from fruits_lib.weights import resolve_weights

    weights = resolve_weights(args.weights)
    setup = {}
    for size in sizes:
        cached = os.path.exists(tflite_path(weights.sha256, size))
        cmd = [sys.executable, "-m", "fruits_lib", "fetch-weights", "--weights", args.weights,
               "--image-size", str(size)]
        measured = run_timed(cmd, work / "logs" / f"fetch-weights-{size}.log")
        setup[str(size)] = {"was_cached": cached, "fetch_weights_wall_s": measured["wall_s"]}
    return setup


def _cold_cache(work: Path, args) -> dict:
    """A fresh FRUITS_CACHE_DIR holding only the weights .npz: the driver must convert to TFLite."""
    from fruits_lib.store import cache_dir
    from fruits_lib.weights import resolve_weights

    resolve_weights(args.weights)  # the .npz is in the user's cache now
    folder = work / "cold-cache"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for npz in cache_dir().glob("*.npz"):
        try:
            os.link(npz, folder / npz.name)
        except OSError:
            shutil.copy2(npz, folder / npz.name)
    return {"FRUITS_CACHE_DIR": str(folder)}


def _resolve_input(name: str) -> Path:
    """The input folder as given, or relative to the checkout (``../shared/...`` works from anywhere)."""
    source = Path(name)
    if not source.is_absolute() and not source.exists():
        source = ROOT / name
    source = source.resolve()
    if not source.is_dir():
        raise SystemExit(f"input folder not found: {name}")
    return source


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


class _Steps:
    """Prints each harness step with its start time; records how long each took."""

    def __init__(self):
        self.began, self.current, self.seconds = time.perf_counter(), None, {}

    def __call__(self, label: str):
        self.finish()
        self.current = (label, time.perf_counter())
        print(f"[{time.perf_counter() - self.began:6.0f} s] {label} (load {_load()[0]})", flush=True)

    def finish(self) -> dict:
        if self.current:
            label, mark = self.current
            self.seconds[label] = round(time.perf_counter() - mark, 1)
            self.current = None
        return self.seconds


def _median_run(records: list) -> dict:
    """The run with the median wall time (the lower middle one for an even count)."""
    ordered = sorted(records, key=lambda r: r["wall_s"])
    return ordered[(len(ordered) - 1) // 2]


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


# ------------------------------------------------------------------ scale mode (issue 10)
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
    if argv[:1] == ["--ablate"]:
        return ablated_cli(argv[1:])
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
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out, delete=False, suffix=".tmp") as handle:
        json.dump(results, handle, indent=1)
    os.replace(handle.name, out / name)
    draw(results, out / figure)
    report(results)
    print(f"wrote {out / name} and {out / figure}")


if __name__ == "__main__":
    main()
