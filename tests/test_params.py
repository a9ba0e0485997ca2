"""params: the typeConverters both Transformers declare their Params with refuse bad values in one line."""

import pytest

from fruits_lib.support.params import distinct_names, int_between, one_of


def test_int_between_converts_and_refuses_out_of_range():
    size = int_between("imageSize", 32, 1024, " pixels")
    assert size(224) == 224 and size(32.0) == 32 and size(1024) == 1024
    with pytest.raises(ValueError, match="imageSize must be between 32 and 1024 pixels, not 31"):
        size(31)
    with pytest.raises(TypeError):  # Spark's own conversion still refuses what is no number
        size("big")


def test_one_of_names_every_allowed_value():
    engine = one_of("engine", ("tflite", "keras"))
    assert engine("keras") == "keras"
    with pytest.raises(ValueError, match="engine must be tflite or keras, not 'onnx'"):
        engine("onnx")


def test_distinct_names_refuses_an_empty_list_a_blank_or_a_repeated_name():
    layers = distinct_names("featureLayers")
    assert layers(["out_relu", "block_13_expand_relu"]) == ["out_relu", "block_13_expand_relu"]
    for bad in ([], ["out_relu", ""], ["out_relu", "out_relu"]):
        with pytest.raises(ValueError, match="featureLayers must be a non-empty list of distinct names"):
            layers(bad)
