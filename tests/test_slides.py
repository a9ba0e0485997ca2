"""The deck (slides/): built from a run made in this test session, then opened with python-pptx.

Checks what a reader relies on: 12-17 slides, each with a title, the figures embedded, the numbers on
the result slides equal to the run's summary.json, and a missing source shown, not invented.
"""

from __future__ import annotations

import json
import os
import shutil

import pptx
import pytest
from helpers import ROOT
from pptx.enum.shapes import MSO_SHAPE_TYPE

from slides import __main__ as cli
from slides import deck
from slides.sources import Sources


@pytest.fixture(scope="module")
def built(sample_run, tmp_path_factory):
    """``(deck, summary)``: the deck written by ``python -m slides`` (diagram included) for the sample run.

    The run is conftest's ``sample_run`` (data_sample/ through ``fruits run``, offline weights, as ``make run``).
    """
    run = sample_run[0]
    if shutil.which("dot") is None and os.environ.get("CI") != "true":
        pytest.skip("Graphviz's dot is not installed (apt-get install -y graphviz)")
    folder = tmp_path_factory.mktemp("deck")
    out = folder / "presentation.pptx"
    cli.main(["--run", str(run), "--out", str(out), "--architecture", str(folder / "architecture.png")])
    assert (folder / "architecture.png").stat().st_size > 10_000
    summary = json.loads((run / "summary.json").read_text())
    return pptx.Presentation(str(out)), summary


def by_title(presentation, start: str):
    slides = [s for s in presentation.slides if s.shapes.title is not None
              and s.shapes.title.text.startswith(start)]
    assert len(slides) == 1, f"one slide titled {start!r} expected"
    return slides[0]


def all_text(slide) -> str:
    parts = []
    for shape in slide.shapes:
        if shape.has_text_frame:
            parts.append(shape.text_frame.text)
        if shape.has_table:
            parts += [cell.text for row in shape.table.rows for cell in row.cells]
    return "\n".join(parts)


def table_rows(slide) -> list[list[str]]:
    tables = [s for s in slide.shapes if s.has_table]
    assert tables, "a table expected"
    return [[cell.text for cell in row.cells] for row in tables[0].table.rows]


def test_slide_count_and_titles(built):
    presentation, _ = built
    assert 12 <= len(presentation.slides) <= 17
    assert len(presentation.slides) == len(deck.SLIDES)
    for number, slide in enumerate(presentation.slides, 1):
        assert slide.shapes.title is not None and slide.shapes.title.text.strip(), f"slide {number} has no title"
        assert "source missing" not in all_text(slide), f"slide {number}: a source is missing in a full build"


def test_figures_are_embedded(built):
    presentation, _ = built
    pictures = {slide.shapes.title.text: [s for s in slide.shapes if s.shape_type == MSO_SHAPE_TYPE.PICTURE]
                for slide in presentation.slides}
    for title in ("The dataset", "Architecture", "PCA: how many", "PCA: the photos", "Performance: the bench"):
        found = [p for t, p in pictures.items() if t.startswith(title)]
        assert found and found[0], f"no picture on the slide {title!r}"
        assert all(len(p.image.blob) > 5_000 for p in found[0])


def test_result_numbers_equal_the_summary(built):
    presentation, summary = built
    dataset = table_rows(by_title(presentation, "The dataset"))
    counts = {row[0]: row[1] for row in dataset[1:]}
    for label, count in summary["labels"].items():
        assert counts[label] == f"{count:,}"
    assert counts["total featurized"] == f"{summary['images_ok']:,}"
    assert counts["failed (listed in errors/)"] == f"{summary['images_failed']:,}"

    pca = all_text(by_title(presentation, "PCA: how many"))
    assert f"k = {summary['k']} components keep {summary['cumulative'][-1]:.1%} of the variance" in pca
    assert f"fitted on {summary['pca_fitted_on']:,} images" in pca
    assert f"{summary['explained_variance_ratio'][0]:.1%}" in pca

    chain = table_rows(by_title(presentation, "The chain"))
    seconds = dict(zip(chain[0][1:], chain[1][1:]))
    assert seconds == {stage: f"{value:.1f}" for stage, value in summary["seconds"].items()}
    assert f"{summary['images_per_second']} images/s" in all_text(by_title(presentation, "The chain"))

    scatter = all_text(by_title(presentation, "PCA: the photos"))
    assert "pca/ parquet" in scatter


def test_cost_and_benchmark_figures_equal_their_files(built):
    """The EMR cost table and the benchmark's ratios are the files' numbers, recomputed here independently."""
    presentation, _ = built
    cluster = json.loads((ROOT / "emr" / "cluster.json").read_text())
    prices = json.loads((ROOT / "emr" / "prices.json").read_text())["instances"]
    per_hour = sum(g["InstanceCount"] * (prices[g["InstanceType"]]["ec2"] + prices[g["InstanceType"]]["emr"])
                   for g in cluster["Instances"]["InstanceGroups"])
    emr = table_rows(by_title(presentation, "Amazon EMR in the EU"))
    assert emr[-1][0] == "cluster, per demo hour" and emr[-1][-1] == f"{per_hour:.3f}"
    assert f"${per_hour:.3f}" in all_text(by_title(presentation, "The demo"))

    ratios = json.loads((ROOT / "bench" / "results.json").read_text())["ratios"]
    rows = table_rows(by_title(presentation, "Performance: the bench"))[1:]
    assert [(row[1], row[3]) for row in rows] == [(f"{r['value']:g}", "PASS" if r["pass"] else "FAIL")
                                                  for r in ratios.values()]


def test_cli_refuses_a_missing_run_with_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "deck.pptx")])
    assert stopped.value.code == 2
    assert "run folder not found" in capsys.readouterr().err


def test_a_missing_source_is_shown_not_invented(sample_run, tmp_path):
    """A run without its plot and a repository without bench/ and emr/: the deck says so on the slides."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(sample_run[0] / "summary.json", run / "summary.json")
    sources = Sources.load(run, tmp_path / "empty-repo", architecture=tmp_path / "absent.png")
    out = deck.build(sources, tmp_path / "deck.pptx")
    presentation = pptx.Presentation(str(out))
    assert len(presentation.slides) == len(deck.SLIDES)
    text = {slide.shapes.title.text: all_text(slide) for slide in presentation.slides}
    pca_title = next(t for t in text if t.startswith("PCA: how many"))
    assert f"source missing: {run / 'explained_variance.png'}" in text[pca_title]
    assert "source missing: " in text[next(t for t in text if t.startswith("PCA: the photos"))]
    emr = text["Amazon EMR in the EU"]
    assert "source missing: " in emr and "emr/cluster.json" in emr
    bench = text[next(t for t in text if t.startswith("Performance: the bench"))]
    assert "source missing: " in bench and "bench/results.json" in bench
    # the summary is there: its numbers still are
    assert f"k = {json.loads((run / 'summary.json').read_text())['k']} components" in text[pca_title]
