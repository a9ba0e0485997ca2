"""fruits_lib.finetune: the top of MobileNetV2 rebuilt from block 13's maps, retrained deterministically."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fruits_lib import finetune
from fruits_lib.support import weights as W

SIZE = 96  # 3 x 3 maps: what is checked does not depend on the size


def _maps(arrays, batch):
    model = W.build_model(arrays, SIZE, (finetune.MAP_FEATURES,))
    return model.predict_on_batch(batch).reshape(len(batch), 3, 3, finetune.MAP_CHANNELS)


def test_the_top_network_gives_the_backbones_own_features(offline_weights):
    """Keras has no public sub-network from a layer: this catches a Keras or MobileNetV2 change of layout."""
    batch = np.random.default_rng(0).uniform(-1, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
    backbone = W.build_model(offline_weights.arrays, SIZE)
    top = finetune.top_network(backbone, (3, 3, finetune.MAP_CHANNELS))
    assert np.allclose(top.predict_on_batch(_maps(offline_weights.arrays, batch)), backbone.predict_on_batch(batch),
                       atol=1e-4)


@pytest.mark.slow  # two fine-tunings: about 20 s
def test_fine_tuning_is_deterministic_and_changes_only_the_top_blocks(offline_weights):
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, (8, SIZE, SIZE, 3)).astype(np.float32)
    maps = np.concatenate([_maps(offline_weights.arrays, batch)] * 2).astype(np.float16)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1] * 2)
    lines = []
    first = finetune.fine_tune(offline_weights.arrays, maps, labels, image_size=SIZE, epochs=1, log=lines.append)
    assert [line.split(":")[0].strip() for line in lines] == ["fine-tuning the new classifier", "fine-tuning epoch 1/1"]
    second = finetune.fine_tune(offline_weights.arrays, maps, labels, image_size=SIZE, epochs=1, log=lambda m: None)
    assert all(np.array_equal(a, b) for a, b in zip(first, second)), "same seed, same weights"
    changed = [i for i, (a, b) in enumerate(zip(first, offline_weights.arrays)) if not np.array_equal(a, b)]
    backbone = W.build_model(None, SIZE)
    tuned = {id(w) for name in finetune.TUNED for w in backbone.get_layer(name).weights}
    assert changed and {id(backbone.weights[i]) for i in changed} <= tuned, "only the tuned layers move"
    with pytest.raises(ValueError, match="fine-tuning needs maps"):
        finetune.fine_tune(offline_weights.arrays, maps[:, :, :, :10], labels, image_size=SIZE, epochs=1)


def test_read_maps_keeps_the_chosen_rows_without_errors_sorted_by_path(tmp_path):
    side, dim = 2, 2 * 2 * finetune.MAP_CHANNELS
    rows = [("c.jpg", "a", np.full(dim, 3.0), None), ("a.jpg", "b", np.full(dim, 1.0), None),
            ("b.jpg", "b", None, "unreadable"), ("d.jpg", "x", np.full(dim, 4.0), None)]
    table = pa.table({"path": [r[0] for r in rows], "label": [r[1] for r in rows],
                      "features": pa.array([None if r[2] is None else r[2].tolist() for r in rows], pa.list_(pa.float32())),
                      "error": [r[3] for r in rows]})
    folder = tmp_path / "work 100%"  # Spark's inputFiles() spells it URI-encoded: file:///.../work%20100%25/...
    folder.mkdir()
    pq.write_table(table, folder / "part-0.parquet")
    maps, labels, paths = finetune.read_maps([(folder / "part-0.parquet").as_uri()],
                                             lambda paths, labels: pd.Series(labels.to_numpy() != "x"))
    assert list(paths) == ["a.jpg", "c.jpg"] and list(labels) == ["b", "a"]
    assert maps.shape == (2, side, side, finetune.MAP_CHANNELS) and maps.dtype == np.float16
    assert float(maps[0].max()) == 1.0 and float(maps[1].min()) == 3.0
