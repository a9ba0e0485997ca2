"""Read the files the deck is built from; a missing one becomes a ``Missing`` that slides show as such."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Missing:
    """Stands for a source file (or a field in it) that is not there: rendered as "source missing: <file>"."""

    file: str

    def __str__(self) -> str:
        return f"source missing: {self.file}"

    def __bool__(self) -> bool:
        return False


def _display(path: Path) -> str:
    """``path`` relative to the repository when inside it (what a reader of the slide can find)."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def read_json(path: Path):
    """The parsed file, or ``Missing`` when it does not exist."""
    if not path.is_file():
        return Missing(_display(path))
    return json.loads(path.read_text(encoding="utf-8"))


def existing(path: Path):
    """``path`` if the file exists, else ``Missing``."""
    return path if path.is_file() else Missing(_display(path))


def field(data, dotted: str, file: str = ""):
    """``data["a"]["b"][0]`` for ``"a.b.0"``; ``Missing`` (naming the file and field) if any step is absent."""
    if isinstance(data, Missing):
        return data
    value = data
    for key in dotted.split("."):
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError):
            return Missing(f"{file} {dotted}".strip())
    return Missing(f"{file} {dotted}".strip()) if value is None else value


@dataclass
class Sources:
    """Everything the deck reads, each item loaded or ``Missing``."""

    run: Path
    summary: object
    explained_variance: object
    pca_dir: object
    bench: object
    bench_plot: object
    cluster: object
    prices: object
    architecture: Path
    app_before: object = None  # the real-world check of the studio-only model (make app-eval)
    app_after: object = None  # ... of the app's model
    app_open: object = None  # ... of the model trained without some fruits (unknown answers)
    app_metrics: object = None  # the app's model's own metrics.json
    app_confusion: object = None

    @classmethod
    def load(cls, run: Path, repo: Path = REPO_ROOT, architecture: Path | None = None) -> Sources:
        pca = run / "pca"
        return cls(
            run=run,
            summary=read_json(run / "summary.json"),
            explained_variance=existing(run / "explained_variance.png"),
            pca_dir=pca if pca.is_dir() else Missing(_display(pca) + "/"),
            bench=read_json(repo / "bench" / "results.json"),
            bench_plot=existing(repo / "bench" / "benchmark.png"),
            cluster=read_json(repo / "emr" / "cluster.json"),
            prices=read_json(repo / "emr" / "prices.json"),
            architecture=architecture or repo / "docs" / "architecture.png",
            app_before=read_json(repo / "docs" / "app-eval" / "studio-only" / "report.json"),
            app_after=read_json(repo / "docs" / "app-eval" / "app" / "report.json"),
            app_open=read_json(repo / "docs" / "app-eval" / "open-set" / "report.json"),
            app_metrics=read_json(repo / "docs" / "app-eval" / "app" / "metrics.json"),
            app_confusion=existing(repo / "docs" / "app-eval" / "app" / "confusion_matrix.png"),
        )


def read_pca(pca_dir, components: int = 2):
    """The run's ``pca/`` parquet as pandas (``path, label, pc1..``), read with pyarrow: no Spark needed."""
    import pandas as pd

    if isinstance(pca_dir, Missing):
        return pca_dir
    files = sorted(p for p in Path(pca_dir).rglob("*.parquet") if not p.name.startswith(("_", ".")))
    if not files:
        return Missing(_display(Path(pca_dir)) + "/*.parquet")
    frame = pd.concat([pd.read_parquet(p, columns=["path", "label", "pca"]) for p in files], ignore_index=True)
    for index in range(components):
        frame[f"pc{index + 1}"] = frame["pca"].map(lambda v, i=index: float(v[i]))
    return frame.drop(columns="pca").sort_values("path", ignore_index=True)


def sample_pictures(input_path, total: int = 16, max_labels: int = 8) -> object:
    """``(label, bytes)`` of about ``total`` images (first by name), as many from each label folder of a
    local input, for a grid."""
    if isinstance(input_path, Missing):
        return input_path
    text = str(input_path)
    local = urlsplit(text).path if text.startswith("file:") else text
    root = Path(local)
    if "://" in local or not root.is_dir():
        return Missing(f"{input_path} (the run's input, not readable here)")
    pictures = []
    folders = sorted(p for p in root.iterdir() if p.is_dir())[:max_labels]
    per_label = max(1, total // max(len(folders), 1))
    for folder in folders:
        names = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:per_label]
        pictures += [(folder.name, p.read_bytes()) for p in names]
    return pictures or Missing(f"{input_path} (no image in its label folders)")


def feature_dimension(run: Path):
    """Length of the feature vectors in the run's ``features/`` (one row read), or ``Missing``."""
    import pyarrow.parquet as pq

    files = sorted(p for p in (run / "features").rglob("*.parquet") if not p.name.startswith(("_", ".")))
    for path in files:
        parquet = pq.ParquetFile(path)
        if parquet.metadata.num_rows:
            first = parquet.read_row_group(0, columns=["features"]).column("features")[0]
            return len(first.as_py())
    return Missing(_display(run / "features") + "/*.parquet")


def first_missing(*values):
    """The first ``Missing`` among ``values``, else None (compare with ``is None``: a ``Missing`` is falsy)."""
    return next((v for v in values if isinstance(v, Missing)), None)
