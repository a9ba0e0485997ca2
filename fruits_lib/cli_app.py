"""The app's commands of the command line: ``app-model``, ``make-eval`` and ``evaluate`` (issue 21's recipe and check)."""

from __future__ import annotations

import argparse
import sys
import time

from fruits_lib.support.cli_common import _add_terminal_options, _positive, _spark_beside
from fruits_lib.support.errors import FruitsError

APP_MODEL_EXAMPLES = """examples:
  {prog} app-model --input ../shared/data/fruits360-33/Training --model models/app --weights offline
  {prog} app-model --input ../shared/data/fruits360-33/Training --model models/app-open --weights offline \\
      --exclude-labels "kiwi,plum,pear"     # reuses the featurized scenes, leaves three fruits out
exit codes: 0 built and saved, 2 model already there, bad input or option (one-line message)"""


def _add_app_model_command(commands, prog: str) -> None:
    app = commands.add_parser(
        "app-model", help="build the app's model: studio photos -> scenes -> features -> classifier that may "
                          "answer unknown",
        description="Split studio photos by fruit, composite each onto --scenes varied backgrounds on Spark, "
                    "featurize photos and scenes, fit centring + PCA + a logistic regression on the training "
                    "part, choose the abstention threshold on the calibration part, report on the test part "
                    "and save ONE PipelineModel at MODEL (what identify and export take).",
        epilog=APP_MODEL_EXAMPLES.format(prog=prog), formatter_class=argparse.RawDescriptionHelpFormatter)
    app.add_argument("--input", required=True, help="studio photos, label = parent folder (Fruits-360 layout)")
    app.add_argument("--model", required=True, help="folder to save the model to")
    app.add_argument("--work", default="output/app-work",
                     help="folder caching the featurized photos and scenes (default: %(default)s)")
    app.add_argument("--weights", default="imagenet", help="imagenet, offline or a PATH (default: %(default)s)")
    app.add_argument("--scenes", type=int, default=4,  # app_model.SCENES (not imported here: --help stays fast)
                     help="scenes composited from each photo (default: %(default)s)")
    app.add_argument("--seed", type=int, default=0, help="seed of the split and the scenes (default: %(default)s)")
    app.add_argument("--feature-layers", default="out_relu,block_15_add,block_13_expand_relu",  # APP_LAYERS
                     help="MobileNetV2 layers average-pooled into the features, comma-separated "
                          "(default: %(default)s; out_relu alone: 1280)")
    app.add_argument("--fine-tune-epochs", type=int, default=3,  # finetune.EPOCHS
                     help="epochs retraining MobileNetV2's last three blocks on the training photos and scenes "
                          "first (default: %(default)s; 0: the weights as given)")
    app.add_argument("--pca-k", type=_positive, default=256, help="PCA components (default: %(default)s)")
    app.add_argument("--reg-param", type=float, default=0.001, help="L2 strength of the classifier (default: %(default)s)")
    app.add_argument("--refuse-unknown", type=float, default=0.6,
                     help="share of photos of fruits outside the labels that should get unknown, measured with "
                          "models fitted without some labels; it raises the threshold (default: %(default)s; 0: off)")
    app.add_argument("--studio-bank", type=int, default=4000,
                     help="studio training photos kept to judge studio-like photos by their nearest one "
                          "(default: %(default)s; 0: no studio gate, the probability judges every photo)")
    app.add_argument("--exclude-labels", default="",
                     help="comma-separated labels to leave out (e.g. to measure how unknown fruits are answered)")
    app.add_argument("--overwrite", action="store_true", help="replace a model already at MODEL")
    app.add_argument("--master", help="Spark master (default: local[*]; under spark-submit, its own)")
    _add_terminal_options(app)


def _add_evaluate_commands(commands, prog: str) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    make = commands.add_parser(
        "make-eval", help="write the real-world check: held-out fruits on held-out backgrounds, in conditions",
        description="Write <output>/<label>/<photo>__<condition>.jpg: photos of the app recipe's test split "
                    "(and of --unknown-labels, fruits no model here learnt) as a studio photo, a scene, a "
                    "close-up, several fruits, an occluded fruit and a grayscale scene, on backgrounds held out "
                    "from training.",
        epilog=f"example: {prog} make-eval --known ../shared/data/fruits360-33/Training --unknown "
               "../shared/data/fruits360-subset/Training --unknown-labels mango,raspberry --output "
               "output/app-eval/photos", formatter_class=raw)
    make.add_argument("--known", required=True, help="the studio photos the app recipe was given (--input)")
    make.add_argument("--unknown", help="a folder with fruits outside the model's labels")
    make.add_argument("--unknown-labels", default="", help="comma-separated labels of --unknown to use")
    make.add_argument("--output", required=True, help="folder to write (must be empty or absent)")
    make.add_argument("--per-label", type=_positive, default=6, help="photos per label (default: %(default)s)")
    make.add_argument("--seed", type=int, default=7, help="seed of the photos and scenes (default: %(default)s)")
    make.add_argument("--split-seed", type=int, default=0, help="the app recipe's --seed (default: %(default)s)")

    evaluate = commands.add_parser(
        "evaluate", help="score a model on labelled photos: per-class accuracy, unknown answers, confusion",
        description="Identify every photo under FOLDER (label = parent folder) and report per-class accuracy "
                    "(an abstention counts as an error), the share answered unknown on known and on unknown "
                    "fruits (labels the model does not have), per condition (file names <photo>__<condition>) "
                    "and the confusion matrix.",
        epilog=f"example: {prog} evaluate --model models/app output/app-eval/photos --report output/app-eval/app\n"
               "exit codes: 0 scored, 1 nothing could be scored, 2 bad model or folder", formatter_class=raw)
    evaluate.add_argument("--model", required=True, help="folder written by `app-model` or `train`")
    evaluate.add_argument("folder", help="labelled photos (label = parent folder)")
    evaluate.add_argument("--report", help="folder to write report.json and confusion_matrix.png into")
    evaluate.add_argument("--master", help="Spark master (default: local[*])")
    _add_terminal_options(evaluate)


def _make_eval(args) -> int:
    from fruits_lib.evaluate import write_eval_set

    labels = [label.strip() for label in args.unknown_labels.split(",") if label.strip()]
    if labels and not args.unknown:
        raise FruitsError("--unknown-labels needs --unknown FOLDER")
    manifest = write_eval_set(args.output, args.known, args.unknown, labels, per_label=args.per_label,
                              seed=args.seed, split_seed=args.split_seed)
    print(f"wrote {sum(manifest['images'].values())} photos of {len(manifest['images'])} labels under "
          f"{args.output} ({', '.join(manifest['conditions'])}; see _eval.json)")
    return 0


def _evaluate(args) -> int:
    spark = _spark_beside(["fruits_lib.evaluate", "fruits_lib.identify"], args.master, ui=args.spark_ui)
    from fruits_lib.evaluate import evaluate, write_report

    report = evaluate(spark, args.model, args.folder)
    known, unknown = report["known"], report["unknown"]
    if not known["n"] and not unknown["n"]:
        print("fruits: no photo could be scored", file=sys.stderr)
        return 1
    print(f"{args.model} (unknown under {report['threshold']:.2f}) on {args.folder}:")
    if known["n"]:
        print(f"  known fruits   {known['n']} photos: named right {known['accuracy']:.1%}, unknown "
              f"{known['abstained']:.1%}")
        for condition, row in report["per_condition"].items():
            print(f"    {condition:<10} {row['n']:>4} photos: named right {row['accuracy']:.1%}, unknown "
                  f"{row['abstained']:.1%}")
    if unknown["n"]:
        print(f"  unknown fruits {unknown['n']} photos ({', '.join(unknown['labels'])}): answered unknown "
              f"{unknown['abstained']:.1%}" + (f"; else named {unknown['named_as']}" if unknown["named_as"] else ""))
    if report["failed"]:
        print(f"  {len(report['failed'])} files could not be read (listed in the report)")
    if args.report:
        print(f"  report: {write_report(report, args.report)}")
    return 0


def _app_model(args) -> int:
    spark = _spark_beside(["fruits_lib.app_model"], args.master, ui=args.spark_ui, conf={"spark.driver.memory": "4g"})
    from fruits_lib.app_model import build_app_model
    from fruits_lib.load import normalize_path

    excluded = [label.strip() for label in args.exclude_labels.split(",") if label.strip()]
    layers = [name.strip() for name in args.feature_layers.split(",")]
    started = time.time()
    result = build_app_model(spark, normalize_path(args.input), normalize_path(args.model),
                             work=normalize_path(args.work), scenes=args.scenes, seed=args.seed,
                             weights=args.weights, feature_layers=layers, pca_k=args.pca_k, reg_param=args.reg_param,
                             exclude_labels=excluded, refuse_unknown=args.refuse_unknown,
                             studio_bank=args.studio_bank, fine_tune_epochs=args.fine_tune_epochs,
                             overwrite=args.overwrite,
                             log=lambda message: print(message, flush=True))
    metrics = result.metrics
    print(f"model saved at {result.model_path} in {time.time() - started:.0f} s: {len(metrics['labels'])} labels, "
          f"unknown under probability {metrics['abstain']['threshold']:.2f}"
          + (f" (studio-like photos: nearest studio photo under {gate['similarity_threshold']:.2f})"
             if (gate := metrics["abstain"].get("studio_gate")) else ""))
    for view in ("test_studio", "test_scenes"):
        part = metrics[view]
        if not part["n"]:
            continue
        print(f"  {view.replace('_', ' ')}: {part['n']} images, top-1 {part['top1']:.4f}, named right "
              f"{part['accuracy_abstention_as_error']:.4f}, unknown {part['abstained']:.1%}")
    if metrics["failed"]:
        print(f"  {len(metrics['failed'])} photos could not be read: listed in metrics.json's 'failed'")
    return 0
