"""Train the fruit classifier on a finished run and save ONE Spark ML ``PipelineModel``.

The saved model is ``featurizer -> centring -> PCA -> LogisticRegression -> IndexToString``: it turns
image bytes into a label, and its directory carries the network too (``ImageFeaturizer``'s writer),
so it loads anywhere without the original weights source. Beside the Spark files, the model folder
holds ``metrics.json``, ``confusion_matrix.png``, ``labels.txt`` and ``test_predictions.csv``.

The hold-out split is stratified and deterministic: within each label, images are ordered by a hash
of ``label/file name`` and the seed, and the first ``round(holdout * n)`` are held out, so the same
photos are held out wherever the data sits. Regularisation is chosen by ``CrossValidator`` on the
training part only; the hold-out part is touched once, for the reported figures.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import IndexToString, StringIndexer
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from fruits_lib import reduce
from fruits_lib.support import plot
from fruits_lib.support.errors import InputError, OutputError
from fruits_lib.write import FileSystem, join

REG_PARAMS = (1e-3, 1e-2, 1e-1)  # L2 strengths tried by cross-validation
CV_FOLDS = 3
MAX_ITER = 100
PREDICTED = "predictedLabel"


@dataclass
class TrainResult:
    """What :func:`train` produced: the saved model, its metrics, and the hold-out predictions."""

    model: PipelineModel
    metrics: dict
    predictions: pd.DataFrame  # path, label, predicted, probability (of the predicted label), one row per test image
    model_path: str


def split_holdout(frame: DataFrame, holdout: float, seed: int = 0) -> tuple:
    """``(train, test)``: ``round(holdout * n)`` images of each label held out, chosen by a seeded hash.

    The hash is of ``label/file name`` (not the full path), so moving the data keeps the split.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"--holdout must be in (0, 1), not {holdout}")
    key = F.concat_ws("/", "label", F.element_at(F.split("path", "/"), -1))
    by_label = Window.partitionBy("label")
    ranked = (frame.withColumn("_order", F.xxhash64(key, F.lit(int(seed))))
              .withColumn("_rank", F.row_number().over(by_label.orderBy("_order", "path")))
              .withColumn("_n", F.count(F.lit(1)).over(by_label)))
    held = F.col("_rank") <= F.round(F.col("_n") * F.lit(float(holdout)))
    # Thousands of rows of k numbers: one partition, cached, so each L-BFGS iteration is one small task.
    ranked = ranked.withColumn("_test", held).drop("_order", "_rank", "_n").coalesce(1).cache()
    return ranked.filter(~F.col("_test")).drop("_test"), ranked.filter(F.col("_test")).drop("_test")


def read_run(spark, run_output: str, pca_k: int | None = None) -> tuple:
    """``(featurizer, [centring, PCA] or None, frame, source)`` of a finished run: its published ``pca/``
    and model stages, or with ``pca_k`` its ``features/`` (the PCA is then refitted by :func:`train`)."""
    fs = FileSystem(spark)
    model_dir, summary = join(run_output, "model"), join(run_output, "summary.json")
    finished = fs.exists(summary)
    if not finished or not fs.exists(model_dir):
        skipped = finished and fs.read_json(summary).get("pca_skipped_because")
        if skipped:  # a finished run with nothing to reduce has no model either
            raise InputError(f"{run_output} has no PCA nor model to train on: {skipped}")
        raise InputError(f"{run_output} is not a finished run (no summary.json or model/); "
                         "run `fruits run --input ... --output ...` first")
    stages = PipelineModel.load(model_dir).stages
    if pca_k is None and fs.exists(join(run_output, "pca")):
        frame = spark.read.parquet(join(run_output, "pca")).select("path", "label", array_to_vector("pca").alias("pca"))
        return stages[0], stages[1:], frame, "pca"
    if not fs.exists(join(run_output, "features")):
        raise InputError(f"{run_output} has neither pca/ nor features/")
    frame = (spark.read.parquet(join(run_output, "features")).filter(F.col("features").isNotNull())
             .select("path", "label", array_to_vector("features").alias("features")))
    return stages[0], None, frame, "features"


def fit_classifier(train: DataFrame, features_col: str = "pca", seed: int = 0, reg_params=REG_PARAMS,
                   folds: int = CV_FOLDS) -> tuple:
    """``(indexer, best LR model, {regParam: mean CV log-loss})``: multinomial LR, L2 chosen by CrossValidator."""
    indexer = StringIndexer(inputCol="label", outputCol="labelIndex", stringOrderType="alphabetAsc").fit(train)
    indexed = indexer.transform(train)
    classifier = LogisticRegression(featuresCol=features_col, labelCol="labelIndex", family="multinomial",
                                    maxIter=MAX_ITER, elasticNetParam=0.0)
    grid = ParamGridBuilder().addGrid(classifier.regParam, list(reg_params)).build()
    # log-loss, not accuracy: on well-separated fruits every strength reaches accuracy 1.0 and ties.
    evaluator = MulticlassClassificationEvaluator(labelCol="labelIndex", metricName="logLoss")
    search = CrossValidator(estimator=classifier, estimatorParamMaps=grid, evaluator=evaluator,
                            numFolds=folds, seed=seed, parallelism=2).fit(indexed)
    scores = {float(m[classifier.regParam]): round(float(s), 6) for m, s in zip(grid, search.avgMetrics)}
    return indexer, search.bestModel, scores


def classification_metrics(labels: list, truth, predicted) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows: true label)."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for true, guess in zip(truth, predicted):
        matrix[index[true], index[guess]] += 1
    per_class, f1s = {}, []
    for i, label in enumerate(labels):
        hits, predicted_n, true_n = matrix[i, i], matrix[:, i].sum(), matrix[i, :].sum()
        precision = hits / predicted_n if predicted_n else 0.0
        recall = hits / true_n if true_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[label] = {"precision": round(float(precision), 6), "recall": round(float(recall), 6),
                            "f1": round(float(f1), 6), "support": int(true_n)}
    total = int(matrix.sum())
    return {"accuracy": round(float(np.trace(matrix) / total), 6) if total else None,
            "macro_f1": round(float(np.mean(f1s)), 6), "per_class": per_class,
            "confusion_matrix": {"labels": list(labels), "rows_true_columns_predicted": matrix.tolist()}}


def train(spark, run_output: str, model_path: str, *, holdout: float = 0.2, seed: int = 0,
          pca_k: int | None = None, overwrite: bool = False, log=print) -> TrainResult:
    """Fit the classifier on ``run_output`` (a finished run) and publish the whole model at ``model_path``."""
    fs = FileSystem(spark)
    if fs.exists(model_path) and not overwrite:
        raise OutputError(f"{model_path} already exists; choose another --model or pass --overwrite")
    featurizer, reducer, frame, source = read_run(spark, run_output, pca_k)
    train_part, test_part = split_holdout(frame, holdout, seed)
    n_train, n_test = train_part.count(), test_part.count()
    if n_test == 0 or train_part.select("label").distinct().count() < 2:
        raise InputError(f"too few images to train and hold out ({n_train} train, {n_test} test, "
                         "at least 2 labels needed)")
    if reducer is None:  # refit centring + PCA at k on the training part only
        log(f"[1/3] PCA (k = {pca_k}) on the {n_train} training images' features")
        pca = reduce.fit_pca(train_part.cache(), "features", "pca", k=pca_k)
        reducer = pca.model.stages
        train_part, test_part = pca.model.transform(train_part), pca.model.transform(test_part)
    else:
        log(f"[1/3] PCA: the run's own (k = {reducer[-1].getK()}), already applied to its features")
    k = reducer[-1].getK()
    log(f"[2/3] logistic regression on {n_train} images (k = {k}), L2 chosen among {list(REG_PARAMS)} "
        f"by {CV_FOLDS}-fold cross-validation; {n_test} held out")
    indexer, classifier, scores = fit_classifier(train_part, "pca", seed)
    decoder = IndexToString(inputCol="prediction", outputCol=PREDICTED, labels=indexer.labels)
    model = PipelineModel([featurizer, *reducer, classifier, decoder])

    scored = decoder.transform(classifier.transform(test_part))
    rows = scored.select("path", "label", F.col(PREDICTED).alias("predicted"),
                         F.array_max(vector_to_array("probability")).alias("probability")).toPandas()
    rows = rows.sort_values("path").reset_index(drop=True)
    labels = list(indexer.labels)
    weights = featurizer.resolved_weights()
    metrics = classification_metrics(labels, rows["label"], rows["predicted"])
    metrics.update({
        "n_train": int(n_train), "n_test": int(n_test), "holdout": holdout, "seed": seed,
        "split": "stratified: per label, the first round(holdout*n) by xxhash64(label/file name, seed)",
        "k": int(k), "trained_on": f"{source}/" + ("" if pca_k is None else f" (PCA refitted at k = {pca_k})"),
        "run": run_output, "labels": labels,
        "classifier": {"family": "multinomial", "regParam": float(classifier.getRegParam()),
                       "cv_log_loss_by_regParam": scores, "folds": CV_FOLDS},
        "weights": {"source": featurizer.getWeights(), "sha256": weights.sha256},
        "image_size": featurizer.getImageSize(),
    })
    log(f"[3/3] hold-out accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
        f"(regParam {metrics['classifier']['regParam']:g}); saving {model_path}")
    _publish(spark, fs, model, metrics, rows, model_path, overwrite)
    train_part.unpersist()
    return TrainResult(model, metrics, rows, model_path)


def _publish(spark, fs: FileSystem, model: PipelineModel, metrics: dict, rows: pd.DataFrame, model_path: str,
             overwrite: bool, files: dict | None = None) -> None:
    """Write everything (and ``files``: name -> bytes) into a private folder, then move it into place: a
    half-saved model is never seen."""
    staging = f"{model_path.rstrip('/')}._partial-{uuid.uuid4().hex[:8]}"
    try:
        model.write().save(staging)
        matrix = metrics["confusion_matrix"]
        figure = plot.confusion_matrix(matrix["rows_true_columns_predicted"], matrix["labels"],
                                       title=f"hold-out: accuracy {metrics['accuracy']:.3f}, "
                                             f"macro-F1 {metrics['macro_f1']:.3f} (n = {metrics['n_test']})")
        fs.write_bytes(join(staging, "confusion_matrix.png"), plot.to_png(figure))
        plot.plt.close(figure)
        fs.write_bytes(join(staging, "metrics.json"), json.dumps(metrics, indent=2).encode())
        fs.write_bytes(join(staging, "labels.txt"), ("\n".join(metrics["labels"]) + "\n").encode())
        fs.write_bytes(join(staging, "test_predictions.csv"), rows.to_csv(index=False).encode())
        for name, data in (files or {}).items():
            fs.write_bytes(join(staging, name), data)
        previous = None
        if fs.exists(model_path):
            previous = f"{model_path.rstrip('/')}._replaced-{uuid.uuid4().hex[:8]}"
            fs.rename(model_path, previous)
        fs.rename(staging, model_path)
        if previous:
            fs.delete(previous)  # only once the replacement is in place
    except BaseException:
        if fs.exists(staging):
            fs.delete(staging)
        raise


def load_metrics(spark, model_path: str) -> dict:
    """``metrics.json`` of a trained model."""
    return json.loads(FileSystem(spark).read_bytes(join(model_path, "metrics.json")).decode())
