"""Identify fruits: a trained model (``fruits train``) applied to photos, folders or ``s3://`` prefixes.

Every argument is read through Spark's ``binaryFile`` source (a folder recursively, any file
whatever its extension), so one local photo and a bucket of thousands go the same way. Files the
network cannot read get their reason (e.g. "not a readable image"), never a traceback.
"""

from __future__ import annotations

import itertools
import os
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
from pyspark.errors import AnalysisException
from pyspark.ml import PipelineModel
from pyspark.ml.feature import IndexToString
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from fruits_lib import load
from fruits_lib.featurize import ImageFeaturizer
from fruits_lib.support.errors import InputError
from fruits_lib.support.progress import image_counter, spark_images
from fruits_lib.unknown import SCORES, STUDIO_PROBABILITY, AbstainRule, gate_columns, null_gate_columns
from fruits_lib.write import FileSystem, join

PROGRESS_FROM = 32  # files: fewer are identified in a few seconds, without a progress bar


@dataclass
class Identification:
    """One input file: its top labels with probabilities, or why it could not be read."""

    path: str
    top: list = field(default_factory=list)  # [(label, probability), ...], most probable first
    error: str | None = None
    threshold: float = 0.0  # the model's abstention threshold: below it, the answer is "unknown"
    refused: str | None = None  # why the model's rule answers "unknown" whatever the probability

    @property
    def label(self) -> str | None:
        """The answer: the most probable label, or None (unknown) when refused or under the threshold."""
        if self.error or not self.top or self.refused or self.top[0][1] < self.threshold:
            return None
        return self.top[0][0]

    @property
    def unknown_reason(self) -> str | None:
        """Why the answer is "unknown" (None when there is an answer, or an error instead)."""
        if self.error or not self.top or self.label is not None:
            return None
        return self.refused or "not confident enough"

    def as_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "unknown_reason": self.unknown_reason,
                "top": [{"label": label, "probability": round(float(p), 6)} for label, p in self.top],
                "error": self.error}

    def line(self) -> str:
        if self.error:
            return f"{self.path}: not identified ({self.error})"
        guesses = ", ".join(f"{label} {p:.1%}" for label, p in self.top)
        if self.label is None:
            return f"{self.path}: unknown ({self.unknown_reason}: {guesses})"
        return f"{self.path}: {guesses}"  # the answer comes first


def load_model(spark, model_path: str) -> PipelineModel:
    """A model saved by ``fruits train``; refused in one line if it is not one (or was altered)."""
    path = load.normalize_path(model_path)
    fs = FileSystem(spark)
    if not fs.exists(join(path, "metadata")):
        raise InputError(f"no trained model at {path} (expected the folder written by `fruits train --model`)")
    model = PipelineModel.load(path)
    if not isinstance(model.stages[0], ImageFeaturizer) or not isinstance(model.stages[-1], IndexToString):
        raise InputError(f"{path} is not a classifier saved by `fruits train` (featurizer ... IndexToString)")
    return model


def _inputs(spark, targets: list) -> tuple:
    """Spark's binaryFile frame over every target, and the files Spark's reader leaves out (zero bytes)."""
    paths = [load.normalize_path(target) for target in targets]
    for path in paths:
        if "://" not in path and not os.path.exists(path):
            raise InputError(f"not found: {path}")
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
    try:
        frame = reader.load(paths)
        listed = load.input_files(frame)
    except AnalysisException as exc:  # e.g. an s3:// prefix that does not exist
        raise InputError(str(exc).strip().splitlines()[0]) from None
    return frame, listed


def identify(spark, model: PipelineModel, targets: list, top: int = 3, rule: AbstainRule = AbstainRule()):
    """Yield an :class:`Identification` per file under ``targets``, streamed from Spark (sorted by path);
    its ``label`` is None (unknown) when ``rule`` (:func:`fruits_lib.unknown.load_rule`) refuses to answer."""
    if top < 1:
        raise ValueError(f"--top must be positive, not {top}")
    frame, listed = _inputs(spark, targets)
    featurizer, rest = model.stages[0], PipelineModel(model.stages[1:])
    labels = list(model.stages[-1].getLabels())
    error_col = featurizer.getErrorCol()
    image_counter(spark)  # before the transform: the featurizer's tasks count their images (progress)
    # persisted without the bytes: the two branches below would otherwise run the network twice per image
    featurized = (featurizer.transform(frame.select("path", "content"))
                  .select("path", featurizer.getOutputCol(), error_col).persist())
    ok = rest.transform(featurized.filter(F.col(error_col).isNull()))
    ok = gate_columns(ok, rule.gate, model.stages[-3].getOutputCol())  # from the PCA stage's projection
    ok = ok.select("path", F.lit(None).cast("string").alias("error"),
                   vector_to_array("probability").alias("probability"), *SCORES, STUDIO_PROBABILITY)
    failed = featurized.filter(F.col(error_col).isNotNull()).select(
        "path", F.col(error_col).alias("error"), F.lit(None).cast("array<double>").alias("probability"),
        *(column.alias(name) for name, column in null_gate_columns().items()))
    seen = set()
    rows = ok.unionByName(failed).orderBy("path")
    try:  # released after the last row, or when the reader stops early or a job fails (a notebook would keep them)
        with spark_images(spark, "identify", len(listed)) if len(listed) >= PROGRESS_FROM else nullcontext():
            rows = rows.toLocalIterator()  # sorted: the first row comes once every image is featurized
            first = next(rows, None)
        for row in itertools.chain([first] if first is not None else [], rows):
            seen.add(load.canonical(row["path"]))
            if row["error"] is not None:
                yield Identification(load.local_path(row["path"]), error=row["error"])
                continue
            probabilities = rule.naming([row["probability"]], [row["studio_likeness"]],
                                        [row[STUDIO_PROBABILITY]] if row[STUDIO_PROBABILITY] is not None else None)[0]
            order = np.argsort(-probabilities, kind="stable")[:top]
            refused = rule.refusals([probabilities.max()], [row["studio_likeness"]], [row["nearest_studio"]])[0]
            yield Identification(load.local_path(row["path"]),
                                 top=[(labels[i], float(probabilities[i])) for i in order], refused=refused)
    finally:
        featurized.unpersist()
    for uri in listed:  # Spark's file sources skip zero-byte files: they still get an answer
        if load.canonical(uri) not in seen:
            yield Identification(load.local_path(load.canonical(uri)), error="empty file (0 bytes)")
