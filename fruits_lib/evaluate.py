"""Evaluate: a model against labelled photos unlike its training ones, with "unknown" as a possible answer.

:func:`write_eval_set` makes the project's own real-world check from what may be used here: photos of
fruits the model never saw in training (the recipe's test split, and fruits outside its labels) on
held-out backgrounds, in named conditions (a scene, a close-up that overflows the frame, several
fruits, an occluder, grayscale, and the studio photo itself). :func:`evaluate` answers every photo with
a model and reports per-class accuracy (an abstention counts as an error), the abstention rate on known
and on unknown fruits, accuracy per condition, and the confusion matrix.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from fruits_lib import augment
from fruits_lib.support import backgrounds

CONDITIONS = {  # name -> scene style (None: the studio photo itself)
    "studio": None,
    "scene": {},
    "close-up": {"scale": 1.15, "extra": 0},
    "several": {"extra": 3, "scale": 0.45},
    "occluded": {"occluder": True, "extra": 0},
    "grayscale": {"grey": True},
}
MANIFEST = "_eval.json"
UNKNOWN = "unknown"


def _condition(path: str) -> str:
    stem = Path(path).stem
    return stem.rsplit("__", 1)[1] if "__" in stem else "studio"


def write_eval_set(out_dir, known_dir, unknown_dir=None, unknown_labels=(), per_label: int = 6, seed: int = 7,
                   split_seed: int = 0, size: int = 224) -> dict:
    """Write ``<out>/<label>/<photo stem>__<condition>.jpg`` for ``per_label`` photos of each label.

    Known labels take photos of the recipe's **test** split only (``split_seed`` must be the recipe's seed),
    so no frame of their fruit block was trained on; ``unknown_labels`` of ``unknown_dir`` are fruits no
    model here learnt. Backgrounds are the held-out ones. Refuses a non-empty ``out_dir``.
    """
    from PIL import Image

    from fruits_lib.split import assign_splits, fruit_group

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: remove it to make the evaluation set again")
    picked = {}
    known = Path(known_dir)
    groups = {label.name: [fruit_group(p.name) for p in label.iterdir()] for label in sorted(known.iterdir())
              if label.is_dir()}
    splits = assign_splits(groups, split_seed)
    for label in sorted(groups):
        files = sorted(p for p in (known / label).iterdir() if splits[(label, fruit_group(p.name))] == "test")
        picked[label] = files
    for label in unknown_labels:
        folder = Path(unknown_dir) / label
        if not folder.is_dir():
            raise ValueError(f"no folder {folder} for the unknown label {label!r}")
        picked[label] = sorted(folder.iterdir())
    photos = backgrounds.load_photos("heldout")
    counts = {}
    for label, files in picked.items():
        rng = np.random.default_rng([seed, len(label), sum(map(ord, label))])
        chosen = [files[i] for i in sorted(rng.choice(len(files), min(per_label, len(files)), replace=False))]
        (out / label).mkdir(parents=True, exist_ok=True)
        for photo in chosen:
            content = photo.read_bytes()
            with Image.open(io.BytesIO(content)) as image:
                pixels = np.asarray(image.convert("RGB"))
            alpha = augment.cutout_mask(pixels)
            for index, (condition, style) in enumerate(CONDITIONS.items()):
                target = out / label / f"{photo.stem}__{condition}.jpg"
                if style is None:
                    target.write_bytes(content)
                else:
                    rng_scene = augment.scene_rng(f"{label}/{photo.name}", index, seed)
                    target.write_bytes(augment.compose_scene(pixels, rng_scene, "heldout", size, photos, alpha,
                                                             **style))
                counts[label] = counts.get(label, 0) + 1
    manifest = {"known_dir": str(known), "unknown_dir": str(unknown_dir) if unknown_dir else None,
                "unknown_labels": list(unknown_labels), "per_label": per_label, "seed": seed,
                "split_seed": split_seed, "conditions": list(CONDITIONS), "images": counts,
                "backgrounds": backgrounds.credits("heldout") + [f"textures: {', '.join(backgrounds.TEXTURES['heldout'])}"],
                "photos": "Fruits-360 (Muresan & Oltean, 2018), CC BY-SA 4.0"}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def score(answers: list, model_labels: list) -> dict:
    """Figures of ``answers`` (``(path, true label, answer or None)``): per-class accuracy of known fruits
    (abstention = error), abstention on known and unknown fruits, per condition, confusion matrix."""
    from fruits_lib.train import classification_metrics

    known_labels = set(model_labels)
    rows = [(path, truth, answer or UNKNOWN, _condition(path)) for path, truth, answer in answers]
    known = [r for r in rows if r[1] in known_labels]
    unknown = [r for r in rows if r[1] not in known_labels]
    truth_as_model = [r[1] if r[1] in known_labels else UNKNOWN for r in rows]
    matrix = classification_metrics(sorted(known_labels) + [UNKNOWN], truth_as_model, [r[2] for r in rows])
    per_class = {}
    for label in sorted({r[1] for r in known}):
        mine = [r for r in known if r[1] == label]
        per_class[label] = {"n": len(mine), "accuracy": round(float(np.mean([r[2] == label for r in mine])), 4),
                            "abstained": round(float(np.mean([r[2] == UNKNOWN for r in mine])), 4)}
    conditions = {}
    for condition in CONDITIONS:
        mine = [r for r in known if r[3] == condition]
        if mine:
            conditions[condition] = {"n": len(mine), "accuracy": round(float(np.mean([r[2] == r[1] for r in mine])), 4),
                                     "abstained": round(float(np.mean([r[2] == UNKNOWN for r in mine])), 4)}
    mean = lambda values: round(float(np.mean(values)), 4) if values else None  # noqa: E731
    return {
        "known": {"n": len(known), "accuracy": mean([r[2] == r[1] for r in known]),
                  "abstained": mean([r[2] == UNKNOWN for r in known])},
        "known_without_studio": {"n": sum(r[3] != "studio" for r in known),
                                 "accuracy": mean([r[2] == r[1] for r in known if r[3] != "studio"]),
                                 "abstained": mean([r[2] == UNKNOWN for r in known if r[3] != "studio"])},
        "unknown": {"n": len(unknown), "abstained": mean([r[2] == UNKNOWN for r in unknown]),
                    "labels": sorted({r[1] for r in unknown}),
                    "named_as": _top_counts([r[2] for r in unknown if r[2] != UNKNOWN])},
        "per_condition": conditions, "per_class": per_class,
        "confusion_matrix": matrix["confusion_matrix"],
    }


def _top_counts(values: list, top: int = 5) -> dict:
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top])


def evaluate(spark, model_path: str, folder: str) -> dict:
    """Identify every photo under ``folder`` (label = parent folder) with the model at ``model_path`` and
    score the answers; unreadable files are listed, never scored."""
    from fruits_lib.identify import identify, load_model
    from fruits_lib.load import label_from_path
    from fruits_lib.unknown import load_rule

    model = load_model(spark, model_path)
    rule = load_rule(spark, model_path)
    answers, failed = [], []
    for answer in identify(spark, model, [folder], top=1, rule=rule):
        if answer.error:
            failed.append({"path": answer.path, "error": answer.error})
        elif not os.path.basename(answer.path).startswith("_"):
            answers.append((answer.path, label_from_path(answer.path), answer.label))
    result = score(answers, list(model.stages[-1].getLabels()))
    result.update({"model": model_path, "threshold": rule.threshold,
                   "studio_gate_similarity": rule.similarity if rule.gate is not None else None,
                   "folder": folder, "failed": failed,
                   "answers": [{"path": p, "truth": t, "answer": a} for p, t, a in answers]})
    return result


def write_report(report: dict, folder: str) -> str:
    """``report.json`` and ``confusion_matrix.png`` (rows: truth, columns: answer) into a local ``folder``."""
    from fruits_lib.support import plot
    from fruits_lib.support.store import write_atomically

    matrix = report["confusion_matrix"]
    known = report["known"]
    figure = plot.confusion_matrix(matrix["rows_true_columns_predicted"], matrix["labels"],
                                   title=f"real-world check: known named right {known['accuracy'] or 0:.1%}, "
                                         f"unknown answered unknown {report['unknown']['abstained'] or 0:.1%}")
    picture = plot.to_png(figure)
    plot.plt.close(figure)
    # each file replaced whole (a previous report stays intact until its replacement is written)
    write_atomically(os.path.join(folder, "confusion_matrix.png"), picture)
    write_atomically(os.path.join(folder, "report.json"), json.dumps(report, indent=1).encode())
    return os.path.join(folder, "report.json")


def _diverse(answers: list, limit: int) -> list:
    """Up to ``limit`` answers, one per (truth, answer) pair before any pair repeats."""
    firsts, repeats, seen = [], [], set()
    for answer in answers:
        pair = (answer["truth"], answer["answer"])
        (repeats if pair in seen else firsts).append(answer)
        seen.add(pair)
    return (firsts + repeats)[:max(0, limit)]


def hard_cases(report: dict, count: int = 24) -> list:
    """``(truth, answer, bytes)`` of up to ``count`` scored photos for ``plot.prediction_grid``: mistakes first
    (up to half), then abstentions, then right answers, each as varied as the answers allow."""
    answers = report["answers"]
    mistakes = _diverse([a for a in answers if a["answer"] is not None and a["answer"] != a["truth"]], count // 2)
    unknown = _diverse([a for a in answers if a["answer"] is None], (count - len(mistakes)) // 2)
    right = _diverse([a for a in answers if a["answer"] == a["truth"]], count - len(mistakes) - len(unknown))
    return [(a["truth"], a["answer"], Path(a["path"]).read_bytes()) for a in mistakes + unknown + right]
