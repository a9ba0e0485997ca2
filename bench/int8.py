"""int8 against float32 on real photos (issue 22): speed, cosine similarity and hold-out accuracy.

``python -m bench.int8 [--input ../shared/data/fruits360-33/Training] [--out bench/int8.json]``

One process, one pass over the photos: each chunk is decoded once (the pipeline's ``decode_image``
and ``preprocess``), then run through every model in turn (float32, full-integer int8, dynamic-range
int8; LiteRT, one thread each, one image per invoke, as a pipeline worker does), so a shared
machine slows every model alike and the speed ratios are same-run ratios. Hold-out: Fruits-360
photos are frames of a rotating fruit (``<n>_100.jpg``, ``r_<n>_100.jpg``): consecutive frames are
near-duplicates, so whole blocks of ``--block`` consecutive frame numbers per class are held out
(one block in five), never single frames. A logistic regression (scikit-learn, standardised
features) is fitted on the rest for each precision. The int8 model is calibrated on ``--calibration``
training photos, those whose ``label/file name`` sha256 is lowest (deterministic).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fruits_lib.support.store import write_atomically

DEFAULT_INPUT = "../shared/data/fruits360-33/Training"
FRAME = re.compile(r"^(?:r_)?(\d+)_100\.jpe?g$")
TARGETS = {"accuracy_loss_points_max": 0.5, "speedup_min": 1.5}


def held_out(name: str, block: int, every: int = 5) -> bool:
    """Whether a photo falls in a held-out block of consecutive frames (files not named by frame: kept)."""
    match = FRAME.match(name)
    return bool(match) and (int(match.group(1)) // block) % every == every // 2


def calibration_set(paths: list, count: int) -> list:
    """The ``count`` paths whose ``label/file name`` sha256 is lowest: the same photos wherever they sit."""
    def key(path: Path) -> str:
        return hashlib.sha256(f"{path.parent.name}/{path.name}".encode()).hexdigest()

    return sorted(paths, key=key)[:count]


def hold_out_accuracy(features: np.ndarray, labels: np.ndarray, test: np.ndarray, seed: int = 0) -> dict:
    """Accuracy of a standardised logistic regression fitted on ``~test``, measured on ``test``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.1, random_state=seed))
    started = time.perf_counter()
    model.fit(features[~test], labels[~test])
    predicted = model.predict(features[test])
    return {"accuracy": round(float(np.mean(predicted == labels[test])), 5), "n_train": int((~test).sum()),
            "n_test": int(test.sum()), "fit_s": round(time.perf_counter() - started, 1)}


def measure(args) -> dict:
    from fruits_lib.support.image import ImageDecodeError, decode_image, preprocess
    from fruits_lib.support.tflite import cosine, int8_model, tflite_model, tflite_predict
    from fruits_lib.support.weights import resolve_weights

    root = Path(args.input)
    paths = sorted(p for p in root.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if args.limit:
        paths = paths[::max(1, len(paths) // args.limit)][:args.limit]
    test = np.array([held_out(p.name, args.block) for p in paths])
    training = [p for p, t in zip(paths, test) if not t]
    weights = resolve_weights(args.weights)
    contents = [p.read_bytes() for p in calibration_set(training, args.calibration)]
    models, convert_s = {}, {}
    for name, make in (("float32", lambda: tflite_model(weights, args.image_size)),
                       ("int8_full", lambda: int8_model(weights, args.image_size, contents, "full")),
                       ("int8_dynamic", lambda: int8_model(weights, args.image_size, contents, "dynamic"))):
        mark = time.perf_counter()
        models[name] = make()
        convert_s[name] = round(time.perf_counter() - mark, 1)  # 0 when cached
    predictors = {name: tflite_predict(flatbuffer, threads=1) for name, flatbuffer in models.items()}
    features = {name: [] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    kept, decode_s = [], 0.0
    for start in range(0, len(paths), args.chunk):
        mark = time.perf_counter()
        pixels = []
        for index in range(start, min(start + args.chunk, len(paths))):
            try:
                pixels.append(decode_image(paths[index].read_bytes(), args.image_size))
                kept.append(index)
            except ImageDecodeError:
                pass
        batch = preprocess(np.stack(pixels))
        decode_s += time.perf_counter() - mark
        for name, predict in predictors.items():  # interleaved: a load spike hits every model alike
            mark = time.perf_counter()
            features[name].append(predict(batch))
            seconds[name] += time.perf_counter() - mark
        if start // args.chunk % 20 == 0:
            print(f"  {len(kept)}/{len(paths)} photos", file=sys.stderr, flush=True)
    n = len(kept)
    labels = np.array([paths[i].parent.name for i in kept])
    test = test[kept]
    matrices = {name: np.concatenate(parts) for name, parts in features.items()}
    results = {"models": {}, "n": n, "labels": int(len(set(labels)))}
    for name, matrix in matrices.items():
        record = {"bytes": len(models[name]), "sha256": hashlib.sha256(models[name]).hexdigest(),
                  "convert_s": convert_s[name], "invoke_s": round(seconds[name], 2),
                  "images_per_s_1_thread": round(n / seconds[name], 2),
                  **hold_out_accuracy(matrix, labels, test)}
        if name != "float32":
            similarity = cosine(matrix, matrices["float32"])
            record["cosine_to_float32"] = {"mean": round(float(similarity.mean()), 4),
                                           "p05": round(float(np.percentile(similarity, 5)), 4),
                                           "min": round(float(similarity.min()), 4)}
            record["speedup_vs_float32"] = round(seconds["float32"] / seconds[name], 3)
            record["accuracy_loss_points"] = round(100 * (results["models"]["float32"]["accuracy"]
                                                          - record["accuracy"]), 2)
            record["verdict"] = {
                "speed": "PASS" if record["speedup_vs_float32"] >= TARGETS["speedup_min"] else "FAIL",
                "accuracy": "PASS" if record["accuracy_loss_points"] <= TARGETS["accuracy_loss_points_max"]
                else "FAIL"}
        results["models"][name] = record
    results["decode_s"] = round(decode_s, 2)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.int8", description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=DEFAULT_INPUT, help=f"labelled photo folder (default {DEFAULT_INPUT})")
    parser.add_argument("--out", default="bench/int8.json", help="where the results go (JSON)")
    parser.add_argument("--weights", default="offline")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--calibration", type=int, default=64, help="calibration photos (training part)")
    parser.add_argument("--block", type=int, default=25, help="consecutive frames per hold-out block")
    parser.add_argument("--chunk", type=int, default=64, help="photos decoded together")
    parser.add_argument("--limit", type=int, default=0, help="use only N photos, evenly spread (0: all)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = datetime.now(timezone.utc)
    load = os.getloadavg()
    results = measure(args)
    results.update({"started_at": started.isoformat(timespec="seconds"),
                    "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()],
                    "settings": {k: v for k, v in vars(args).items() if k != "out"}, "targets": TARGETS,
                    "note": "machine shared with other agents' jobs: only ratios within this run compare"})
    write_atomically(str(Path(args.out).resolve()), (json.dumps(results, indent=1) + "\n").encode())
    for name, record in results["models"].items():
        extra = (f", x{record['speedup_vs_float32']} speed ({record['verdict']['speed']}), cosine "
                 f"{record['cosine_to_float32']['mean']}, accuracy loss {record['accuracy_loss_points']} points "
                 f"({record['verdict']['accuracy']})") if name != "float32" else ""
        print(f"{name}: {record['images_per_s_1_thread']} images/s (1 thread), hold-out accuracy "
              f"{record['accuracy']:.4f}{extra}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
