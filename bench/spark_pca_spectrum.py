"""Does Spark ML's own ``PCA.fit`` give scikit-learn's spectrum? A standalone check (issue 10, point 2).

``fruits_lib/reduce.py`` and ``docs/critique.md`` once said that Spark 3.5.9's ``PCA.fit`` returns a
wrong spectrum on the 160 x 1280 features of ``data_sample/`` (first explained-variance ratio 0.045
instead of 0.201). This script settles it. For each Spark master it prints the BLAS/LAPACK classes
``dev.ludovic.netlib`` loaded in the driver JVM, then, on the same float64 matrix:

- ``spark``: ``StandardScaler(withMean)`` + ``PCA(k=d).fit`` (Spark's covariance, then Breeze's SVD
  of it, which calls LAPACK ``dgesdd`` on the driver);
- ``spark_cov``: Spark's covariance (``RowMatrix.computeCovariance``) against numpy's;
- ``jvm_dgesdd``: the same LAPACK ``dgesdd`` Breeze calls, run in the driver JVM on numpy's covariance
  (isolates the d x d decomposition from Spark's distributed pass);

each against scikit-learn (``svd_solver="full"``). Inputs: the ``features/`` of a run (default), and
with ``--synthetic`` also random matrices of the same shape (rank-deficient when rows < columns).
Exit code 1 if any spectrum differs from scikit-learn's by more than 1e-6.

Measured on 23 Nov 2026 (driver JVM on ``JNILAPACK`` over Debian's reference LAPACK 3.11): Spark's
covariance equals numpy's to 2e-15 and ``PCA.fit`` equals scikit-learn to 5e-16; ``F2jLAPACK``'s
``dgesdd`` on the features' covariance gives 0.0451 instead of 0.2018 (k = 64 instead of 41), but is
right without the 24 constant columns and on the random matrices (see ``docs/critique.md``).

    python -m fruits_lib run --input data_sample --output output/sample --weights offline   # 224 px
    .venv/bin/python bench/spark_pca_spectrum.py --features output/sample/features \\
        --master 'local[2]' --master 'local-cluster[2,1,1024]' --synthetic
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

TOLERANCE = 1e-6


def netlib_classes(spark) -> dict:
    """The BLAS/LAPACK implementations ``dev.ludovic.netlib`` chose in the driver JVM."""
    netlib = spark.sparkContext._jvm.dev.ludovic.netlib
    return {"blas": netlib.blas.BLAS.getInstance().getClass().getName(),
            "lapack": netlib.lapack.LAPACK.getInstance().getClass().getName()}


def spark_pca_ratios(spark, matrix: np.ndarray) -> tuple:
    """Spark ML's ratios (``StandardScaler`` centring + ``PCA(k=d).fit``) and Spark's covariance."""
    from pyspark.ml.feature import PCA, StandardScaler
    from pyspark.ml.linalg import Vectors
    from pyspark.mllib.linalg.distributed import RowMatrix

    frame = spark.createDataFrame([(Vectors.dense(row),) for row in matrix], ["features"]).cache()
    scaler = StandardScaler(inputCol="features", outputCol="centred", withMean=True, withStd=False).fit(frame)
    model = PCA(k=matrix.shape[1], inputCol="centred", outputCol="pca").fit(scaler.transform(frame))
    from pyspark.mllib.linalg import Vectors as OldVectors

    rows = frame.rdd.map(lambda r: OldVectors.dense(r["features"].toArray()))
    covariance = RowMatrix(rows).computeCovariance().toArray()
    frame.unpersist()
    return model.explainedVariance.toArray(), covariance


def jvm_dgesdd(spark, covariance: np.ndarray, java: bool = False) -> np.ndarray:
    """Singular values of ``covariance`` from the driver JVM's LAPACK ``dgesdd`` (jobz "A", as Breeze's svd).

    ``java``: the pure-Java ``F2jLAPACK`` that ``dev.ludovic.netlib`` falls back to when no native
    ``liblapack.so.3`` is installed, whatever the machine has.
    """
    from py4j.java_gateway import get_field
    from pyspark.ml.common import _py2java
    from pyspark.ml.linalg import DenseMatrix

    sc = spark.sparkContext
    jvm, gateway = sc._jvm, sc._gateway
    n = covariance.shape[0]
    values = _py2java(sc, DenseMatrix(n, n, covariance.flatten(order="F").tolist())).toArray()
    netlib = jvm.dev.ludovic.netlib.lapack
    lapack = netlib.JavaLAPACK.getInstance() if java else netlib.LAPACK.getInstance()
    singular = gateway.new_array(jvm.double, n)
    u, vt = gateway.new_array(jvm.double, n * n), gateway.new_array(jvm.double, n * n)
    iwork, info = gateway.new_array(jvm.int, 8 * n), jvm.org.netlib.util.intW(0)
    query = gateway.new_array(jvm.double, 1)
    lapack.dgesdd("A", n, n, values, n, singular, u, n, vt, n, query, -1, iwork, info)
    work = gateway.new_array(jvm.double, int(query[0]))
    lapack.dgesdd("A", n, n, values, n, singular, u, n, vt, n, work, len(work), iwork, info)
    status = get_field(info, "val")
    if status != 0:
        raise RuntimeError(f"dgesdd info = {status}")
    return np.array(list(singular))


def compare(ratios: np.ndarray, reference: np.ndarray) -> dict:
    n = min(len(ratios), len(reference))
    return {"first_ratio": round(float(ratios[0]), 4),
            "k95": int(np.searchsorted(np.cumsum(ratios), 0.95 - 1e-12) + 1),
            "max_abs_diff_vs_sklearn": float(np.abs(ratios[:n] - reference[:n]).max())}


def matrices(args) -> dict:
    """Name -> float64 matrix to test: the run's features, and random ones of the same shape."""
    table = pd.read_parquet(args.features).sort_values("path")
    found = {"features": np.stack(table["features"].to_numpy()).astype(np.float64)}
    if args.synthetic:
        rows, columns = found["features"].shape
        rng = np.random.default_rng(0)
        scales = np.geomspace(10, 0.01, columns)
        found[f"gaussian_{rows}x{columns}"] = rng.normal(size=(rows, columns)) * scales
        constant = found["features"].std(axis=0) == 0
        found["features_without_constant_columns"] = found["features"][:, ~constant]
        with_constant = found[f"gaussian_{rows}x{columns}"].copy()
        with_constant[:, constant] = 0.0  # the features' constant columns, at the same places
        found[f"gaussian_{rows}x{columns}_with_{int(constant.sum())}_constant_columns"] = with_constant
        found[f"gaussian_{4 * columns}x{columns}"] = rng.normal(size=(4 * columns, columns)) * scales
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="output/sample/features", help="features/ parquet of a run")
    parser.add_argument("--master", action="append", help="Spark master(s) (default: local[2])")
    parser.add_argument("--synthetic", action="store_true", help="also random matrices of the same shape")
    parser.add_argument("--decomposition-only", action="store_true",
                        help="skip Spark's PCA.fit: only the JVM's dgesdd on numpy's covariance")
    parser.add_argument("--only", action="append", help="test only this input (repeatable)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    from sklearn.decomposition import PCA as SkPCA

    inputs = {name: m for name, m in matrices(args).items() if not args.only or name in args.only}
    failed = False
    for master in args.master or ["local[2]"]:
        spark = (SparkSession.builder.master(master).appName("spark-pca-spectrum")
                 .config("spark.driver.memory", "4g").config("spark.ui.enabled", "false").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        for name, matrix in inputs.items():
            reference = SkPCA(svd_solver="full").fit(matrix).explained_variance_ratio_
            numpy_cov = np.cov(matrix, rowvar=False)
            row = {"master": master, "spark_version": spark.version, **netlib_classes(spark), "input": name,
                   "shape": list(matrix.shape), "rank": int(np.linalg.matrix_rank(matrix - matrix.mean(0))),
                   "constant_columns": int((matrix.std(axis=0) == 0).sum()),
                   "sklearn": compare(reference, reference)}
            if not args.decomposition_only:
                started = time.perf_counter()
                ratios, spark_cov = spark_pca_ratios(spark, matrix)
                row["spark"] = dict(compare(ratios, reference), seconds=round(time.perf_counter() - started, 1))
                row["spark_cov_max_abs_diff_vs_numpy"] = float(np.abs(spark_cov - numpy_cov).max())
            for java in (False, True):
                started = time.perf_counter()
                singular = jvm_dgesdd(spark, numpy_cov, java=java)
                row["jvm_dgesdd_F2jLAPACK" if java else "jvm_dgesdd"] = dict(
                    compare(singular / singular.sum(), reference), seconds=round(time.perf_counter() - started, 1))
            for solver in ("spark", "jvm_dgesdd", "jvm_dgesdd_F2jLAPACK"):
                failed |= solver in row and row[solver]["max_abs_diff_vs_sklearn"] > TOLERANCE
            print(json.dumps(row), flush=True)
        spark.stop()
    print("Spark PCA.fit spectrum: " + ("DIFFERS from scikit-learn" if failed else "equals scikit-learn's"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
