"""The app's model: studio photos -> scenes (augment) -> fine-tuned features -> PCA -> classifier that may say "unknown".

The recipe behind ``fruits app-model`` (``make app-model``). Photos are split by fruit before anything is
learnt (:mod:`fruits_lib.split`); each photo then gives its studio row plus ``scenes`` composites
(:mod:`fruits_lib.augment`), featurized on Spark like any run and cached under ``work`` (keyed by what made
them, so a second model, e.g. with classes left out, reuses them). MobileNetV2's last blocks are first
retrained on the training part (:mod:`fruits_lib.finetune`), then everything is featurized with the new
weights. The classifier is fitted on the training part, its abstention threshold chosen on the calibration
part (where models fitted without some labels also show how sure the recipe is of fruits it never learnt), and
every reported figure comes from the test part, touched once.
"""

from __future__ import annotations

import json
import time
import zlib

import numpy as np
import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import IndexToString, StringIndexer
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from fruits_lib import augment, finetune, load, reduce
from fruits_lib.featurize import ImageFeaturizer
from fruits_lib.split import FRAMES_PER_BLOCK, OPEN_SET_FOLDS, assign_splits, class_folds, fruit_group
from fruits_lib.support.errors import InputError, OutputError
from fruits_lib.support.progress import image_counter, spark_images
from fruits_lib.support.store import cache_dir, prune_cache, write_atomically
from fruits_lib.support.weights import save_npz
from fruits_lib.train import PREDICTED, TrainResult, _publish, classification_metrics
from fruits_lib.unknown import (
    BANK_SIZE,
    GATE_FILE,
    SCORES,
    STUDIO_LIKE,
    STUDIO_PROBABILITY,
    AbstainRule,
    StudioGate,
    choose_threshold,
    fit_gate,
    gate_columns,
    threshold_refusing,
)
from fruits_lib.write import FileSystem, join, write_parquet

SPLITS = ("train", "calibration", "test")
PHOTOS_PER_TASK = 128  # small tasks: the progress in images moves every few seconds, the balance stays even
SCENES = 4  # per studio photo: 2 -> 4 took known fruits in scenes from 38 to 40 % named right on our check
# MobileNetV2's last layer and two earlier ones, each average-pooled (1280 + 160 + 576 features): instead of the
# last alone, test scenes 0.537 -> 0.562 named right, studio photos 0.963 -> 0.969 (README, 07 Dec)
APP_LAYERS = ("out_relu", "block_15_add", "block_13_expand_relu")


def _fit_classifier(training, pca_k: int, reg_param: float):
    """Centring + PCA, then a multinomial logistic regression, on ``training`` (array ``features``, ``label``):
    ``(pca, indexer, classifier, projected)``, ``projected`` being ``training`` with ``pca`` and ``labelIndex``."""
    pca = reduce.fit_pca(training, "features", "pca", k=pca_k)
    projected = pca.model.transform(training.withColumn("features", array_to_vector("features"))).drop("features")
    indexer = StringIndexer(inputCol="label", outputCol="labelIndex", stringOrderType="alphabetAsc").fit(projected)
    projected = indexer.transform(projected)
    classifier = _logistic_regression(reg_param).fit(projected)
    return pca, indexer, classifier, projected


def _logistic_regression(reg_param: float) -> LogisticRegression:
    """The recipe's classifier, on the projection ``pca`` and the indexed labels: the model's and the studio gate's."""
    return LogisticRegression(featuresCol="pca", labelCol="labelIndex", family="multinomial", maxIter=200,
                              regParam=reg_param, elasticNetParam=0.0)


def _fit_gate(projected, pca, seed: int, bank_size: int, classify: bool = False,
              reg_param: float = 0.001) -> StudioGate | None:
    """The studio gate (:func:`fruits_lib.unknown.fit_gate`) of a model from :func:`_fit_classifier`'s
    ``pca`` and ``projected`` training rows; with ``classify``, its studio classifier too."""
    return fit_gate(projected.withColumn("studio", F.col(augment.VIEW_COL) == "studio"), pca, "studio", seed, bank_size,
                    classifier=_logistic_regression(reg_param) if classify else None)


def unknown_confidences(frame, labels, pca_k: int, reg_param: float, seed: int = 0, folds: int = OPEN_SET_FOLDS,
                        bank_size: int = 0, log=print) -> tuple:
    """How the recipe scores fruits it never learnt: for each group of :func:`class_folds` of ``labels``
    (those of ``frame``), the recipe's classifier (and, with ``bank_size``, its studio gate) fitted on the
    training rows of the other labels scores the calibration rows of the group. ``(scores, groups)``: a pandas
    frame of ``probability`` (the highest) and the gate's scores; no model with fewer than 3 labels."""
    groups = class_folds(sorted(labels), folds, seed)

    def answer(left_out):
        training = frame.filter((F.col("split") == "train") & ~F.col("label").isin(left_out))
        pca, _, classifier, projected = _fit_classifier(training, pca_k, reg_param)
        unseen = frame.filter((F.col("split") == "calibration") & F.col("label").isin(left_out))
        answered = classifier.transform(pca.model.transform(unseen.withColumn("features", array_to_vector("features"))))
        gate = _fit_gate(projected, pca, seed, bank_size) if bank_size else None
        answered = gate_columns(answered, gate)
        return answered.select(F.array_max(vector_to_array("probability")).alias("probability"), *SCORES).toPandas()

    # One model after the other: fitted from threads (as CrossValidator(parallelism=) does), they were slower on
    # small data and barely faster on the 33 labels (docs/performance.md, "open-set models").
    # Each model is logged as soon as it is fitted: on the 33 labels the four take ~6 min.
    scores = []
    for number, left_out in enumerate(groups, 1):
        started, found = time.perf_counter(), answer(left_out)
        scores.append(found)
        log(f"      model {number}/{len(groups)} without {', '.join(left_out)}: {len(found)} calibration images, "
            f"median highest probability {found['probability'].median() if len(found) else float('nan'):.2f}, "
            f"{time.perf_counter() - started:.0f} s")
    return (pd.concat(scores, ignore_index=True) if scores else pd.DataFrame({"probability": []})), groups


def choose_rule(calibrating, unknown, gate: StudioGate | None, refuse_unknown: float) -> tuple:
    """The :class:`~fruits_lib.unknown.AbstainRule` and how its thresholds were chosen: for each kind of photo
    (studio-like ones by their nearest studio photo when there is a gate, the others by probability), the
    higher of the threshold that weighs right against wrong answers on ``calibrating`` and the one under which
    ``refuse_unknown`` of ``unknown`` (scores of fruits a model did not learn) fall."""
    kind = AbstainRule(gate=gate)
    right = (calibrating["label"] == calibrating["predicted"]).to_numpy()
    studio = kind.studio_like(calibrating["studio_likeness"]) if gate else np.zeros(len(right), bool)
    unknown_studio = (kind.studio_like(unknown["studio_likeness"]) if gate and len(unknown)
                      else np.zeros(len(unknown), bool))
    chosen = {}

    def pick(score: str, mask, unknown_mask) -> float:
        weighed = choose_threshold(right[mask], calibrating[score].to_numpy()[mask]) if mask.any() else 0.0
        scores = unknown[score].to_numpy()[unknown_mask] if len(unknown) else np.zeros(0)
        refusing = threshold_refusing(scores, refuse_unknown) if len(scores) else 0.0
        chosen[score] = {"right_minus_wrong": weighed, "refusing_unknown": refusing,
                         "calibration_photos": int(mask.sum()), "unknown_photos": int(len(scores))}
        return max(weighed, refusing)

    threshold = pick("probability", ~studio, ~unknown_studio)
    similarity = pick("nearest_studio", studio, unknown_studio) if gate else 0.0
    return AbstainRule(threshold, similarity, gate), chosen


def _code_digest(*modules) -> str:
    """sha256 of the modules' source: scenes made by other code are other features, never reused."""
    import hashlib
    import inspect

    digest = hashlib.sha256()
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def _features(spark, input_path: str, work: str, featurizer: ImageFeaturizer, scenes: int, seed: int, log,
              step: str = "[1/4]"):
    """The featurized studio + scene rows (``path, label, view, features, error``), made once per key."""
    fs = FileSystem(spark)
    weights = featurizer.resolved_weights()
    key = {"input": input_path, "seed": seed, "weights_sha256": weights.sha256,
           "image_size": featurizer.getImageSize(), "engine": featurizer.getEngine(),
           "precision": featurizer.getPrecision(), "layers": list(featurizer.getFeatureLayers()),
           "backgrounds": "train", "augment_code": _code_digest(augment, augment.backgrounds)}
    tag = f"{zlib.crc32(json.dumps(key, sort_keys=True).encode()):08x}"
    target = join(work, f"features-{tag}")
    if fs.exists(join(target, "_SUCCESS")) and fs.exists(join(target, "_key.json")):
        made = fs.read_json(join(target, "_key.json"))
        if made.get("key") == key and made.get("scenes", -1) >= scenes:  # scene i is the same whatever the count
            log(f"{step} reusing the featurized photos and scenes in {target}")
            views = ["studio"] + [f"scene-{i}" for i in range(scenes)]
            return spark.read.parquet(target).filter(F.col(augment.VIEW_COL).isin(views)), dict(key, scenes=scenes)
    photos = load.read_images(spark, input_path)
    count = photos.count()
    if not count:
        raise InputError(f"no .jpg/.jpeg/.png image under {input_path}")
    tasks = max(spark.sparkContext.defaultParallelism * 2, -(-count // PHOTOS_PER_TASK))
    log(f"{step} {count} photos -> {count * (1 + scenes)} images ({scenes} scenes each, seed {seed}), "
        f"featurized in {tasks} tasks")
    image_counter(spark)  # before the transform: the featurizer's tasks count their images (progress)
    scenes_frame = augment.SceneAugmenter(scenesPerImage=scenes, seed=seed, imageSize=key["image_size"],
                                          backgrounds="train").transform(photos.repartition(tasks, "path"))
    featurized = featurizer.transform_to_arrays(scenes_frame).select("path", "label", augment.VIEW_COL,
                                                                     "features", "error")
    staging = f"{target}._partial"
    fs.delete(staging)  # a killed build's partial rows, if any (Hadoop's delete of a missing path is a no-op)
    with spark_images(spark, "augment + featurize", count * (1 + scenes)):
        write_parquet(featurized, staging)
    fs.write_bytes(join(staging, "_key.json"), json.dumps({"key": key, "scenes": scenes}, indent=1).encode())
    if fs.exists(target):
        fs.delete(target)  # an older key's features: replaced only now that the new ones are complete
    fs.rename(staging, target)
    return spark.read.parquet(target), dict(key, scenes=scenes)


def _split(frame, seed: int, test: float, calibration: float) -> tuple:
    """``(groups, splits)`` of the photos behind ``frame``'s rows: their fruit groups per label, then
    :func:`assign_splits`."""
    names = frame.select("label", F.element_at(F.split(augment.source_path(), "/"), -1).alias("name")).distinct()
    groups = {}
    for row in names.collect():
        groups.setdefault(row["label"], []).append(fruit_group(row["name"]))
    return groups, assign_splits(groups, seed, test, calibration)


def _check_excluded(frame, excluded: list, input_path: str) -> None:
    found = {row["label"] for row in frame.select("label").distinct().collect()}
    if set(excluded) - found:
        raise InputError(f"--exclude-labels: no label {', '.join(sorted(set(excluded) - found))} under {input_path} "
                         f"(labels: {', '.join(sorted(found))})")


def _fine_tuned(spark, input_path: str, work: str, featurizer: ImageFeaturizer, scenes: int, seed: int,
                shares: tuple, excluded: list, epochs: int, log) -> tuple:
    """``(featurizer with fine-tuned weights, what was done)``: block 13's maps of the training split's photos and
    scenes (featurized and cached like the features), then :func:`finetune.fine_tune`; the weights are cached
    on this machine (``cache_dir()``), keyed by what made them."""
    maps = ImageFeaturizer(weights=featurizer.getWeights(), imageSize=featurizer.getImageSize(),
                           featureLayers=[finetune.MAP_FEATURES])
    frame, key = _features(spark, input_path, work, maps, scenes, seed, log, step="[0/4] fine-tuning:")
    _check_excluded(frame, excluded, input_path)
    key = dict(key, split=[seed, *shares], excluded=excluded, epochs=epochs, code=_code_digest(finetune))
    path = cache_dir() / f"finetuned-{zlib.crc32(json.dumps(key, sort_keys=True).encode()):08x}.npz"
    tuned = ImageFeaturizer(weights=str(path), imageSize=featurizer.getImageSize(),
                            featureLayers=list(featurizer.getFeatureLayers()))
    about = path.with_suffix(".json")  # what was done, written after the weights: both there, both complete
    if path.exists() and about.exists():
        log(f"[0/4] fine-tuning: reusing {path}")
        path.touch()  # recently used: kept by prune_cache
        return tuned, json.loads(about.read_text())

    def training(paths, labels):
        names = paths.str.replace(augment.SCENE_SUFFIX, "", regex=True).str.rsplit("/", n=1).str[-1]
        return pd.Series([splits.get((label, fruit_group(name))) == "train" for label, name in zip(labels, names)])

    rows = frame.filter(F.col("error").isNull() & ~F.col("label").isin(excluded))
    _, splits = _split(rows, seed, *shares)  # the split build_app_model makes: same rows, same rule
    started = time.perf_counter()
    features, labels, _ = finetune.read_maps(frame.inputFiles(), training)
    names = sorted(set(labels))
    log(f"[0/4] fine-tuning: {len(features)} training images ({len(names)} labels) read in "
        f"{time.perf_counter() - started:.0f} s")
    arrays = finetune.fine_tune(featurizer.resolved_weights().arrays, features,
                                np.asarray([names.index(label) for label in labels]),
                                image_size=featurizer.getImageSize(), epochs=epochs, seed=seed, log=log)
    save_npz(path, arrays)
    done = {"epochs": epochs, "from": featurizer.getWeights(), "layers": list(finetune.TUNED),
            "images": len(features), "labels": len(names), "cache": str(path)}
    write_atomically(str(about), json.dumps(done, indent=1).encode())
    prune_cache("finetuned-*.npz", keep=4)  # 9 MB each, one per input folder, split and code: the 4 last used
    log(f"[0/4] fine-tuning: weights saved to {path}")
    return tuned, done


def build_app_model(spark, input_path: str, model_path: str, *, work: str, scenes: int = SCENES, seed: int = 0,
                    weights: str = "offline", image_size: int = 224, feature_layers=APP_LAYERS, pca_k: int = 256,
                    reg_param: float = 0.001, test: float = 0.2, calibration: float = 0.1, exclude_labels=(),
                    refuse_unknown: float = 0.6, studio_bank: int = BANK_SIZE,
                    fine_tune_epochs: int = finetune.EPOCHS, overwrite: bool = False, log=print) -> TrainResult:
    """Build the app's model from studio photos under ``input_path`` and publish it at ``model_path``.

    ``refuse_unknown``: the share of photos of fruits outside the labels that should get "unknown", as
    measured by :func:`unknown_confidences` (0: the thresholds only weigh right against wrong answers).
    ``studio_bank``: studio training photos kept by the studio gate (0: no gate, probability for every photo).
    ``fine_tune_epochs``: epochs of :mod:`fruits_lib.finetune` on the training split first (0: the weights as given)."""
    if scenes < 0:  # checked here, not only by the command line: a cached set would otherwise be reused
        raise InputError(f"--scenes must be 0 or more, not {scenes}")
    if not 0 <= refuse_unknown < 1:
        raise InputError(f"--refuse-unknown must be in [0, 1), not {refuse_unknown}")
    if studio_bank < 0:
        raise InputError(f"--studio-bank must be 0 or more, not {studio_bank}")
    if fine_tune_epochs < 0:
        raise InputError(f"--fine-tune-epochs must be 0 or more, not {fine_tune_epochs}")
    fs = FileSystem(spark)
    if fs.exists(model_path) and not overwrite:
        raise OutputError(f"{model_path} already exists; choose another --model or pass --overwrite")
    featurizer = ImageFeaturizer(weights=weights, imageSize=image_size, featureLayers=list(feature_layers))
    featurizer.resolved_weights()  # a bad weights source fails before any Spark work
    excluded, tuned = sorted(set(exclude_labels)), None
    if fine_tune_epochs:
        featurizer, tuned = _fine_tuned(spark, input_path, work, featurizer, scenes, seed, (test, calibration),
                                        excluded, fine_tune_epochs, log)
    frame, key = _features(spark, input_path, work, featurizer, scenes, seed, log)
    _check_excluded(frame, excluded, input_path)
    failed = frame.filter(F.col("error").isNotNull()).select("path", "error").toPandas()
    frame = frame.filter(F.col("error").isNull() & ~F.col("label").isin(excluded)).drop("error")

    source = augment.source_path()
    groups, splits = _split(frame, seed, test, calibration)
    by_group = spark.createDataFrame([(label, group, split) for (label, group), split in splits.items()],
                                     "label string, group string, split string")  # a few hundred rows
    group = pandas_udf(lambda names: names.map(fruit_group), "string")  # the same rule, on the executors
    # Kept by Spark (memory, then disk): every fit and scoring below reads these rows again (8 reads, then 7 per
    # open-set model); recomputed each time (features parquet, the group UDF, the join), the recipe on data_sample/
    # took 43 s instead of 27 s (docs/performance.md, "The recipe's rows kept").
    frame = (frame.withColumn("group", group(F.element_at(F.split(source, "/"), -1)))
             .join(F.broadcast(by_group), ["label", "group"])).persist()
    try:  # released after the last read, or when a fit fails (a notebook session would keep them)
        counts = {(r["split"], r["studio"]): r["count"] for r in
                  frame.groupBy("split", (F.col(augment.VIEW_COL) == "studio").alias("studio")).count().collect()}
        training = frame.filter(F.col("split") == "train")
        n_train = counts.get(("train", True), 0) + counts.get(("train", False), 0)
        log(f"[2/4] PCA (k = {pca_k}) + logistic regression (regParam {reg_param}) on {n_train} training images "
            f"({len(groups)} labels" + (f"; left out: {', '.join(excluded)}" if excluded else "") + ")")
        pca, indexer, classifier, projected = _fit_classifier(training, pca_k, reg_param)
        gate = _fit_gate(projected, pca, seed, studio_bank, classify=True, reg_param=reg_param) if studio_bank else None
        if gate is not None:
            log(f"      studio gate: a linear head for studio-like photos, {len(gate.bank)} studio training photos, "
                "a classifier trained on studio photos")
        if refuse_unknown > 0:
            log("[3/4] open-set calibration: the same recipe without some labels, on their calibration images")
            unknown, folds = unknown_confidences(frame, groups, pca_k, reg_param, seed,
                                                 bank_size=studio_bank if gate is not None else 0, log=log)
        else:
            unknown, folds = pd.DataFrame({"probability": []}), []
            log("[3/4] open-set calibration: skipped (--refuse-unknown 0)")
        labels = list(indexer.labels)
        decoder = IndexToString(inputCol="prediction", outputCol=PREDICTED, labels=labels)
        model = PipelineModel([featurizer, *pca.model.stages, classifier, decoder])

        held_out = frame.filter(F.col("split") != "train").withColumn("features", array_to_vector("features"))
        held = decoder.transform(classifier.transform(pca.model.transform(held_out)))
        held = gate_columns(held, gate)
        rows = held.select("path", "label", "split", augment.VIEW_COL, vector_to_array("probability").alias("p"),
                           *SCORES, STUDIO_PROBABILITY).toPandas()
    finally:
        frame.unpersist()
    rows = rows.sort_values("path").reset_index(drop=True)
    naming = AbstainRule(gate=gate).naming(np.stack(rows["p"]), rows["studio_likeness"], rows[STUDIO_PROBABILITY])
    rows = rows.drop(columns=["p", STUDIO_PROBABILITY]).assign(
        predicted=np.asarray(labels, object)[naming.argmax(axis=1)], probability=naming.max(axis=1))
    rows = rows[["path", "label", "split", augment.VIEW_COL, "predicted", "probability", *SCORES]]
    calibrating = rows[rows["split"] == "calibration"]
    rule, chosen = choose_rule(calibrating, unknown, gate, refuse_unknown)
    answered = rule.answered(rows["probability"], rows["studio_likeness"], rows["nearest_studio"])
    rows["answer"] = rows["predicted"].where(answered, "unknown")
    calibration_answered = answered[(rows["split"] == "calibration").to_numpy()]
    test_rows = rows[rows["split"] == "test"]
    metrics = {"labels": labels}
    shown = []
    for view, part in (("studio", test_rows[test_rows[augment.VIEW_COL] == "studio"]),
                       ("scenes", test_rows[test_rows[augment.VIEW_COL] != "studio"])):
        if part.empty:  # e.g. --scenes 0: no scene to report on
            metrics[view] = {"n": 0}
            continue
        named = classification_metrics(labels + ["unknown"], part["label"], part["answer"])
        metrics[view] = {"n": int(len(part)), "top1": round(float(np.mean(part["label"] == part["predicted"])), 6),
                         "accuracy_abstention_as_error": named["accuracy"],
                         "abstained": round(float(np.mean(part["answer"] == "unknown")), 6),
                         "per_class": named["per_class"], "confusion_matrix": named["confusion_matrix"]}
        shown.append(f"test {view}: top-1 {metrics[view]['top1']:.4f}, named right "
                     f"{named['accuracy']:.4f}, unknown {metrics[view]['abstained']:.1%}")
    refused = (round(float(np.mean(~rule.answered(unknown["probability"], unknown.get("studio_likeness"),
                                                  unknown.get("nearest_studio")))), 6) if len(unknown) else None)
    weighed, refusing = chosen["probability"]["right_minus_wrong"], chosen["probability"]["refusing_unknown"]
    log(f"[4/4] threshold {rule.threshold:.2f} (right minus wrong: {weighed:.2f}, refusing {refuse_unknown:.0%} of "
        f"unlearnt fruits: {refusing:.2f})"
        + (f", studio-like photos: nearest studio photo {rule.similarity:.2f} (right minus wrong: "
           f"{chosen['nearest_studio']['right_minus_wrong']:.2f}, refusing: {chosen['nearest_studio']['refusing_unknown']:.2f})"
           if gate is not None else "")
        + (f", unknown fruits {refused:.1%} unknown" if len(unknown) else "") + "; " + "; ".join(shown))
    studio = metrics["studio"]
    saved = {
        **classification_metrics(labels + ["unknown"], test_rows["label"], test_rows["answer"]),
        "accuracy": studio.get("accuracy_abstention_as_error"),
        "labels": labels, "k": int(pca.k), "n_train": int(n_train),
        "n_test": int(len(test_rows)), "n_calibration": int((rows["split"] == "calibration").sum()),
        "recipe": {"input": input_path, "scenes_per_photo": scenes, "seed": seed, "excluded_labels": excluded,
                   "refuse_unknown": refuse_unknown,
                   "features": key, "split": f"by fruit: blocks of {FRAMES_PER_BLOCK} frames, {test:.0%} test, "
                                             f"{calibration:.0%} calibration, seeded hash per label"},
        "classifier": {"family": "multinomial", "regParam": reg_param, "maxIter": 200},
        "abstain": {"threshold": rule.threshold, "score": "the highest class probability",
                    "rule": "answer only when the highest probability reaches the threshold, the higher (step 0.01) "
                            "of: the one maximising right answers minus wrong answers (an abstention counts 0) on "
                            "the calibration split (studio photos and their scenes), and the lowest one under which "
                            "refuse_unknown of the calibration images of labels left out of a model fitted without "
                            "them fall (open-set calibration)" + (
                                "; photos the studio gate takes for studio shots are judged the same way, by the "
                                "cosine similarity of their nearest studio training photo instead of the probability"
                                if gate is not None else ""),
                    "threshold_right_minus_wrong": weighed, "threshold_refusing_unknown": refusing,
                    "refuse_unknown": refuse_unknown,
                    "studio_gate": {"file": GATE_FILE, "bank": int(len(gate.bank)), "studio_like_from": STUDIO_LIKE,
                                    "similarity_threshold": rule.similarity,
                                    "similarity_right_minus_wrong": chosen["nearest_studio"]["right_minus_wrong"],
                                    "similarity_refusing_unknown": chosen["nearest_studio"]["refusing_unknown"],
                                    "calibration_photos": chosen["nearest_studio"]["calibration_photos"],
                                    "unknown_photos": chosen["nearest_studio"]["unknown_photos"]}
                    if gate is not None else None,
                    "open_set": {"models": len(folds), "left_out": folds, "photos": int(len(unknown)),
                                 "refused": refused},
                    "calibration_photos": int(len(calibrating)),
                    "calibration_named_right": round(float(np.mean((calibrating["label"] == calibrating["predicted"])
                                                                   .to_numpy() & calibration_answered)), 6),
                    "calibration_abstained": round(float(np.mean(~calibration_answered)), 6)},
        "test_studio": studio, "test_scenes": metrics["scenes"],
        "failed": [{"path": p, "error": e} for p, e in zip(failed["path"], failed["error"])],
        "weights": {"source": featurizer.getWeights(),
                    "sha256": featurizer.resolved_weights().sha256, "fine_tuning": tuned},
        "image_size": image_size,
    }
    saved_rows = rows.rename(columns={augment.VIEW_COL: "view"})
    _publish(spark, fs, model, saved, saved_rows, model_path, overwrite,
             files={GATE_FILE: gate.to_bytes()} if gate is not None else None)
    return TrainResult(model, saved, saved_rows, model_path)
