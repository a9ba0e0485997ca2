"""Slides 9-16: benchmark, scaling, EMR and costs, demo, critique, projections, next steps (one function per slide)."""

from __future__ import annotations

from pptx.enum.shapes import MSO_SHAPE
from pptx.enum.text import PP_ALIGN
from pptx.util import Inches, Pt

from slides import facts
from slides.draw import (
    ACCENT,
    BODY_TOP,
    GREY,
    Box,
    bullets,
    fmt,
    footer,
    missing_notice,
    new_slide,
    picture,
    table,
    text,
)
from slides.sources import (
    Missing,
    Sources,
    field,
    first_missing,
)


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
