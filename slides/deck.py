"""The slides themselves (python-pptx): one function per slide, every number read from ``Sources``."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from PIL import Image
from pptx import Presentation
from pptx.dml.color import RGBColor
from pptx.enum.shapes import MSO_SHAPE
from pptx.enum.text import MSO_ANCHOR, MSO_AUTO_SIZE, PP_ALIGN
from pptx.util import Emu, Inches, Pt

from slides import facts, figures
from slides.sources import (
    Missing,
    Sources,
    feature_dimension,
    field,
    first_missing,
    read_pca,
    sample_pictures,
)

WIDTH, HEIGHT = Inches(13.333), Inches(7.5)  # 16:9
MARGIN = Inches(0.5)
BODY_TOP = 1.35  # inches, where a slide's body starts below the title
DARK = RGBColor(0x1F, 0x2A, 0x37)
ACCENT = RGBColor(0xD6, 0x60, 0x4D)
GREY = RGBColor(0x6B, 0x72, 0x80)
RED = RGBColor(0xC0, 0x00, 0x00)
LIGHT = RGBColor(0xF3, 0xF4, 0xF6)
TITLE_ONLY, TITLE_SLIDE = 5, 0


# ----------------------------------------------------------------------------- formatting
def fmt(value, spec: str = "") -> str:
    """``value`` formatted with ``spec``; a ``Missing`` value prints as "source missing: <file>"."""
    return str(value) if isinstance(value, Missing) else format(value, spec)


# ----------------------------------------------------------------------------- drawing helpers
class Box:
    """A rectangle in inches, so that layouts read as numbers on a 13.33 x 7.5 grid."""

    def __init__(self, left: float, top: float, width: float, height: float):
        self.left, self.top, self.width, self.height = left, top, width, height

    def emu(self):
        return Inches(self.left), Inches(self.top), Inches(self.width), Inches(self.height)


def new_slide(deck, title: str):
    """A slide with its title in the title placeholder (so outlines and screen readers see it)."""
    slide = deck.slides.add_slide(deck.slide_layouts[TITLE_ONLY])
    shape = slide.shapes.title
    shape.left, shape.top, shape.width, shape.height = MARGIN, Inches(0.3), WIDTH - 2 * MARGIN, Inches(0.9)
    shape.text = title
    paragraph = shape.text_frame.paragraphs[0]
    paragraph.alignment = PP_ALIGN.LEFT
    paragraph.runs[0].font.size = Pt(30)
    paragraph.runs[0].font.bold = True
    paragraph.runs[0].font.color.rgb = DARK
    line = slide.shapes.add_shape(MSO_SHAPE.RECTANGLE, MARGIN, Inches(1.18), Inches(1.2), Inches(0.06))
    line.fill.solid()
    line.fill.fore_color.rgb = ACCENT
    line.line.fill.background()
    return slide


def text(slide, box: Box, lines, size: int = 18, color=DARK, bold: bool = False):
    """Paragraphs in a box; a line is a string, ``(string, level)`` for a sub-bullet, or a ``Missing``."""
    shape = slide.shapes.add_textbox(*box.emu())
    frame = shape.text_frame
    frame.word_wrap = True
    frame.auto_size = MSO_AUTO_SIZE.NONE  # the box stays where the layout put it
    frame.vertical_anchor = MSO_ANCHOR.TOP
    for index, line in enumerate(lines):
        level = 0
        if isinstance(line, tuple):
            line, level = line
        paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
        paragraph.level = level
        paragraph.space_after = Pt(6)
        run = paragraph.add_run()
        run.text = str(line)
        run.font.size = Pt(size - 2 * level)
        run.font.bold = bold
        run.font.color.rgb = RED if isinstance(line, Missing) or "source missing:" in str(line) else color
    return shape


def bullets(slide, box: Box, lines, size: int = 18):
    """Like ``text`` with a bullet sign before each top-level line."""
    marked = [(f"• {line}" if not isinstance(line, tuple) else (f"– {line[0]}", line[1])) for line in lines]
    return text(slide, box, marked, size=size)


def missing_notice(slide, box: Box, missing: Missing):
    """A visible red frame saying which source file is missing, in place of a figure."""
    shape = slide.shapes.add_shape(MSO_SHAPE.RECTANGLE, *box.emu())
    shape.fill.solid()
    shape.fill.fore_color.rgb = LIGHT
    shape.line.color.rgb = RED
    frame = shape.text_frame
    frame.word_wrap = True
    run = frame.paragraphs[0].add_run()
    run.text = str(missing)
    run.font.size = Pt(18)
    run.font.bold = True
    run.font.color.rgb = RED
    return shape


def picture(slide, path, box: Box):
    """The image fitted (aspect kept) and centred in ``box``; a missing file gets the red notice instead."""
    if isinstance(path, Missing) or not Path(path).is_file():
        return missing_notice(slide, box, path if isinstance(path, Missing) else Missing(str(path)))
    with Image.open(path) as image:
        ratio = image.width / image.height
    width, height = box.width, box.width / ratio
    if height > box.height:
        width, height = box.height * ratio, box.height
    left = box.left + (box.width - width) / 2
    top = box.top + (box.height - height) / 2
    return slide.shapes.add_picture(str(path), Inches(left), Inches(top), Inches(width), Inches(height))


def table(slide, box: Box, rows, widths=None, size: int = 14, header: bool = True):
    """A table of strings; the first row is the header. Row height follows the font size."""
    shape = slide.shapes.add_table(len(rows), len(rows[0]), Inches(box.left), Inches(box.top),
                                   Inches(box.width), Emu(int(Pt(size * 2.0)) * len(rows)))
    grid = shape.table
    grid.first_row = header
    if widths:
        for column, width in zip(grid.columns, widths):
            column.width = Inches(width)
    for r, row in enumerate(rows):
        grid.rows[r].height = Emu(int(Pt(size * 2.0)))
        for c, value in enumerate(row):
            cell = grid.cell(r, c)
            cell.margin_top = cell.margin_bottom = Pt(2)
            cell.text = str(value)
            run = cell.text_frame.paragraphs[0].runs[0] if cell.text_frame.paragraphs[0].runs else None
            if run is not None:
                run.font.size = Pt(size)
                if "source missing:" in str(value):
                    run.font.color.rgb = RED
    return shape


def footer(slide, sources: str):
    """Where the slide's figures come from, in small grey type."""
    text(slide, Box(0.5, 7.0, 12.3, 0.4), [f"figures from: {sources}"], size=11, color=GREY)


def arrow(slide, left: float, top: float, width: float = 0.5):
    shape = slide.shapes.add_shape(MSO_SHAPE.RIGHT_ARROW, Inches(left), Inches(top), Inches(width), Inches(0.4))
    shape.fill.solid()
    shape.fill.fore_color.rgb = ACCENT
    shape.line.fill.background()
    return shape


def card(slide, box: Box, heading: str, lines, size: int = 14):
    """A light rectangle with a bold heading and short lines: one step of a flow."""
    shape = slide.shapes.add_shape(MSO_SHAPE.ROUNDED_RECTANGLE, *box.emu())
    shape.adjustments[0] = 0.06
    shape.fill.solid()
    shape.fill.fore_color.rgb = LIGHT
    shape.line.color.rgb = GREY
    frame = shape.text_frame
    frame.word_wrap = True
    frame.vertical_anchor = MSO_ANCHOR.TOP
    frame.margin_left = frame.margin_right = Inches(0.12)
    first = frame.paragraphs[0]
    first.alignment = PP_ALIGN.LEFT
    run = first.add_run()
    run.text = heading
    run.font.size, run.font.bold, run.font.color.rgb = Pt(size + 3), True, DARK
    for line in lines:
        paragraph = frame.add_paragraph()
        paragraph.alignment = PP_ALIGN.LEFT
        paragraph.space_before = Pt(4)
        run = paragraph.add_run()
        run.text = str(line)
        run.font.size = Pt(size)
        run.font.color.rgb = RED if "source missing:" in str(line) else DARK
    return shape


# ----------------------------------------------------------------------------- the slides
def title_slide(deck, src: Sources):
    s = src.summary
    slide = deck.slides.add_slide(deck.slide_layouts[TITLE_SLIDE])
    slide.shapes.title.text = "Fruits!"
    slide.shapes.title.text_frame.paragraphs[0].runs[0].font.bold = True
    subtitle = slide.placeholders[1]
    subtitle.text = "Fruit photos to compact feature vectors, on Spark: from a laptop to Amazon EMR in the EU"
    for shape in (slide.shapes.title, subtitle):
        shape.left, shape.width = MARGIN, WIDTH - 2 * MARGIN
    slide.shapes.title.top, slide.shapes.title.height = Inches(1.6), Inches(1.5)
    subtitle.top, subtitle.height = Inches(3.2), Inches(1.2)
    text(slide, Box(0.5, 4.8, 12.3, 1.4), [
        f"Run {fmt(field(s, 'run_id', 'summary.json'))}: {fmt(field(s, 'images_in', 'summary.json'), ',')} images "
        f"from {fmt(field(s, 'input', 'summary.json'))}, started {fmt(field(s, 'started_at', 'summary.json'))}",
        "Generated by `python -m slides`: every figure is read from the run's summary.json, "
        "bench/results.json and emr/*.json.",
    ], size=16, color=GREY)
    return slide


def problem_slide(deck, src: Sources):
    slide = new_slide(deck, "The problem: recognise a fruit from a photo")
    bullets(slide, Box(0.5, BODY_TOP, 12.3, 5.4), [
        "Fruits!, a young agritech company, builds a mobile app: photograph a fruit, learn what it is.",
        "First brick: turn every photo into a compact feature vector a recognition model can learn from.",
        "Why big data: the photo collection grows with every user; featurizing it must scale out, not up.",
        ("Same code on a laptop (local[*], data_sample/) and on a cluster (Amazon EMR, s3://).", 1),
        ("Spark distributes the images; the model goes once to each machine.", 1),
        "Constraints: personal data stay in the EU (GDPR); the cluster costs only while it works.",
        "Chain: Spark binaryFile -> MobileNetV2 features (weights broadcast) -> Spark ML PCA -> parquet.",
    ], size=20)
    return slide


def dataset_slide(deck, src: Sources, work: Path):
    s = src.summary
    slide = new_slide(deck, "The dataset: Fruits-360")
    pictures = sample_pictures(field(s, "input", "summary.json"))
    size = Missing("sample photos")
    if not isinstance(pictures, Missing):
        with Image.open(io.BytesIO(pictures[0][1])) as first:
            size = f"{first.width} x {first.height}"
    labels = field(s, "labels", "summary.json")
    rows = [["label", "images featurized"]]
    if isinstance(labels, Missing):
        rows.append([str(labels), ""])
    else:
        rows += [[label, f"{count:,}"] for label, count in labels.items()]
    rows += [["total featurized", fmt(field(s, "images_ok", "summary.json"), ",")],
             ["failed (listed in errors/)", fmt(field(s, "images_failed", "summary.json"), ",")],
             ["image files read", fmt(field(s, "images_in", "summary.json"), ",")]]
    text(slide, Box(0.5, BODY_TOP, 5.6, 2.2), [
        "Fruits-360 by Horea Mureșan and Mihai Oltean, licence CC BY-SA 4.0 (Kaggle: moltean/fruits).",
        "One fruit per photo on a white background; the label is the parent folder.",
        f"This run: {fmt(field(s, 'input', 'summary.json'))} (photos of {fmt(size)} px).",
    ], size=15)
    font = 14 if len(rows) <= 9 else 10
    table(slide, Box(0.5, 3.65, 5.6, 3.2), rows, widths=[3.6, 2.0], size=font)
    grid = figures.sample_grid(pictures, work / "sample_grid.png")
    picture(slide, grid, Box(6.4, BODY_TOP, 6.5, 5.5))
    footer(slide, f"summary.json (labels, images_ok/failed/in); photos from {fmt(field(s, 'input', 'summary.json'))}")
    return slide


def architecture_slide(deck, src: Sources):
    slide = new_slide(deck, "Architecture: S3 and EMR in one EU region")
    picture(slide, src.architecture if src.architecture.is_file() else Missing(str(src.architecture)),
            Box(0.2, BODY_TOP, 9.4, 5.6))
    bullets(slide, Box(9.7, BODY_TOP + 0.2, 3.4, 5.4), [
        "Your laptop: the launcher (boto3) and a browser; no public port, JupyterHub through SSM.",
        "S3: photos in, results out; encrypted, private, in the same EU region.",
        "EMR: the driver on the primary node builds the model and broadcasts it (orange) to the executors "
        "of the core nodes.",
        "IAM roles: the service role for EMR, an instance profile for the nodes.",
    ], size=14)
    footer(slide, "docs/architecture.png, drawn by slides/architecture.py from emr/cluster.json and emr/prices.json")
    return slide


def chain_slide(deck, src: Sources):
    s = src.summary
    slide = new_slide(deck, "The chain, step by step")
    dimension = feature_dimension(src.run)
    threshold = field(s, "pca_variance_threshold", "summary.json")
    steps = [
        ("1. Load", ["Spark binaryFile lists and reads the photos",
                     f"{fmt(field(s, 'images_in', 'summary.json'), ',')} files; label = parent folder"]),
        ("2. Featurize", [f"MobileNetV2 at {fmt(field(s, 'image_size', 'summary.json'))} px, "
                          f"engine {fmt(field(s, 'engine', 'summary.json'))}",
                          f"batches of {fmt(field(s, 'batch_size', 'summary.json'))}; "
                          f"{fmt(dimension)} floats per image",
                          "model broadcast from the driver"]),
        ("3. Reduce", ["Spark ML StandardScaler + PCA",
                       f"k = {fmt(field(s, 'k', 'summary.json'))}"
                       + ("" if isinstance(threshold, Missing) else f" (smallest k reaching {threshold:.0%})")]),
        ("4. Write", ["parquet features/, pca/, errors/", "model/, explained_variance.png",
                      "summary.json written last"]),
    ]
    for index, (heading, lines) in enumerate(steps):
        left = 0.5 + index * 3.15
        card(slide, Box(left, BODY_TOP + 0.1, 2.7, 2.4), heading, lines, size=13)
        if index < len(steps) - 1:
            arrow(slide, left + 2.72, BODY_TOP + 1.1, 0.4)
    seconds = field(s, "seconds", "summary.json")
    if isinstance(seconds, Missing):
        missing_notice(slide, Box(0.5, 4.2, 6.0, 1.0), seconds)
    else:
        stages = [key for key in seconds if key != "total"]
        rows = [["stage"] + stages + ["total"], ["seconds"] + [f"{seconds[k]:.1f}" for k in stages]
                + [f"{seconds.get('total', sum(seconds[k] for k in stages)):.1f}"]]
        table(slide, Box(0.5, 4.2, 12.3, 0.9), rows, size=14)
    cluster = field(s, "cluster", "summary.json")
    text(slide, Box(0.5, 5.3, 12.3, 1.5), [
        f"Featurize stage: {fmt(field(s, 'images_per_second', 'summary.json'))} images/s on "
        f"{fmt(field(cluster, 'default_parallelism', 'summary.json cluster'))} cores "
        f"(master {fmt(field(cluster, 'master', 'summary.json cluster'))}): this run's own timings, "
        "taken on whatever load the machine had; the benchmark slides give the controlled figures.",
        "Every file ends in features/ or in errors/ with its reason; results are staged, then published.",
    ], size=16)
    footer(slide, "summary.json (seconds, images_per_second, k, cluster); features/ parquet (vector length)")
    return slide


def broadcast_slide(deck, src: Sources):
    s, b = src.summary, src.bench
    slide = new_slide(deck, "The broadcast: built once, sent once, loaded once")
    weights = field(s, "weights", "summary.json")
    megabytes = field(weights, "bytes", "summary.json weights")
    megabytes = megabytes if isinstance(megabytes, Missing) else megabytes / 1e6
    sha = field(weights, "sha256", "summary.json weights")
    cluster = field(s, "cluster", "summary.json")
    columns = [
        ("Driver: builds once", [
            f"resolves the weights ({fmt(field(weights, 'source', 'summary.json weights'))}, "
            f"{fmt(megabytes, '.1f')} MB, sha256 {fmt(sha if isinstance(sha, Missing) else sha[:12])}...)",
            f"builds MobileNetV2, converts it to {fmt(field(s, 'engine', 'summary.json'))}",
            "SparkContext.broadcast(model)"]),
        ("Each executor: receives once", [
            f"this run: {fmt(field(cluster, 'executors', 'summary.json cluster'))} executor(s) on "
            f"{fmt(field(cluster, 'master', 'summary.json cluster'))}",
            "fetches the broadcast blocks once, however many tasks it runs",
            "executors share blocks with each other (torrent broadcast)"]),
        ("Each Python worker: loads once", [
            f"model builds per worker: at most {fmt(field(b, 'all_workers.max_builds_per_worker', 'bench'))} "
            f"({fmt(field(b, 'all_workers.workers', 'bench'))} workers, "
            f"{fmt(field(b, 'all_workers.runs', 'bench'))} benchmark runs)",
            f"LiteRT load {fmt(field(b, 'worker_build.litert.seconds', 'bench'), '.2f')} s vs "
            f"{fmt(field(b, 'worker_build.tf_lite.seconds', 'bench'), '.2f')} s through tf.lite",
            f"peak memory per worker {fmt(field(b, 'all_workers.max_peak_rss_per_worker_gib', 'bench'), '.2f')} GiB"]),
    ]
    for index, (heading, lines) in enumerate(columns):
        left = 0.5 + index * 4.2
        card(slide, Box(left, BODY_TOP + 0.1, 3.7, 4.2), heading, lines, size=15)
        if index < len(columns) - 1:
            arrow(slide, left + 3.72, BODY_TOP + 1.9, 0.45)
    text(slide, Box(0.5, 5.85, 12.3, 1.0), [
        "Like predict_batch_udf: a per-worker cache; spark.python.worker.reuse keeps the loaded model for every "
        "later batch and task.",
    ], size=15)
    footer(slide, "summary.json (weights, cluster); bench/results.json (all_workers, worker_build)")
    return slide


def pca_slide(deck, src: Sources):
    s = src.summary
    slide = new_slide(deck, "PCA: how many components to keep")
    picture(slide, src.explained_variance, Box(0.4, BODY_TOP, 8.2, 5.5))
    k = field(s, "k", "summary.json")
    cumulative = field(s, "cumulative", "summary.json")
    kept = cumulative if isinstance(cumulative, Missing) else cumulative[-1]
    ratios = field(s, "explained_variance_ratio", "summary.json")
    dimension = feature_dimension(src.run)
    threshold = field(s, "pca_variance_threshold", "summary.json")
    lines = [
        f"k = {fmt(k)} components keep {fmt(kept, '.1%')} of the variance",
        f"threshold: {fmt(threshold, '.0%')} (smallest k reaching it)",
        f"fitted on {fmt(field(s, 'pca_fitted_on', 'summary.json'), ',')} images",
        f"first component: {fmt(field(ratios, '0', 'summary.json explained_variance_ratio'), '.1%')} of the variance",
    ]
    if first_missing(dimension, k) is None:
        lines.append(f"{dimension} -> {k} floats per image: {dimension / k:.0f}x smaller")
    bullets(slide, Box(8.8, BODY_TOP + 0.3, 4.1, 5.2), lines, size=16)
    footer(slide, "summary.json (k, cumulative, explained_variance_ratio); the run's explained_variance.png")
    return slide


def scatter_slide(deck, src: Sources, work: Path):
    slide = new_slide(deck, "PCA: the photos on the first two components")
    scatter = figures.pca_scatter(read_pca(src.pca_dir), src.summary, work / "pca_scatter.png")
    picture(slide, scatter, Box(0.4, BODY_TOP, 8.0, 5.55))
    bullets(slide, Box(8.7, BODY_TOP + 0.3, 4.2, 5.2), [
        "Each dot is one photo, read back from the run's pca/ parquet (pandas, no Spark).",
        "Colours are the labels: classes that separate here already separate with 2 numbers.",
        "A classifier trained on the k components sees far more than these two.",
    ], size=16)
    footer(slide, "the run's pca/ parquet; summary.json (cumulative)")
    return slide


def benchmark_slide(deck, src: Sources):
    b = src.bench
    slide = new_slide(deck, "Performance: the benchmark's targets")
    picture(slide, src.bench_plot, Box(0.4, BODY_TOP, 12.5, 3.4))
    ratios = field(b, "ratios", "bench/results.json")
    if isinstance(ratios, Missing):
        missing_notice(slide, Box(0.5, 4.9, 8.2, 1.2), ratios)
    else:
        rows = [["target", "measured", "goal", ""]]
        for name, ratio in ratios.items():
            rows.append([name.replace("_", " "), f"{ratio['value']:g}", ratio["target"],
                         "PASS" if ratio["pass"] else "FAIL"])
        table(slide, Box(0.5, 4.9, 8.2, 2.0), rows, widths=[5.0, 1.2, 1.2, 0.8], size=12)
    machine = field(b, "machine", "bench/results.json")
    text(slide, Box(9.0, 4.9, 3.9, 2.0), [
        f"{fmt(field(b, 'config.input_images', 'bench/results.json'), ',')} real photos, "
        f"{fmt(field(b, 'config.master', 'bench/results.json'))}, "
        f"{fmt(field(machine, 'logical_cpus', 'bench/results.json machine'))} vCPU "
        f"{fmt(field(machine, 'cpu_model', 'bench/results.json machine'))}, "
        f"run {fmt(field(b, 'started_at', 'bench/results.json'))}",
    ], size=13, color=GREY)
    footer(slide, "bench/results.json (ratios, machine, config); bench/benchmark.png")
    return slide


def scaling_slide(deck, src: Sources):
    b = src.bench
    slide = new_slide(deck, "Performance: where Spark pays off")
    pipeline = field(b, "runs.scaling_fit_wall", "bench/results.json")
    plain = field(b, "runs.scaling_plain_fit_wall", "bench/results.json")
    scaling = field(b, "runs.scaling", "bench/results.json")
    plain_runs = field(b, "runs.scaling_plain_loop", "bench/results.json")
    missing = first_missing(pipeline, plain, scaling, plain_runs)
    if missing is not None:
        missing_notice(slide, Box(0.5, BODY_TOP, 12.3, 1.2), missing)
    else:
        rows = [["images", "pipeline wall (s)", "plain Keras loop wall (s)", "pipeline / plain"]]
        plain_by_n = {run["n"]: run["wall_s"] for run in plain_runs}
        for run in scaling:
            other = plain_by_n.get(run["n"])
            rows.append([f"{run['n']:,}", f"{run['wall_s']:.1f}", "" if other is None else f"{other:.1f}",
                         "" if other is None else f"{run['wall_s'] / other:.2f}"])
        table(slide, Box(0.5, BODY_TOP, 7.2, 2.6), rows, widths=[1.3, 1.9, 2.5, 1.5], size=14)
        crossover = facts.crossover_images(b)
        bullets(slide, Box(0.5, 4.3, 12.3, 2.6), [
            f"Pipeline: {pipeline['intercept_s']:.1f} s + N x {pipeline['slope_s_per_image'] * 1000:.2f} ms "
            f"(R² {pipeline['r2']:.3f}); plain loop: {plain['intercept_s']:.1f} s + N x "
            f"{plain['slope_s_per_image'] * 1000:.2f} ms (R² {plain['r2']:.3f}).",
            f"Spark's fixed cost (JVM, workers, jobs, publishing) pays off above about {fmt(crossover, ',.0f')} "
            "images on this machine.",
            f"Featurize stage: {fmt(field(b, 'runs.headline.pipeline.images_per_s_featurize_stage', 'bench'))} "
            f"images/s vs {fmt(field(b, 'pure_inference.keras_all_cores.images_per_s', 'bench'))} images/s for "
            "pure Keras inference on all cores.",
        ], size=16)
    size_study = field(b, "size_study", "bench/results.json")
    if not isinstance(size_study, Missing):
        rows = [["input px", "accuracy", "pure TFLite img/s"]]
        rows += [[str(r["image_size"]), f"{r['accuracy']:.3f}", f"{r['pure_tflite_1_thread_images_per_s']:.0f}"]
                 for r in size_study]
        table(slide, Box(8.1, BODY_TOP, 4.7, 2.6), rows, widths=[1.3, 1.3, 2.1], size=14)
    footer(slide, "bench/results.json (runs.scaling*, scaling_fit_wall, scaling_plain_fit_wall, pure_inference, "
                  "size_study: logistic regression, 25% held out)")
    return slide


def emr_slide(deck, src: Sources):
    c, p = src.cluster, src.prices
    slide = new_slide(deck, "Amazon EMR in the EU")
    groups = facts.instance_groups(c)
    apps = field(c, "Applications", "emr/cluster.json")
    idle = field(c, "AutoTerminationPolicy.IdleTimeout", "emr/cluster.json")
    livy = next((conf["Properties"].get("livy.server.session.timeout") for conf in
                 field(c, "Configurations", "emr/cluster.json") or [] if conf.get("Classification") == "livy-conf"),
                None) if not isinstance(c, Missing) else c
    nodes = groups if isinstance(groups, Missing) else ", ".join(
        (f"{role} {count} x {itype}" if count else f"{role}: none by default")
        + (" (Spot)" if market == "SPOT" else "") for role, count, itype, market in groups)
    bullets(slide, Box(0.5, BODY_TOP, 7.3, 5.6), [
        f"Region {fmt(field(p, 'region', 'emr/prices.json'))} only (GDPR): other regions refused before any AWS call",
        f"{fmt(field(c, 'ReleaseLabel', 'emr/cluster.json'))}: "
        + fmt(apps if isinstance(apps, Missing) else ", ".join(a["Name"] for a in apps)),
        ("nodes: " + fmt(nodes)),
        f"IAM roles: {fmt(field(c, 'ServiceRole', 'emr/cluster.json'))} (service), "
        f"{fmt(field(c, 'JobFlowRole', 'emr/cluster.json'))} (instances); S3 access limited to the project "
        "bucket (emr/iam-policy.json)",
        "S3 bucket: default encryption (SSE-S3), Block Public Access on; no public ingress on the cluster",
        f"auto-termination after {fmt(idle if isinstance(idle, Missing) else idle / 3600, 'g')} h idle; "
        f"Livy sessions time out after {fmt(livy)}",
    ], size=16)
    cost = facts.hourly_cost(c, p)
    if isinstance(cost, Missing):
        missing_notice(slide, Box(8.1, BODY_TOP, 4.8, 1.2), cost)
    else:
        rows = [["node", "$/h each", "$/h"]]
        rows += [[f"{role} {count} x {itype}", f"{unit:.3f}", f"{total:.3f}"]
                 for role, count, itype, unit, total in cost["lines"]]
        rows.append(["cluster, per demo hour", "", f"{cost['total']:.3f}"])
        table(slide, Box(8.1, BODY_TOP, 4.8, 2.2), rows, widths=[2.6, 1.1, 1.1], size=13)
        text(slide, Box(8.1, BODY_TOP + 2.5, 4.8, 2.6), [
            f"{fmt(field(p, 'currency', 'emr/prices.json'))} {fmt(field(p, 'unit', 'emr/prices.json'))}, "
            f"EC2 + EMR fee, as of {fmt(field(p, 'as_of', 'emr/prices.json'))}: approximate list prices, "
            "to re-check before relying on them.",
            f"Not included: {fmt(field(p, 'excludes', 'emr/prices.json'))}.",
        ], size=12, color=GREY)
    footer(slide, "emr/cluster.json; emr/prices.json; the launcher's guards (docs/emr.md)")
    return slide


def demo_slide(deck, src: Sources):
    slide = new_slide(deck, "The demo, step by step")
    cost = facts.hourly_cost(src.cluster, src.prices)
    idle = field(src.cluster, "AutoTerminationPolicy.IdleTimeout", "emr/cluster.json")
    steps = [
        "python -m fruits_emr plan --bucket $BUCKET   # request + cost per hour, no AWS call",
        "python -m fruits_emr up --bucket $BUCKET --data data_sample/   # bucket, uploads, cluster",
        "SSM tunnel -> JupyterHub -> notebooks/02_emr.ipynb, PySpark kernel, Run all",
        "python -m fruits_emr submit / status   # or: the same chain as an EMR step",
        "aws s3 ls s3://$BUCKET/fruits/output/   # features, pca, errors, model, summary",
        "python -m fruits_emr down --cluster-id j-...   # TERMINATED: no more cost",
    ]
    for index, step in enumerate(steps):
        top = BODY_TOP + 0.1 + index * 0.78
        badge = slide.shapes.add_shape(MSO_SHAPE.OVAL, Inches(0.5), Inches(top), Inches(0.5), Inches(0.5))
        badge.fill.solid()
        badge.fill.fore_color.rgb = ACCENT
        badge.line.fill.background()
        badge.text_frame.text = str(index + 1)
        badge.text_frame.paragraphs[0].runs[0].font.size = Pt(16)
        badge.text_frame.paragraphs[0].alignment = PP_ALIGN.CENTER
        box = text(slide, Box(1.2, top + 0.04, 11.7, 0.6), [step], size=15)
        box.text_frame.paragraphs[0].runs[0].font.name = "Courier New"
    per_hour = cost if isinstance(cost, Missing) else f"${cost['total']:.3f}"
    text(slide, Box(0.5, 6.15, 12.3, 0.8), [
        f"Cost per demo hour: {per_hour}; a forgotten cluster stops after "
        f"{fmt(idle if isinstance(idle, Missing) else idle / 3600, 'g')} h idle. Script: docs/demo.md.",
    ], size=16, bold=True)
    footer(slide, "emr/cluster.json (AutoTerminationPolicy, instance groups); emr/prices.json")
    return slide


def critique_slide(deck, src: Sources):
    b = src.bench
    slide = new_slide(deck, "Critique: what works, what limits")
    crossover = facts.crossover_images(b)
    compute = field(b, "pure_inference.tflite_processes_x_1_thread.images_per_s", "bench/results.json")
    stage = field(b, "runs.headline.pipeline.images_per_s_featurize_stage", "bench/results.json")
    text(slide, Box(0.5, BODY_TOP, 6.0, 0.5), ["Works"], size=20, bold=True, color=ACCENT)
    bullets(slide, Box(0.5, BODY_TOP + 0.55, 6.0, 5.0), [
        "One library, laptop and EMR; Spark ML Transformer and PipelineModel end to end.",
        "Nothing lost: every file in features/ or errors/; summary.json written last; incremental runs.",
        f"Model built once per worker (max {fmt(field(b, 'all_workers.max_builds_per_worker', 'bench'))}), "
        f"{fmt(field(b, 'all_workers.max_peak_rss_per_worker_gib', 'bench'), '.2f')} GiB per worker.",
        "Guards: EU regions only, idle auto-termination always set, private encrypted bucket.",
    ], size=17)
    text(slide, Box(6.8, BODY_TOP, 6.0, 0.5), ["Limits"], size=20, bold=True, color=ACCENT)
    bullets(slide, Box(6.8, BODY_TOP + 0.55, 6.0, 5.0), [
        f"Fixed costs dominate small runs: below about {fmt(crossover, ',.0f')} images a plain script is faster.",
        f"Featurize stage at {fmt(stage)} images/s vs {fmt(compute)} images/s for the same cores' pure "
        "TFLite: JVM reading and Arrow transfers share the cores.",
        "Spark ML's own PCA.fit is wrong on data_sample/ only with the pure-Java F2jLAPACK (no native "
        "LAPACK): the default solver tree-aggregates moments and solves with numpy on the driver.",
        "The covariance lives on the driver (d x d): fine for MobileNetV2, not for much larger d.",
        "S3 publishing is copies, not an atomic rename; prices are approximate; "
        f"measured on one {fmt(field(b, 'machine.logical_cpus', 'bench'))}-vCPU machine.",
    ], size=17)
    footer(slide, "bench/results.json (scaling fits, pure_inference, all_workers); docs/critique.md")
    return slide


def projection_slide(deck, src: Sources):
    slide = new_slide(deck, "Projections: 1 million and 10 million images")
    projected = facts.projections(src.bench, src.cluster, src.prices)
    if isinstance(projected, Missing):
        missing_notice(slide, Box(0.5, BODY_TOP, 12.3, 1.2), projected)
    else:
        rows = [["images", "EMR core nodes", "vCPUs", "featurizing time", "$/h (cluster)", "compute cost"]]
        for row in projected["rows"]:
            minutes = row["minutes"]
            duration = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
            rows.append([f"{row['images']:,}", f"{row['core_nodes']} x {row['type']}", str(row["vcpus"]),
                         duration, f"{row['per_hour']:.3f}", f"${row['dollars']:.2f}"])
        table(slide, Box(0.5, BODY_TOP, 12.3, 2.6), rows, widths=[1.8, 2.6, 1.2, 2.4, 2.0, 2.3], size=16)
        bullets(slide, Box(0.5, 4.3, 12.3, 2.6), [
            f"Rate: {projected['rate_per_core']:.0f} images/s per core, the pipeline's measured marginal rate "
            "(benchmark slope); one m5 vCPU counted as one such core: optimistic, not measured on EMR.",
            "Not included: cluster start-up and bootstrap, the run's fixed cost, S3 requests and storage.",
            "Compute is cheap at this scale: idle clusters and people's time dominate the bill "
            "(hence auto-termination).",
        ], size=16)
    footer(slide, "bench/results.json (runs.scaling_fit_wall, machine.logical_cpus); emr/cluster.json; "
                  "emr/prices.json")
    return slide


def next_steps_slide(deck, src: Sources):
    slide = new_slide(deck, "Next steps")
    bullets(slide, Box(0.5, BODY_TOP, 12.3, 5.5), [
        "Run the benchmark on EMR itself: the projections assume a vCPU equals a core here.",
        "Train and ship the recognition model on the PCA features (classifier, export for the app).",
        "Native LAPACK on the nodes, then re-test Spark ML's own PCA solver.",
        "Smaller input size where photos are small: faster inference at the same accuracy (size study).",
        "Consider EMR Serverless for batch runs (no cluster to forget) and GPU nodes at larger volumes.",
        "Guard concurrent runs writing the same S3 output.",
    ], size=20)
    return slide


def closing_slide(deck, src: Sources):
    s = src.summary
    slide = new_slide(deck, "Thank you: questions?")
    bullets(slide, Box(0.5, BODY_TOP, 12.3, 4.0), [
        "Code and runbooks: README.md, docs/emr.md, docs/demo.md, docs/critique.md, docs/performance.md.",
        "Regenerate this deck: make run, then make slides (python -m slides --run OUT --out DECK.pptx).",
        f"Run {fmt(field(s, 'run_id', 'summary.json'))}, weights {fmt(field(s, 'weights.source', 'summary.json'))}, "
        f"Spark {fmt(field(s, 'versions.spark', 'summary.json'))}, "
        f"TensorFlow {fmt(field(s, 'versions.tensorflow', 'summary.json'))}.",
        f"Benchmark of {fmt(field(src.bench, 'started_at', 'bench/results.json'))}; "
        f"prices as of {fmt(field(src.prices, 'as_of', 'emr/prices.json'))}.",
    ], size=18)
    text(slide, Box(0.5, 5.8, 12.3, 1.0), [
        "Photos: Fruits-360, Horea Mureșan and Mihai Oltean, CC BY-SA 4.0. Icons: AWS Architecture Icons "
        "via the diagrams package.",
    ], size=13, color=GREY)
    return slide


SLIDES = (title_slide, problem_slide, dataset_slide, architecture_slide, chain_slide, broadcast_slide,
          pca_slide, scatter_slide, benchmark_slide, scaling_slide, emr_slide, demo_slide, critique_slide,
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
