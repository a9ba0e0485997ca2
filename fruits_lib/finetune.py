"""Fine-tuning: MobileNetV2's last three blocks retrained to name the fruit in the recipe's photos and scenes.

The pretrained features tell a fruit on white from the same fruit in a scene; retraining blocks 14-16 and the
last convolution on the scenes teaches them the fruit rather than its background. Training starts from block
13's output maps (``MAP_LAYER``), which the featurizer computes on Spark like any features, so the driver runs
only the top of the network (Keras, CPU; a few minutes for 50,000 images). Deterministic for a given seed.
"""

from __future__ import annotations

import time

import numpy as np

from fruits_lib.load import canonical, local_path
from fruits_lib.support.weights import MAP_SUFFIX, build_model

MAP_LAYER = "block_13_project_BN"  # block 14's input: 7 x 7 x 160 at 224 px
MAP_FEATURES = MAP_LAYER + MAP_SUFFIX  # the featureLayers value that gives those maps, flattened
MAP_CHANNELS = 160
TUNED = tuple(f"block_{i}_{part}" for i in (14, 15, 16) for part in ("expand", "depthwise", "project")) + ("Conv_1",)
EPOCHS = 3
BATCH = 64
LEARNING_RATE = 1e-4  # for the tuned blocks; the new classifier is first fitted alone, one epoch at 1e-3
_PARTS = ("expand", "expand_BN", "expand_relu", "depthwise", "depthwise_BN", "depthwise_relu", "project", "project_BN")


def _block(backbone, x, index: int):
    for part in _PARTS:
        layer = backbone.get_layer(f"block_{index}_{part}")
        x = layer(x, training=False) if part.endswith("BN") else layer(x)  # batch norms keep their statistics
    return x


def top_network(backbone, map_shape):
    """Block 13's maps -> ``out_relu`` average-pooled, built from ``backbone``'s own layers, so that training
    it trains them. Keras has no public "sub-network from a layer", hence the blocks are called again by their
    names (MobileNetV2's layout: blocks 14 and 15 add their input back); test_finetune checks that it gives the
    backbone's own features."""
    import keras

    inputs = keras.Input(tuple(map_shape))
    x = backbone.get_layer("block_14_add")([inputs, _block(backbone, inputs, 14)])
    x = backbone.get_layer("block_15_add")([x, _block(backbone, x, 15)])
    x = _block(backbone, x, 16)
    x = backbone.get_layer("out_relu")(backbone.get_layer("Conv_1_bn")(backbone.get_layer("Conv_1")(x), training=False))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def read_maps(files: list, keep) -> tuple:
    """``(maps, labels, paths)`` of the featurized rows (parquet ``files`` with ``path, label, features, error``,
    features from ``MAP_FEATURES``) for which ``keep(paths, labels)`` (pandas Series) is true, sorted by path:
    maps as float16 ``n x h x w x 160``. Read with pyarrow, batch by batch: the driver's JVM never holds them."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    maps, labels, paths = [], [], []
    dataset = ds.dataset(sorted(local_path(canonical(f)) for f in files), format="parquet")  # inputFiles(): encoded
    for batch in dataset.to_batches(columns=["path", "label", "features", "error"], batch_size=1024):
        frame = batch.select(["path", "label"]).to_pandas()
        chosen = keep(frame["path"], frame["label"]).to_numpy() & pc.is_null(batch.column("error")).to_numpy(
            zero_copy_only=False)
        if chosen.any():
            features = batch.column("features").filter(chosen)
            flat = np.asarray(features.flatten(), dtype=np.float32)
            side = int(round((flat.size / len(features) / MAP_CHANNELS) ** 0.5))  # square maps
            maps.append(flat.reshape(len(features), side, side, MAP_CHANNELS).astype(np.float16))
            labels += list(frame["label"][chosen])
            paths += list(frame["path"][chosen])
    order = np.argsort(np.asarray(paths, dtype=object), kind="stable")
    joined = np.concatenate(maps) if maps else np.zeros((0, 1, 1, MAP_CHANNELS), np.float16)
    return joined[order], np.asarray(labels, dtype=object)[order], np.asarray(paths, dtype=object)[order]


def fine_tune(arrays: list, maps: np.ndarray, labels: np.ndarray, *, image_size: int = 224, epochs: int = EPOCHS,
              seed: int = 0, log=print) -> list:
    """``arrays`` (MobileNetV2 weights) with ``TUNED`` retrained to tell ``labels`` (ints from 0) apart from
    ``maps`` (``n x h x w x 160``, block 13's outputs): the new weights; every other array is unchanged."""
    import keras
    import tensorflow as tf

    if len(maps) != len(labels) or len(maps) < 2 or maps.ndim != 4 or maps.shape[-1] != MAP_CHANNELS:
        raise ValueError(f"fine-tuning needs maps of shape (n >= 2, h, w, {MAP_CHANNELS}), one label each; got "
                         f"maps {maps.shape} and {len(labels)} labels")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same weights (checked by test_finetune)
    backbone = build_model(arrays, image_size)
    for layer in backbone.layers:
        layer.trainable = False
    top = top_network(backbone, maps.shape[1:])
    dropped = keras.layers.Dropout(0.2, seed=seed)(top.output)
    model = keras.Model(top.input, keras.layers.Dense(int(labels.max()) + 1, activation="softmax")(dropped))
    rng = np.random.default_rng(seed)
    size = min(BATCH, len(maps))
    steps = len(maps) // size

    def batches():  # shuffled each epoch; half mirrored (a mirrored photo's maps are close to the mirrored maps)
        while True:
            order = rng.permutation(len(maps))
            for start in range(0, steps * size, size):
                chosen = order[start:start + size]
                batch = maps[chosen].astype(np.float32)
                flip = rng.random(len(chosen)) < 0.5
                batch[flip] = batch[flip][:, :, ::-1]
                yield batch, labels[chosen]

    stream = batches()
    for epoch in range(epochs + 1):
        if epoch < 2:  # epoch 0: the new classifier alone; then the tuned blocks too, at a lower rate
            for name in TUNED:
                backbone.get_layer(name).trainable = epoch > 0
            model.compile(keras.optimizers.Adam(1e-3 if epoch == 0 else LEARNING_RATE),
                          "sparse_categorical_crossentropy", metrics=["accuracy"])
        started = time.perf_counter()
        history = model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False).history
        log(f"      fine-tuning {'the new classifier' if epoch == 0 else f'epoch {epoch}/{epochs}'}: "
            f"{steps * size} images, loss {history['loss'][-1]:.3f}, training accuracy "
            f"{history['accuracy'][-1]:.3f}, {time.perf_counter() - started:.0f} s")
    return backbone.get_weights()
