"""Ray Data peer: ``read_binary_files`` -> an actor pool of LiteRT interpreters (``map_batches``) -> parquet.

Written as Ray Data's batch-inference guide does it: a callable class (loaded once per actor) given
to ``map_batches`` with an ``ActorPoolStrategy``. CPU split on a small machine: decoding is fused into
the actor (a separate decode stage of 1-CPU tasks never gets a CPU while the pool holds them all:
Ray Data hangs; seen here with 2 actors x 1 CPU on 2 cores, even for the read stage alone), and the
I/O stages that must stay separate (read, write) get a quarter CPU each, the actors the rest
(``(cores - 0.5) / cores`` each). One actor per core, one XNNPACK thread each: the chain's layout.

``python -m bench.peer_ray --input DIR --model FILE.tflite --output OUT --json-out RUN.json``
"""

from __future__ import annotations

import os
import sys

import numpy as np

from bench.peer_common import Clock, features_table, peer_parser

IO_STAGE_CPUS = 0.25  # read and write tasks: light I/O, and they must always find a CPU share


class LiteRTFeaturizer:
    """One actor: a LiteRT interpreter of the model file; bytes -> decoded pixels -> 1280 features."""

    def __init__(self, model_path: str, image_size: int):
        from fruits_lib.support.tflite import tflite_predict

        with open(model_path, "rb") as handle:
            self.predict = tflite_predict(handle.read(), threads=1)
        self.image_size = image_size

    def __call__(self, batch: dict):
        from fruits_lib.support.image import ImageDecodeError, decode_image, preprocess

        paths, pixels = [], []
        for path, content in zip(batch["path"], batch["bytes"]):
            try:
                pixels.append(decode_image(bytes(content), self.image_size))
                paths.append(str(path))
            except ImageDecodeError:
                continue
        features = self.predict(preprocess(np.stack(pixels))) if pixels else np.zeros((0, 1280), np.float32)
        return features_table(paths, features)


def main(argv=None) -> None:
    args = peer_parser("python -m bench.peer_ray", __doc__.splitlines()[0]).parse_args(argv)
    clock = Clock()
    import ray

    clock("import")
    cores = os.cpu_count() or 1
    workers = args.workers or cores
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, object_store_memory=1 << 30,
             configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    clock("start")
    io_cpus = IO_STAGE_CPUS
    dataset = ray.data.read_binary_files(args.input, include_paths=True, file_extensions=["jpg", "jpeg", "png"],
                                         num_cpus=io_cpus)
    dataset = dataset.map_batches(LiteRTFeaturizer, fn_constructor_args=(args.model, args.image_size),
                                  batch_size=args.batch_size, batch_format="numpy",
                                  compute=ray.data.ActorPoolStrategy(size=workers),
                                  num_cpus=(cores - 2 * io_cpus) / workers)
    dataset.write_parquet(args.output, ray_remote_args={"num_cpus": io_cpus})
    clock("featurize_write")
    ray.shutdown()
    clock("shutdown")
    import pyarrow.parquet as pq

    images = pq.read_table(args.output, columns=["path"]).num_rows
    clock.report(args.json_out, images, engine="ray", ray=ray.__version__, workers=workers,
                 cpu_split=f"decode fused into {workers} actors of {(cores - 2 * io_cpus) / workers:g} CPU; "
                           f"read and write tasks {io_cpus:g} CPU each")


if __name__ == "__main__":
    sys.exit(main())
