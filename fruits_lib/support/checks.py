"""Checks of a run's arguments that need neither Spark nor the chain's heavy imports.

The command line calls :func:`check_run` before it starts the JVM, so a typo costs a one-line
error at once; :func:`fruits_lib.pipeline.run` calls it too, for library users.
"""

from __future__ import annotations

import os

from fruits_lib.load import normalize_path
from fruits_lib.support.errors import FruitsError, InputError, OutputError
from fruits_lib.support.weights import FEATURE_DIM, check_source


def check_run(input_path: str, output_path: str, *, weights: str = "imagenet", mode: str = "full",
              pca_k: int | None = None, pca_variance: float = 0.95, batch_size: int = 32,
              image_size: int = 224) -> tuple:
    """``(source, target)``, validated; local folders are checked here, remote ones once Spark is up.

    ``weights`` must name a source or an existing file (it is read later, by the featurizer).
    """
    check_source(weights)
    if mode not in ("full", "incremental"):
        raise FruitsError(f"--mode must be full or incremental, not {mode!r}")
    if pca_k is not None and not 1 <= pca_k <= FEATURE_DIM:
        raise FruitsError(f"--pca-k must be between 1 and {FEATURE_DIM} (the features per image), not {pca_k}")
    if not 0.0 < pca_variance <= 1.0:
        raise FruitsError(f"--pca-variance must be in (0, 1], not {pca_variance}")
    if batch_size < 1:
        raise FruitsError(f"--batch-size must be positive, not {batch_size}")
    if not 32 <= image_size <= 1024:
        raise FruitsError(f"--image-size must be between 32 and 1024 pixels, not {image_size}")
    source, target = normalize_path(input_path), normalize_path(output_path)
    if target.rstrip("/") == source.rstrip("/") or target.startswith(source.rstrip("/") + "/"):
        raise OutputError(f"the output {target} must not be inside the input {source} "
                          "(its PNG would be read as an image next time)")
    if "://" not in source and not os.path.isdir(source):
        raise InputError(f"input folder not found: {source}")
    if "://" not in target:
        check_writable(target)
    return source, target


def check_writable(target: str) -> None:
    """Refuse a local ``target`` whose nearest existing folder cannot be written (missing folders are made later)."""
    existing = target
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {target}: {existing} is not a writable folder")
