"""Figures a person looks at: explained variance, a grid of images, a 2-D PCA scatter."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt  # headless machines fall back to Agg by themselves
import numpy as np


def explained_variance(ratios, k: int, threshold: float | None = None, show: int | None = None):
    """Bars of each component's share of variance and the cumulative curve, with k (and the threshold)."""
    ratios = np.asarray(ratios, dtype=float)
    show = min(len(ratios), show or max(2 * k, 20))
    cumulative = np.cumsum(ratios)[:show]
    components = np.arange(1, show + 1)
    fig, left = plt.subplots(figsize=(9, 5))
    left.bar(components, ratios[:show], color="#9ecae1", label="each component")
    left.set_xlabel("principal component")
    left.set_ylabel("share of variance (each component)")
    right = left.twinx()
    right.plot(components, cumulative, color="#d6604d", marker=".", label="cumulative")
    right.set_ylabel("cumulative share of variance")
    right.set_ylim(0, 1.02)
    if threshold is not None:
        right.axhline(threshold, color="grey", linestyle="--", label=f"threshold {threshold:.0%}")
    right.axvline(k, color="black", linestyle=":", label=f"k = {k} ({np.cumsum(ratios)[k - 1]:.1%})")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    right.legend(handles, labels, loc="center right")
    left.set_title(f"PCA explained variance: {k} of {len(ratios)} components kept")
    fig.tight_layout()
    return fig


def image_grid(images, columns: int = 6, size: int = 100):
    """Images (``(label, bytes)`` pairs) in a grid, each titled with its label."""
    from PIL import Image

    images = list(images)
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, content) in zip(axes.flat, images):
        picture = Image.open(io.BytesIO(content)).convert("RGB")
        picture.thumbnail((size, size))
        ax.imshow(picture)
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    return fig


def scatter_2d(points, labels, title: str = "first two principal components"):
    """Each image at its first two PCA coordinates, coloured by label."""
    points = np.asarray(points, dtype=float)
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(7, 6))
    colours = plt.get_cmap("tab10" if len(set(labels)) <= 10 else "tab20")
    for index, label in enumerate(sorted(set(labels))):
        mask = labels == label
        ax.scatter(points[mask, 0], points[mask, 1], s=14, alpha=0.75, color=colours(index), label=label)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    ax.legend(markerscale=2, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def to_png(fig, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (to write anywhere, local or s3://)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
