"""The deck's own figures, drawn from the run's files with fruits_lib.support.plot: PCA scatter, samples."""

from __future__ import annotations

from pathlib import Path

from fruits_lib.support import plot
from slides.sources import Missing


def _save(figure, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(plot.to_png(figure, dpi=dpi))
    plot.plt.close(figure)
    return path


def pca_scatter(pca, summary, path: Path, dpi: int = 110):
    """Each image on the first two components, coloured by label; ``Missing`` passes through."""
    if isinstance(pca, Missing):
        return pca
    title = f"{len(pca)} images on the first two principal components"
    cumulative = summary.get("cumulative") if isinstance(summary, dict) else None
    if cumulative and len(cumulative) >= 2:
        title += f" ({cumulative[1]:.1%} of the variance)"
    return _save(plot.scatter_2d(pca[["pc1", "pc2"]], pca["label"], title=title), path, dpi)


def sample_grid(pictures, path: Path, columns: int = 4, dpi: int = 90):
    """A grid of sample photos titled with their labels; ``Missing`` passes through."""
    if isinstance(pictures, Missing):
        return pictures
    return _save(plot.image_grid(pictures, columns=columns), path, dpi)
