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


def confusion_matrix(matrix, labels, title: str = "confusion matrix (hold-out)"):
    """Counts of true (rows) vs predicted (columns) labels, the diagonal being the right answers."""
    matrix = np.asarray(matrix, dtype=int)
    side = max(4.0, 0.8 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    shown = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    limit = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        ax.text(column, row, str(count), ha="center", va="center",
                color="white" if count > limit else ("#b2182b" if row != column and count else "black"))
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def prediction_grid(images, columns: int = 6, size: int = 100):
    """Images (``(true label, predicted label, bytes)``) titled ``predicted (true)``; mistakes framed in red,
    abstentions (predicted ``None`` or ``"unknown"``) in orange."""
    from PIL import Image

    images = list(images)
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (true, predicted, content) in zip(axes.flat, images):
        picture = Image.open(io.BytesIO(content)).convert("RGB")
        picture.thumbnail((size, size))
        ax.imshow(picture)
        predicted = "unknown" if predicted is None else predicted
        wrong = true != predicted
        colour = "#e08214" if predicted == "unknown" else "#b2182b"
        ax.set_title(f"{predicted}\n(true: {true})" if wrong else predicted, fontsize=9,
                     color=colour if wrong else "black", fontweight="bold" if wrong else "normal")
        if wrong:  # a frame: axis("off") hid the spines, so draw them back
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
    fig.tight_layout()
    return fig
