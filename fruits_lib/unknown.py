"""When a model answers "unknown": the thresholds, the studio gate, and the rule saved with the app's model.

A photo that looks like a studio shot (a linear head on the PCA projection says so) is named by a
classifier trained on studio photos only, and answered only when a studio training photo is close to it:
the cosine similarity of whitened projections to the nearest of a bank of them tells fruits never learnt
from known ones far better there than the highest probability does. Any other photo is named by the
model's own classifier and answered when its highest probability reaches a threshold.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from fruits_lib import load
from fruits_lib.write import FileSystem, join

THRESHOLDS = np.round(np.arange(0.0, 1.001, 0.01), 2)  # the thresholds tried, lowest first
GATE_FILE = "studio_gate.npz"  # beside metrics.json in the model folder
STUDIO_LIKE = 0.5  # the head's probability from which a photo is taken for a studio shot
BANK_SIZE = 4000  # studio photos kept: the bank's similarity was the same with 4,000 as with all 10,800
SCORES = ("studio_likeness", "nearest_studio")
STUDIO_PROBABILITY = "studio_probability"  # the studio classifier's probabilities (gate_columns)
GATE_TYPES = {"studio_likeness": "double", "nearest_studio": "double", STUDIO_PROBABILITY: "array<double>"}


def choose_threshold(right, confidence) -> float:
    """The threshold (a multiple of 0.01) under which the model answers "unknown": the one where answering
    only at or above it names right more often than it names wrong (a right answer +1, a wrong one -1, an
    abstention 0) on held-out photos; the lowest on a tie. A model that is never wrong gets 0 (it always answers)."""
    right = np.asarray(right, bool)
    confidence = np.asarray(confidence, float)
    if not len(right):
        raise ValueError("no calibration photo to choose the threshold on")
    best, chosen = None, 0.0
    for threshold in THRESHOLDS:
        answered = confidence >= threshold
        utility = int(np.sum(answered & right)) - int(np.sum(answered & ~right))
        if best is None or utility > best:
            best, chosen = utility, float(threshold)
    return chosen


def threshold_refusing(unknown_confidence, share: float) -> float:
    """The lowest threshold (a multiple of 0.01) under which at least ``share`` of ``unknown_confidence`` (the
    score given to photos of fruits the model did not learn) falls: they get "unknown"."""
    confidence = np.asarray(unknown_confidence, float)
    if not 0 <= share < 1:
        raise ValueError(f"the share of unknown fruits to refuse must be in [0, 1), not {share}")
    if share == 0:
        return 0.0
    if not len(confidence):
        raise ValueError("no photo of an unlearnt fruit to choose the threshold on")
    for threshold in THRESHOLDS:
        if np.mean(confidence < threshold) >= share:
            return float(threshold)
    return 1.0


@dataclass(frozen=True)
class StudioGate:
    """From a photo's projection: is it a studio shot, how close is the nearest studio photo learnt, and
    (``coefficients``, when fitted) what a classifier trained on studio photos only names it."""

    scale: np.ndarray  # (k,) each PCA component's standard deviation (up to one factor): whitening
    bank: np.ndarray  # (n, k) float32 unit vectors: whitened projections of studio training photos
    head: np.ndarray  # (k,) logistic coefficients on the projection: studio shot or not
    intercept: float
    coefficients: np.ndarray | None = None  # (classes, k) multinomial regression on studio photos, model's labels
    intercepts: np.ndarray | None = None  # (classes,)

    def score(self, projected) -> tuple:
        """``(studio likeness in [0, 1], cosine similarity to the nearest studio photo)`` per row."""
        projected = np.atleast_2d(np.asarray(projected, np.float64))
        likeness = 1.0 / (1.0 + np.exp(-np.clip(projected @ self.head + self.intercept, -500.0, 500.0)))
        whitened = projected / self.scale
        whitened /= np.maximum(np.linalg.norm(whitened, axis=1, keepdims=True), 1e-12)
        nearest = np.concatenate([(whitened[i:i + 1024].astype(np.float32) @ self.bank.T).max(axis=1)
                                  for i in range(0, len(whitened), 1024)]) if len(whitened) else np.zeros(0)
        return likeness, nearest.astype(np.float64)

    def probabilities(self, projected) -> np.ndarray:
        """The studio classifier's class probabilities per row (softmax of its logits)."""
        logits = np.atleast_2d(np.asarray(projected, np.float64)) @ self.coefficients.T + self.intercepts
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        classifier = {} if self.coefficients is None else {"coefficients": self.coefficients,
                                                           "intercepts": self.intercepts}
        np.savez(buffer, scale=self.scale, bank=self.bank, head=self.head, intercept=np.float64(self.intercept),
                 **classifier)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> StudioGate:
        saved = np.load(io.BytesIO(data), allow_pickle=False)
        classifier = (saved["coefficients"], saved["intercepts"]) if "coefficients" in saved.files else (None, None)
        return cls(saved["scale"], saved["bank"], saved["head"], float(saved["intercept"]), *classifier)


def fit_gate(training, pca, studio_col: str, seed: int = 0, bank_size: int = BANK_SIZE,
             projected_col: str = "pca", path_col: str = "path",
             classifier: LogisticRegression | None = None) -> StudioGate | None:
    """The gate of a model whose PCA stage (``pca``: a :class:`fruits_lib.reduce.PCAResult`) made
    ``projected_col`` on ``training``; ``studio_col``: true for studio photos; with ``classifier`` (the
    model's own estimator, reading ``projected_col`` and its label indices) the studio classifier too,
    fitted on the studio rows. None when the training images are all of one kind (no scene, e.g.
    ``--scenes 0``): nothing to tell studio shots from."""
    kinds = {row[0] for row in training.select(studio_col).distinct().collect()}
    if kinds != {True, False}:
        return None
    head = LogisticRegression(featuresCol=projected_col, labelCol="studio", regParam=0.001, maxIter=100).fit(
        training.withColumn("studio", F.col(studio_col).cast("double")))
    studio = training.filter(F.col(studio_col)).select(path_col, vector_to_array(projected_col).alias("p")).toPandas()
    order = sorted(range(len(studio)), key=lambda i: (zlib.crc32(f"{seed}/bank/{studio[path_col][i]}".encode()), i))
    kept = np.stack(studio["p"].to_numpy()[order[:bank_size]]).astype(np.float64)
    scale = np.sqrt(np.asarray(pca.explained_variance_ratio[: kept.shape[1]], np.float64))
    scale = np.where(scale > 0, scale, 1.0)
    whitened = kept / scale
    whitened /= np.maximum(np.linalg.norm(whitened, axis=1, keepdims=True), 1e-12)
    coefficients = intercepts = None
    if classifier is not None:
        studio_classifier = classifier.fit(training.filter(F.col(studio_col)))
        coefficients = studio_classifier.coefficientMatrix.toArray()
        intercepts = studio_classifier.interceptVector.toArray()
    return StudioGate(scale, whitened.astype(np.float32), head.coefficients.toArray(), float(head.intercept),
                      coefficients, intercepts)


def gate_columns(frame, gate: StudioGate | None, projected_col: str = "pca"):
    """``frame`` with :data:`SCORES` (doubles) and :data:`STUDIO_PROBABILITY` (array<double>) from
    ``projected_col``, scored on the executors; null where there is no gate, or no studio classifier."""
    names = () if gate is None else SCORES + ((STUDIO_PROBABILITY,) if gate.coefficients is not None else ())
    if names:
        shared = frame.sparkSession.sparkContext.broadcast(gate)

        @pandas_udf(", ".join(f"{name} {GATE_TYPES[name]}" for name in names))
        def score(projected):
            import pandas as pd

            rows = np.stack(projected.to_numpy()) if len(projected) else np.zeros((0, len(shared.value.scale)))
            likeness, nearest = shared.value.score(rows)
            scores = {"studio_likeness": likeness, "nearest_studio": nearest}
            if shared.value.coefficients is not None:
                scores[STUDIO_PROBABILITY] = list(shared.value.probabilities(rows)) if len(rows) else []
            return pd.DataFrame(scores)

        frame = frame.withColumn("_gate", score(vector_to_array(projected_col)))
        frame = frame.select("*", *(F.col(f"_gate.{name}").alias(name) for name in names)).drop("_gate")
    return frame.withColumns(null_gate_columns(exclude=names))


def null_gate_columns(exclude=()) -> dict:
    """``{name: typed null}`` for the gate's columns not in ``exclude``: rows that were not scored."""
    return {name: F.lit(None).cast(kind) for name, kind in GATE_TYPES.items() if name not in exclude}


@dataclass(frozen=True)
class AbstainRule:
    """When to answer: studio-like photos by their nearest studio photo (with a gate), others by probability."""

    threshold: float = 0.0  # the highest probability needed by photos the gate does not take
    similarity: float = 0.0  # the nearest studio photo's similarity needed by studio-like photos
    gate: StudioGate | None = None

    def studio_like(self, likeness) -> np.ndarray:
        return np.asarray(likeness, float) >= STUDIO_LIKE if self.gate is not None else np.zeros(len(likeness), bool)

    def naming(self, probabilities, likeness=None, studio_probabilities=None) -> np.ndarray:
        """The class probabilities that name each photo: the studio classifier's for a studio-like photo (when
        the gate has one), the model's for the others."""
        probabilities = np.atleast_2d(np.asarray(probabilities, float))
        if self.gate is None or self.gate.coefficients is None or studio_probabilities is None:
            return probabilities
        studio = self.studio_like(likeness)
        return np.where(studio[:, None], np.atleast_2d(np.asarray(list(studio_probabilities), float)), probabilities)

    def refusals(self, probability, likeness=None, nearest=None) -> list:
        """Per photo: None when it is answered, else why it is "unknown"."""
        probability = np.asarray(probability, float)
        if self.gate is None or likeness is None:
            likeness = nearest = np.zeros(len(probability))
        studio = self.studio_like(likeness)
        reasons = []
        for p, is_studio, near in zip(probability, studio, np.asarray(nearest, float)):
            if is_studio:
                reasons.append(None if near >= self.similarity else
                               f"no studio photo learnt is close: nearest {near:.2f} < {self.similarity:.2f}")
            else:
                reasons.append(None if p >= self.threshold else "not confident enough")
        return reasons

    def answered(self, probability, likeness=None, nearest=None) -> np.ndarray:
        return np.array([reason is None for reason in self.refusals(probability, likeness, nearest)], bool)

    def describe(self) -> str:
        if self.gate is None:
            return f"best probability under {self.threshold:.2f}"
        return (f"studio-like photos: nearest studio photo under {self.similarity:.2f}; "
                f"others: best probability under {self.threshold:.2f}")


def load_rule(spark, model_path: str) -> AbstainRule:
    """The rule saved with a model (``metrics.json``'s ``abstain`` and :data:`GATE_FILE`); models trained
    before abstention always answer, those without a gate use the probability alone."""
    path = load.normalize_path(model_path)
    fs = FileSystem(spark)
    if not fs.exists(join(path, "metrics.json")):
        return AbstainRule()
    abstain = fs.read_json(join(path, "metrics.json")).get("abstain") or {}
    gate = abstain.get("studio_gate")
    if not gate:
        return AbstainRule(float(abstain.get("threshold", 0.0)))
    return AbstainRule(float(abstain["threshold"]), float(gate["similarity_threshold"]),
                       StudioGate.from_bytes(fs.read_bytes(join(path, gate["file"]))))
