"""Small helpers for the notebooks, so that every cell is one library call plus a little display code.

The same code runs in three places. In a local Jupyter kernel, IPython is present and figures are
shown as PNG outputs. In the Livy session behind EMR JupyterHub's PySpark kernel there is no
IPython: figures come back only through sparkmagic's ``%matplot plt``, and tables as text. In plain
Python nothing is displayed. Python 3.9 compatible, like the EMR nodes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from fruits_lib.support import plot
from fruits_lib.write import join

# Spark settings that decide how featurization runs (memory, cores, executors, Python, Arrow).
SETTING_PREFIXES = (
    "spark.master", "spark.submit.deployMode", "spark.app.name", "spark.executor.", "spark.driver.memory",
    "spark.driver.cores", "spark.dynamicAllocation.", "spark.pyspark.", "spark.python.",
    "spark.sql.execution.arrow.", "spark.task.cpus", "spark.default.parallelism",
    "spark.sql.shuffle.partitions", "spark.executorEnv.", "spark.yarn.appMasterEnv.",
)
SETTING_NOISE = ("spark.executor.id", ".extraJavaOptions", ".extraClassPath", ".extraLibraryPath")


def _table(rows: dict, index: str, column: str = "value") -> pd.DataFrame:
    """A one-column table from a dict: renders as HTML locally and as plain text under Livy."""
    return pd.DataFrame({column: rows}).rename_axis(index)


def project_root(start: str | None = None) -> Path | None:
    """The repository root at or above ``start`` (default: the cwd), or None outside the repository.

    Recognised by ``fruits_lib/__init__.py`` next to ``notebooks/``. This lets a notebook find its
    files whether the kernel started in the root (nbconvert, pytest) or in notebooks/ (JupyterLab).
    """
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "fruits_lib" / "__init__.py").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def project_path(path: str) -> str:
    """``path`` as Spark should see it. URIs (``s3://``...) and absolute paths are kept as they are.

    A relative path is taken from the repository's ``notebooks/`` folder, whatever the kernel's cwd,
    so ``../data_sample`` always names the same folder. Outside the repository it is taken from the cwd.
    """
    if "://" in path or os.path.isabs(os.path.expanduser(path)):
        return os.path.expanduser(path)
    root = project_root()
    return str(((root / "notebooks") if root else Path.cwd()).joinpath(path).resolve())


def sample_images(images, per_label: int = 2) -> list:
    """``(label, bytes)`` of the first ``per_label`` images of each label (by path), ready for ``plot.image_grid``.

    Paths are chosen on metadata alone, then only those few files are read. On the full dataset the
    driver never collects more than a grid's worth of bytes.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from fruits_lib import load

    rank = F.row_number().over(Window.partitionBy("label").orderBy("path"))
    chosen = [row["path"] for row in images.select("label", "path").withColumn("rank", rank)
              .filter(F.col("rank") <= per_label).collect()]
    rows = load.read_images(images.sparkSession, paths=chosen).select("label", "path", "content").collect()
    return [(row["label"], bytes(row["content"])) for row in sorted(rows, key=lambda r: (r["label"], r["path"]))]


def _display():
    """IPython's ``display`` when an IPython shell runs this code, else None (Livy session, plain Python)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    return display if get_ipython() is not None else None


def show_png(data: bytes) -> None:
    """Show PNG bytes (e.g. the published ``explained_variance.png``) as an image output, when IPython is there."""
    display = _display()
    if display is not None:
        from IPython.display import Image

        display(Image(data=data, format="png"))


def show_figure(fig):
    """Show ``fig`` as a PNG output and close it, so the inline backend does not show it a second time.

    Without IPython (the Livy session on EMR) the figure stays open and current, for ``%matplot plt``.
    """
    if _display() is None:
        return fig
    show_png(plot.to_png(fig))
    plot.plt.close(fig)
    return None


def png_figure(data: bytes):
    """A pyplot figure that shows a PNG at its own pixel size (100 dpi).

    On EMR only pyplot figures come back to the browser (``%matplot plt``), not files from S3.
    """
    from PIL import Image

    picture = Image.open(io.BytesIO(data))
    fig = plot.plt.figure(figsize=(picture.width / 100, picture.height / 100), dpi=100)
    axes = fig.add_axes([0, 0, 1, 1])
    axes.imshow(picture)
    axes.axis("off")
    return fig


def read_pca(spark, output: str, components: int = 2) -> pd.DataFrame:
    """The published ``pca/`` projections as pandas: ``path, label, pc1 .. pc<components>``, sorted by path.

    Reads what the pipeline wrote, so nothing is featurized again just to draw the scatter.
    """
    from pyspark.sql import functions as F

    frame = spark.read.parquet(join(output, "pca"))
    columns = [F.col("pca")[i].alias(f"pc{i + 1}") for i in range(components)]
    return frame.select("path", "label", *columns).orderBy("path").toPandas()


def counts_table(counts: dict) -> pd.DataFrame:
    """Images per label (``load.label_counts``) as a table, with a total row."""
    table = _table(counts, "label", "images")
    table.loc["total"] = int(table["images"].sum())
    return table


def settings_table(spark) -> pd.DataFrame:
    """The Spark settings of this session that matter for featurization (``SETTING_PREFIXES``), sorted."""
    conf = dict(spark.sparkContext.getConf().getAll())
    rows = {key: value for key, value in sorted(conf.items())
            if key.startswith(SETTING_PREFIXES) and not key.endswith(SETTING_NOISE)}
    return _table(rows, "setting")


def cluster_table(info: dict) -> pd.DataFrame:
    """``session.cluster_info`` (or a summary's ``cluster``) as one table: master, executors, cores, settings."""
    rows = {key: value for key, value in info.items() if key != "settings"}
    rows["cores for tasks (default parallelism)"] = rows.pop("default_parallelism", None)
    rows.update(info.get("settings", {}))
    return _table({key: str(value) for key, value in rows.items()}, "cluster")


def timings_table(summary: dict) -> pd.DataFrame:
    """Seconds per pipeline stage (``summary["seconds"]``) and each stage's share of the total."""
    seconds = dict(summary.get("seconds", {}))
    total = seconds.pop("total", None) or sum(seconds.values()) or 1.0
    table = _table(seconds, "stage", "seconds")
    table["share"] = [f"{value / total:.0%}" for value in table["seconds"]]
    table.loc["total"] = [round(total, 3), "100%"]
    return table


def outputs_table(summary: dict) -> pd.DataFrame:
    """Where each result of the run was published (``summary["outputs"]``)."""
    return _table(summary.get("outputs", {}), "result", "path")


def summary_table(summary: dict) -> pd.DataFrame:
    """The key figures of a run's ``summary.json``, one readable line each."""
    seconds, weights, cluster = summary.get("seconds", {}), summary.get("weights", {}), summary.get("cluster", {})
    labels = summary.get("labels", {})
    cumulative = summary.get("cumulative") or [None]
    threshold = summary.get("pca_variance_threshold")
    rows = {
        "run": " ".join(str(summary[key]) for key in ("run_id", "mode", "finished_at") if summary.get(key)),
        "images": f"{summary.get('images_in')} in = {summary.get('images_ok')} featurized "
                  f"+ {summary.get('images_failed')} failed",
        "labels": f"{len(labels)}: " + ", ".join(f"{label} {count}" for label, count in labels.items()),
        "PCA": f"k = {summary.get('k')} components"
               + (f", {cumulative[-1]:.1%} of the variance" if cumulative[-1] is not None else "")
               + (f" (threshold {threshold:.0%})" if threshold else ""),
        "weights": f"{weights.get('source')}, sha256 {str(weights.get('sha256'))[:12]}..., "
                   f"{weights.get('bytes', 0) / 1e6:.1f} MB broadcast",
        "featurizer": f"MobileNetV2 at {summary.get('image_size')} px, batches of {summary.get('batch_size')} ({summary.get('engine')})",
        "speed": f"{summary.get('images_per_second')} images/s featurized ({seconds.get('featurize')} s)",
        "total time": f"{seconds.get('total')} s",
        "Spark": f"{cluster.get('master')}, {cluster.get('executors')} executor(s), "
                 f"{cluster.get('default_parallelism')} cores, Spark {cluster.get('spark_version')}",
        "output": summary.get("output"),
    }
    return _table({key: value for key, value in rows.items() if value}, "summary.json")


# EU regions of AWS (GDPR): the EMR notebook refuses any other. The launcher (fruits_emr, not shipped to
# the nodes) keeps its own copy for its guards; tests/test_emr_config.py checks that both lists are equal.
EU_REGIONS = ("eu-west-1", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2")


def check_region(region: str) -> str:
    """Return ``region`` if it is an EU region, else raise: the photos and outputs stay in the EU."""
    if region not in EU_REGIONS:
        raise ValueError(f"region {region!r} is not an EU region (GDPR); use one of {', '.join(EU_REGIONS)}")
    return region


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Per-class precision, recall and F1 of a trained model (``metrics.json``), with the overall figures."""
    table = pd.DataFrame(metrics["per_class"]).T.rename_axis("label")
    table.loc["all (accuracy / macro)"] = [metrics["accuracy"], metrics["accuracy"], metrics["macro_f1"],
                                           metrics["n_test"]]
    table["support"] = table["support"].astype(int)
    return table


def prediction_samples(spark, predictions: pd.DataFrame, count: int = 16) -> list:
    """``(true, predicted, bytes)`` of up to ``count`` held-out photos, every mistake first, for ``plot.prediction_grid``.

    Only those few files are read (through Spark, so ``s3://`` works as well as a local path).
    """
    from fruits_lib import load

    wrong = predictions[predictions["label"] != predictions["predicted"]]
    right = predictions[predictions["label"] == predictions["predicted"]]
    chosen = pd.concat([wrong, right.groupby("label").head(max(1, count // max(1, right["label"].nunique())))])
    chosen = chosen.head(count)
    if chosen.empty:
        return []
    contents = {row["path"]: bytes(row["content"]) for row in
                load.read_images(spark, paths=list(chosen["path"])).select("path", "content").collect()}
    return [(row.label, row.predicted, contents[row.path]) for row in chosen.itertuples() if row.path in contents]
