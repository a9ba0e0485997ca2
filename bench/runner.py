"""Timed runs, each in a process of its own: the pipeline (through ``bench.observe``), the plain loops and the
probes; wall time and the peak memory of the process tree, sampled while it runs.

Every wall time includes its own start-up (Python imports, JVM, TensorFlow) exactly as a user would pay it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = "../shared/data/fruits360-subset"
GIB = 1024 ** 3


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
    from bench.ablate import ablated_env

    measured = run_timed(cmd, work / "logs" / f"{name}.log", {**(env or {}), **ablated_env(ablate.split(","))})
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
    from bench.ablate import ABLATIONS

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


def _prepare_tflite(work: Path, args, sizes: list) -> dict:
    """Make sure the TFLite model of every size is in the cache (as the EMR bootstrap does); timed."""
    from fruits_lib.support.tflite import tflite_path
    from fruits_lib.support.weights import resolve_weights

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
    from fruits_lib.support.store import cache_dir
    from fruits_lib.support.weights import resolve_weights

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
