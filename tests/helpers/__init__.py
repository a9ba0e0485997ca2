"""Shared test helpers: the repository's paths, the real photos (or a skip, a failure under CI), the CLI as a process.

Image files made on the fly are in :mod:`helpers.images`; the classifier's fixtures in :mod:`helpers.classifier`.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data_sample"
SAMPLE_LABELS = tuple(sorted(p.name for p in SAMPLE.iterdir() if p.is_dir()))  # its label folders
REAL_PHOTOS = ROOT.parent / "shared" / "data" / "fruits360-subset"
REAL_PHOTOS_33 = ROOT.parent / "shared" / "data" / "fruits360-33"  # 33 labels, nine of them apple varieties


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_real_photos(folder: Path = REAL_PHOTOS) -> Path:
    """The real photos' ``Training`` folder; when absent: skip, or fail under CI (a missing folder is no pass)."""
    training = folder / "Training"
    if not training.is_dir():
        message = f"real photos not found at {folder} (../shared/data/{folder.name} beside the repo)"
        if in_ci():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return training


def cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run ``python -m fruits_lib`` like a user, in a process of its own; returns the completed process."""
    environment = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "fruits_lib", *args], capture_output=True, text=True,
                          cwd=ROOT, env=environment, timeout=timeout)


def persisted_rdds(spark) -> set:
    """Ids of the session's persisted RDDs (no public PySpark call lists them; other tests may hold some)."""
    return set(spark.sparkContext._jsc.getPersistentRDDs().keySet())
