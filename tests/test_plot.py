"""fruits_lib.support.plot: the figures carry what a reader needs (threshold, k, labels)."""

import numpy as np
from helpers.images import picture

from fruits_lib.support import plot


def test_explained_variance_marks_threshold_and_k():
    ratios = np.array([0.5, 0.25, 0.125, 0.0625] + [0.0625 / 20] * 20)
    figure = plot.explained_variance(ratios, k=3, threshold=0.85)
    left, right = figure.axes
    legend = [text.get_text() for text in right.get_legend().get_texts()]
    assert "threshold 85%" in legend and any(label.startswith("k = 3") for label in legend)
    assert left.get_xlabel() == "principal component" and "cumulative" in right.get_ylabel()
    cumulative = right.get_lines()[0].get_ydata()
    assert np.allclose(cumulative[:3], [0.5, 0.75, 0.875])
    assert plot.to_png(figure)[:4] == b"\x89PNG"


def test_image_grid_titles_each_image_with_its_label():
    figure = plot.image_grid([("apple", picture()), ("kiwi", picture(colour=(90, 160, 60)))], columns=3)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["apple", "kiwi"]


def test_scatter_has_one_series_per_label():
    points = np.random.default_rng(0).normal(size=(30, 2))
    labels = ["apple"] * 10 + ["lemon"] * 10 + ["kiwi"] * 10
    figure = plot.scatter_2d(points, labels)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["apple", "kiwi", "lemon"]
