"""Daft peer: ``from_glob_path`` -> ``download`` -> ``decode_image``/``resize`` -> a class UDF with LiteRT -> parquet.

Written as Daft's docs show it: Daft's own native download, decode (RGB) and resize expressions,
then a ``@daft.cls`` class (initialised once per instance) whose ``@daft.method.batch`` runs the
model file in LiteRT, one instance per core, one XNNPACK thread each. Daft's resize is its own
(not PIL's), so features are close to the chain's, not identical: the benchmark reports how close.

``python -m bench.peer_daft --input DIR --model FILE.tflite --output OUT --json-out RUN.json``
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

from bench.peer_common import Clock, peer_parser


def main(argv=None) -> None:
    args = peer_parser("python -m bench.peer_daft", __doc__.splitlines()[0]).parse_args(argv)
    clock = Clock()
    import daft
    from daft import DataType, col
    from daft.functions import decode_image, download, resize

    clock("import")
    workers = args.workers or os.cpu_count() or 1
    size = args.image_size

    @daft.cls(cpus=1, max_concurrency=workers, use_process=True)
    class LiteRTFeaturizer:
        def __init__(self, model_path: str):
            from fruits_lib.support.tflite import tflite_predict

            with open(model_path, "rb") as handle:
                self.predict = tflite_predict(handle.read(), threads=1)
            self.lock = threading.Lock()  # Daft may call one instance from several threads; an interpreter is not thread-safe

        @daft.method.batch(return_dtype=DataType.list(DataType.float32()), batch_size=args.batch_size)
        def __call__(self, images):
            from fruits_lib.support.image import preprocess

            pixels = np.stack([np.asarray(image, dtype=np.uint8) for image in images.to_pylist()])
            with self.lock:
                return list(self.predict(preprocess(pixels)))

    featurizer = LiteRTFeaturizer(args.model)
    frame = daft.from_glob_path(os.path.join(os.path.abspath(args.input), "**", "*.jpg"))
    frame = frame.with_column("image", resize(decode_image(download(col("path")), mode="RGB"), size, size))
    frame = frame.select(col("path"), featurizer(col("image")).alias("features"))
    frame.write_parquet(args.output)
    clock("featurize_write")
    images = daft.read_parquet(args.output).count_rows()
    clock("count")
    clock.report(args.json_out, images, engine="daft", daft=daft.__version__, workers=workers,
                 cpu_split="Daft's native download/decode/resize threads + one UDF process per core (cpus=1)")


if __name__ == "__main__":
    sys.exit(main())
