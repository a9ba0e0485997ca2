"""fruits_lib.support.tflite: the TFLite runtime that loads the converted network."""

import pytest

from fruits_lib.support.tflite import interpreter_class


def test_the_tflite_interpreter_is_a_parameter():
    assert interpreter_class("litert").__module__.startswith("ai_edge_litert")  # the wheel declares it
    assert "tensorflow" in interpreter_class("tf.lite").__module__
    with pytest.raises(ValueError, match="interpreter must be"):
        interpreter_class("onnx")
