"""What the benchmark's peers share: the photo list, the run report, the output table, its comparison.

Every peer (``bench/peer_ray.py``, ``bench/peer_daft.py``) reads the same photos, runs the same
TFLite file (``--model``) and writes the same output: parquet of ``path`` (``file://`` stripped) and
``features`` (``list<float>``, 1280 values). Imports only numpy and pyarrow, so the tests can check it
without Ray or Daft installed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_photos(folder) -> list:
    """The photos under ``folder`` (``<label>/<file>``), sorted, as absolute paths."""
    root = Path(folder).resolve()
    return sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def plain_path(path: str) -> str:
    """A local path as every engine names it: ``file://`` (Daft's, Spark's) removed."""
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def features_table(paths, features):
    """The peers' common output: ``path`` and ``features`` as ``list<float>``."""
    import pyarrow as pa

    matrix = np.asarray(features, dtype=np.float32).reshape(len(paths), -1)
    offsets = np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32)
    column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel(), pa.float32()))
    return pa.table({"path": pa.array([plain_path(p) for p in paths], pa.string()), "features": column})


def read_features(path) -> dict:
    """``{path: float32 vector}`` of a parquet file or folder written by any engine (or the chain)."""
    import pyarrow.parquet as pq

    table = pq.read_table(str(path), columns=["path", "features"])
    paths = [plain_path(p) for p in table.column("path").to_pylist()]
    vectors = table.column("features").combine_chunks()
    matrix = np.asarray(vectors.flatten(), dtype=np.float32).reshape(len(paths), -1)
    return dict(zip(paths, matrix))


def compare(reference: dict, other: dict) -> dict:
    """How close ``other``'s features are to ``reference``'s on the paths both hold (cosine, max |diff|)."""
    common = sorted(set(reference) & set(other))
    if not common:
        return {"common": 0, "only_reference": len(reference), "only_other": len(other)}
    a = np.stack([reference[p] for p in common]).astype(np.float64)
    b = np.stack([other[p] for p in common]).astype(np.float64)
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return {"common": len(common), "only_reference": len(set(reference) - set(other)),
            "only_other": len(set(other) - set(reference)), "cosine_min": round(float(cosine.min()), 6),
            "cosine_mean": round(float(cosine.mean()), 6), "max_abs_diff": round(float(np.abs(a - b).max()), 6)}


def peer_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line every peer takes."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--input", required=True, help="folder of <label>/<photo> files")
    parser.add_argument("--model", required=True, help="the TFLite file the chain runs (same bytes)")
    parser.add_argument("--output", required=True, help="parquet output (path, features)")
    parser.add_argument("--json-out", required=True, help="where the run's own timings go")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="inference actors/instances (0: every core)")
    return parser


class Clock:
    """Seconds since the process's start for each named step: ``clock("import")`` marks its end."""

    def __init__(self):
        self.started = time.perf_counter()
        self.marks, self._last = {}, self.started

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.marks[step] = round(now - self._last, 3)
        self._last = now

    def report(self, path, images: int, **extra) -> dict:
        total = time.perf_counter() - self.started
        record = {"images": images, "seconds": {**self.marks, "total": round(total, 3)}, **extra}
        Path(path).write_text(json.dumps(record))
        return record
