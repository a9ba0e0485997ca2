"""fruits_lib.support.notebook: the notebooks' helpers (paths, tables), emr_magics.py's stand-ins."""


from devtools import report
from fruits_lib.support import notebook


def test_project_path_keeps_uris_and_absolute_paths(tmp_path, monkeypatch):
    assert notebook.project_path("s3://bucket/fruits/data/") == "s3://bucket/fruits/data/"
    assert notebook.project_path(str(tmp_path)) == str(tmp_path)
    monkeypatch.chdir(report.REPO_ROOT)  # the kernel's cwd does not change what ../data_sample names
    assert notebook.project_path("../data_sample") == str(report.REPO_ROOT / "data_sample")
    monkeypatch.chdir(tmp_path)  # outside the repository: relative to the cwd
    assert notebook.project_path("x") == str(tmp_path / "x")


def test_tables_from_a_summary():
    summary = {"images_in": 3, "images_ok": 2, "images_failed": 1, "labels": {"kiwi": 2}, "k": 2,
               "cumulative": [0.6, 0.96], "pca_variance_threshold": 0.95,
               "weights": {"source": "offline", "sha256": "ab" * 32, "bytes": 9_000_000},
               "seconds": {"featurize": 3.0, "pca": 1.0, "total": 4.0}, "images_per_second": 1.0,
               "cluster": {"master": "local[2]", "executors": 1, "default_parallelism": 2},
               "outputs": {"pca": "/o/pca"}}
    table = notebook.summary_table(summary)
    assert "k = 2 components, 96.0% of the variance (threshold 95%)" in table["value"].tolist()
    assert "run" not in table.index  # absent keys give no row, not "None"
    timings = notebook.timings_table(summary)
    assert timings.loc["featurize", "share"] == "75%" and timings.loc["total", "seconds"] == 4.0
    assert notebook.counts_table({"kiwi": 2, "lime": 3}).loc["total", "images"] == 5
    assert notebook.outputs_table(summary).loc["pca", "path"] == "/o/pca"
    assert notebook.cluster_table(summary["cluster"]).loc["executors", "value"] == "1"


def test_emr_magics_are_left_alone_without_ipython(monkeypatch):
    monkeypatch.syspath_prepend(str(report.NOTEBOOKS))  # as a kernel started in notebooks/ imports it
    from emr_magics import register_emr_magics

    assert register_emr_magics() is False  # pytest is no IPython shell: nothing registered
