"""The deck: the 17 slides in order (:mod:`slides.story`, :mod:`slides.results`, :mod:`slides.app`), built into one .pptx."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pptx import Presentation

from slides.app import app_slide
from slides.draw import HEIGHT, WIDTH
from slides.results import (
    benchmark_slide,
    closing_slide,
    critique_slide,
    demo_slide,
    emr_slide,
    next_steps_slide,
    projection_slide,
    scaling_slide,
)
from slides.sources import Sources
from slides.story import (
    architecture_slide,
    broadcast_slide,
    chain_slide,
    dataset_slide,
    pca_slide,
    problem_slide,
    scatter_slide,
    title_slide,
)

SLIDES = (title_slide, problem_slide, dataset_slide, architecture_slide, chain_slide, broadcast_slide,
          pca_slide, scatter_slide, app_slide, benchmark_slide, scaling_slide, emr_slide, demo_slide, critique_slide,
          projection_slide, next_steps_slide, closing_slide)
NEEDS_WORK_DIR = {dataset_slide, scatter_slide}


def build(src: Sources, out: Path) -> Path:
    """Write the deck for ``src`` to ``out`` (figures made on the way live in a temporary folder)."""
    deck = Presentation()
    deck.slide_width, deck.slide_height = WIDTH, HEIGHT
    with tempfile.TemporaryDirectory(prefix="fruits-slides-") as work:
        for make in SLIDES:
            if make in NEEDS_WORK_DIR:
                make(deck, src, Path(work))
            else:
                make(deck, src)
        out.parent.mkdir(parents=True, exist_ok=True)
        deck.save(str(out))
    return out
