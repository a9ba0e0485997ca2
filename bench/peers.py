"""The chain against what a data team would pick instead (issue 22): ``python -m bench --peers``.

On the same photos, same TFLite file, same output (parquet of path + 1280 floats), each engine in a
whole process, ``--rounds`` interleaved rounds: ``fruits run`` (float32 and ``--precision int8``),
the plain LiteRT loop (float32 and the chain's own int8 file), Ray Data (``bench/peer_ray.py``) and
Daft (``bench/peer_daft.py``). Each record has wall time, images/s, the process tree's peak RSS and
the load average before and after; the chain's also its fixed cost: seconds from process start to
the first model load on a worker (first image) and from the last worker record to the process's end,
with the summary's stage timings. Every ratio is taken within one round. Writes ``<out>/peers.json``,
``<out>/peers.png`` and the ``peers`` entry of ``<out>/results.json`` (the rest of that file is kept).
Needs ``requirements-bench.txt`` (``make bench`` installs it); ``--skip ray,daft`` runs without them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.peer_common import compare, read_features
from bench.report import _machine
from bench.runner import DEFAULT_INPUT, _load, _resolve_input, run_timed
from fruits_lib.support.store import write_atomically

ENGINES = ("chain", "chain_int8", "plain_litert", "plain_litert_int8", "ray", "daft")
SCALE_N = 20000  # photos from which the scale targets apply (an --input made by `fruits make-sample --augment`)
TARGETS = {  # issue 22, 224 px float32, same run; at SCALE_N photos the wall target is 1.1
    "chain_featurize_over_plain_loop": (">=", 0.90),
    "chain_wall_over_plain_loop_wall": ("<=", 1.5),
    "chain_images_per_s_over_ray": (">=", 1.0),
    "chain_images_per_s_over_daft": (">=", 1.0),
    "int8_chain_featurize_speedup": (">=", 1.5),
}


def _chain(name: str, source: Path, work: Path, args, precision: str) -> dict:
    output, stats = work / "out" / name, work / "stats" / name
    for folder in (output, stats):
        shutil.rmtree(folder, ignore_errors=True)
    # bench.observe: fruits' command line with a worker hook logging model loads and tasks (nothing else added)
    cmd = [sys.executable, "-m", "bench.observe", "--stats", str(stats), "--", "run", "--input", str(source),
           "--output", str(output),
           "--weights", args.weights, "--image-size", str(args.image_size), "--master", args.master,
           "--precision", precision, "--overwrite"]
    started = time.time()
    measured = run_timed(cmd, work / "logs" / f"{name}.log")
    ended = started + measured["wall_s"]
    summary = json.loads((output / "summary.json").read_text())
    loads = [json.loads(line) for path in stats.glob("model-loads-*.jsonl") for line in path.read_text().splitlines()]
    records = list(stats.glob("worker-*.json"))
    first_image = min(r["time"] for r in loads) if loads else None
    last_image = max(p.stat().st_mtime for p in records) if records else None
    return {"name": name, "engine": "chain", "precision": precision, "n": summary["images_in"], **measured,
            "images_per_s_end_to_end": round(summary["images_in"] / measured["wall_s"], 2),
            "images_per_s_featurize_stage": summary.get("images_per_second"),
            "stage_seconds": summary["seconds"],
            "process_overhead_s": round(measured["wall_s"] - summary["seconds"]["total"], 3),
            "fixed_cost": {"start_to_first_model_load_s": round(first_image - started, 2) if first_image else None,
                           "last_worker_record_to_exit_s": round(ended - last_image, 2) if last_image else None},
            "int8_sha256": summary.get("int8_sha256"), "features": str(output / "features")}


def _plain(name: str, source: Path, work: Path, args, model: Path | None) -> dict:
    output, report = work / "out" / f"{name}.parquet", work / "out" / f"{name}.json"
    cmd = [sys.executable, "-m", "bench", "--plain-loop", "--plain-engine", "litert", "--input", str(source),
           "--plain-output", str(output), "--json-out", str(report), "--image-size", str(args.image_size),
           "--weights", args.weights, *(["--plain-model", str(model)] if model else [])]
    measured = run_timed(cmd, work / "logs" / f"{name}.log")
    inner = json.loads(report.read_text())
    return {"name": name, "engine": "plain_litert", "precision": "int8" if model else "float32",
            "n": inner["images"], **measured, "images_per_s_end_to_end": round(inner["images"] / measured["wall_s"], 2),
            "images_per_s_loop": inner["images_per_s_loop"], "seconds": inner["seconds"], "features": str(output)}


def _peer(name: str, module: str, source: Path, work: Path, args, model: Path) -> dict:
    output, report = work / "out" / name, work / "out" / f"{name}.json"
    shutil.rmtree(output, ignore_errors=True)
    cmd = [sys.executable, "-m", module, "--input", str(source), "--model", str(model), "--output", str(output),
           "--json-out", str(report), "--image-size", str(args.image_size)]
    measured = run_timed(cmd, work / "logs" / f"{name}.log", timeout=args.peer_timeout)
    inner = json.loads(report.read_text())
    return {"name": name, "engine": inner["engine"], "precision": "float32", "n": inner["images"], **measured,
            "images_per_s_end_to_end": round(inner["images"] / measured["wall_s"], 2), "seconds": inner["seconds"],
            "cpu_split": inner.get("cpu_split"), "version": inner.get(inner["engine"]), "features": str(output)}


def _int8_file(chain_run: dict, work: Path) -> Path:
    """The chain's own int8 network (from its saved model), so the plain loop runs the same bytes."""
    model = Path(chain_run["features"]).parent / "model" / "stages"
    found = sorted(model.glob("*/network/mobilenetv2-int8.tflite"))
    target = work / "int8.tflite"
    shutil.copyfile(found[0], target)
    return target


def _ratio(value, target) -> dict:
    op, bound = target
    passed = value is not None and (value >= bound if op == ">=" else value <= bound)
    return {"value": None if value is None else round(value, 3), "target": f"{op} {bound}",
            "verdict": "PASS" if passed else "FAIL"}


def round_ratios(runs: dict) -> dict:
    """Issue 22's figures from one round's runs (None where an engine was skipped)."""
    chain, plain = runs.get("chain"), runs.get("plain_litert")
    ratios = {}
    if chain and plain:
        ratios["chain_featurize_over_plain_loop"] = chain["images_per_s_featurize_stage"] / plain["images_per_s_loop"]
        ratios["chain_wall_over_plain_loop_wall"] = chain["wall_s"] / plain["wall_s"]
    for peer in ("ray", "daft"):
        if chain and runs.get(peer):
            ratios[f"chain_images_per_s_over_{peer}"] = runs[peer]["wall_s"] / chain["wall_s"]
    if chain and runs.get("chain_int8"):
        ratios["int8_chain_featurize_speedup"] = (runs["chain_int8"]["images_per_s_featurize_stage"]
                                                  / chain["images_per_s_featurize_stage"])
        ratios["int8_chain_wall_speedup"] = chain["wall_s"] / runs["chain_int8"]["wall_s"]
    if plain and runs.get("plain_litert_int8"):
        ratios["int8_plain_loop_speedup"] = runs["plain_litert_int8"]["images_per_s_loop"] / plain["images_per_s_loop"]
    targets = dict(TARGETS)
    if chain and chain["n"] >= SCALE_N:  # issue 22: at 20k the chain's wall must come within 1.1x the loop's
        targets["chain_wall_over_plain_loop_wall"] = ("<=", 1.1)
    return {name: (_ratio(value, targets[name]) if name in targets else {"value": round(value, 3)})
            for name, value in ratios.items()}


def measure(args) -> dict:
    from fruits_lib.support.tflite import tflite_model, tflite_path
    from fruits_lib.support.weights import resolve_weights

    source = _resolve_input(args.input)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    weights = resolve_weights(args.weights)
    tflite_model(weights, args.image_size)  # cached: every engine reads the same file
    model = Path(tflite_path(weights.sha256, args.image_size))
    skip = set(filter(None, args.skip.split(",")))
    rounds = []
    for index in range(1, args.rounds + 1):
        runs = {}
        for engine in ENGINES:
            if engine in skip or (engine.endswith("int8") and "int8" in skip):
                continue
            name = f"{engine}-r{index}"
            print(f"[peers] round {index}: {engine}", flush=True)
            if engine.startswith("chain"):
                runs[engine] = _chain(name, source, work, args, "int8" if engine.endswith("int8") else "float32")
            elif engine == "plain_litert":
                runs[engine] = _plain(name, source, work, args, None)
            elif engine == "plain_litert_int8":
                runs[engine] = _plain(name, source, work, args, _int8_file(runs["chain_int8"], work))
            else:
                runs[engine] = _peer(name, f"bench.peer_{engine}", source, work, args, model)
            print(f"[peers]   wall {runs[engine]['wall_s']:.1f} s, {runs[engine]['images_per_s_end_to_end']} images/s "
                  f"end to end, load {runs[engine]['load_before'][0]:.1f}", flush=True)
        reference = read_features(runs["chain"]["features"]) if "chain" in runs else None
        for engine, run in runs.items():
            if reference is not None and engine != "chain":
                run["features_vs_chain"] = compare(reference, read_features(run["features"]))
        rounds.append({"round": index, "runs": runs, "ratios": round_ratios(runs)})
    return {"started_from": str(source), "model": {"path": str(model), "sha256_weights": weights.sha256},
            "rounds": rounds}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = [e for e in ENGINES if any(e in r["runs"] for r in results["rounds"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(results["rounds"]))
    for offset, record in enumerate(results["rounds"]):
        xs = [i + offset * width for i in range(len(engines))]
        walls = [record["runs"].get(e, {}).get("wall_s", 0) for e in engines]
        rates = [record["runs"].get(e, {}).get("images_per_s_end_to_end", 0) for e in engines]
        axes[0].bar(xs, walls, width, label=f"round {record['round']}")
        axes[1].bar(xs, rates, width, label=f"round {record['round']}")
    for axis, title in zip(axes, ("wall time, whole process (s)", "images/s, end to end")):
        axis.set_xticks([i + width * (len(results["rounds"]) - 1) / 2 for i in range(len(engines))])
        axis.set_xticklabels(engines, rotation=20)
        axis.set_title(title)
        axis.legend()
    n = next(iter(results["rounds"][0]["runs"].values()))["n"]
    machine = results.get("note") or f"load average {results['load_before'][0]:.1f} before the first run"
    fig.suptitle(f"{n} photos, 224 px, {results['machine']['logical_cpus']} cores, finished "
                 f"{results['finished_at'][:16]} UTC: only same-round ratios compare\n{machine}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench --peers", description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=DEFAULT_INPUT, help=f"photo folder (default {DEFAULT_INPUT})")
    parser.add_argument("--out", default="bench", help="folder of peers.json, peers.png and results.json")
    parser.add_argument("--work", default="bench/work/peers", help="outputs and logs of the runs")
    parser.add_argument("--weights", default="offline")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma-separated engines to leave out (ray, daft, int8, ...)")
    parser.add_argument("--peer-timeout", type=float, default=1800, help="seconds before a peer is declared hung")
    parser.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    parser.add_argument("--name", default="peers",
                        help="<out>/<name>.json, <out>/<name>.png and results.json's <name> entry (default: peers)")
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc)
    results = {"started_at": started.isoformat(timespec="seconds"), "load_before": _load(), "machine": _machine(),
               "note": args.note, **measure(args)}
    results["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = Path(args.out)
    # each file replaced whole (store.write_atomically): a failed run never leaves a truncated results file
    write_atomically(str(out / f"{args.name}.json"), (json.dumps(results, indent=1) + "\n").encode())
    plot(results, out / f"{args.name}.png")
    combined = out / "results.json"
    document = json.loads(combined.read_text()) if combined.exists() else {}
    command = shlex.join(["python", "-m", "bench", "--peers", *(sys.argv[1:] if argv is None else argv)])
    document[args.name] = {"source": f"{command} ({out / (args.name + '.json')} has every run)",
                         "started_at": results["started_at"], "finished_at": results["finished_at"],
                         "note": args.note, "rounds": [{"round": r["round"], "ratios": r["ratios"]}
                                                       for r in results["rounds"]]}
    write_atomically(str(combined), (json.dumps(document, indent=1) + "\n").encode())
    for record in results["rounds"]:
        print(f"round {record['round']}:")
        for name, run in record["runs"].items():
            print(f"  {name:18s} wall {run['wall_s']:6.1f} s  {run['images_per_s_end_to_end']:6.1f} images/s  "
                  f"peak RSS {run['peak_tree_rss_bytes'] / 2**30:.2f} GiB")
        for name, ratio in record["ratios"].items():
            print(f"  {name:40s} {ratio['value']}  {ratio.get('target', '')} {ratio.get('verdict', '')}")
    print(f"wrote {out / (args.name + '.json')}, {out / (args.name + '.png')} and the {args.name} entry of {combined}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
