"""What reaches the terminal: third-party start-up and INFO lines silenced at their source, all of them on demand.

``FRUITS_LOG=debug`` (set by ``fruits COMMAND --verbose``) shows everything: Spark's own log
configuration, TensorFlow's and LiteRT's INFO lines. Otherwise the driver JVM starts with the
log4j2 file shipped here (warnings and errors only), TensorFlow's C++ logs stop at warnings and
LiteRT's INFO lines are not printed. The variable is inherited by local Python workers.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

LOG_ENV = "FRUITS_LOG"
LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")


def verbose() -> bool:
    """Whether the user asked to see every log line (``FRUITS_LOG=debug``)."""
    return os.environ.get(LOG_ENV, "").strip().lower() == "debug"


def set_verbose() -> None:
    """Show every log line from now on, in this process and the Python workers it starts."""
    os.environ[LOG_ENV] = "debug"


def quiet_tensorflow() -> None:
    """TensorFlow's C++ logs at warnings and above, unless verbose (before TensorFlow is imported)."""
    if not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def driver_java_options() -> str:
    """The driver JVM's option that selects the shipped log4j2 file; empty when verbose (Spark's defaults)."""
    if verbose():
        return ""
    option = f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}"
    return f'"{option}"' if any(c.isspace() for c in option) else option


# What native code prints at INFO level, or about itself whatever the call: LiteRT's minimal logger
# ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU." once per interpreter), absl's INFO lines
# ("I0000 00:00:...") and its notice before initialisation, and the two warnings TensorFlow's TFLite
# converter prints at every conversion about its own default arguments, and its int8 quantizer's settings.
NATIVE_NOISE = re.compile(
    rb"INFO: |I\d{4} [\d:. ]+\d+ \S+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\) "
    rb"|W\d{4} [\d:. ]+\d+ tf_tfl_flatbuffer_helpers\.cc:\d+\] Ignored (output_format|drop_control_dependency)\."
    rb"|fully_quantize: \d+, inference_type: ")


@contextmanager
def native_noise_silenced():
    """Drop :data:`NATIVE_NOISE` lines from what native code prints on stderr inside the block; keep the rest.

    Neither LiteRT's minimal logger nor absl (TensorFlow's converter) has an environment variable or an
    exported setter for its level (``TF_CPP_MIN_LOG_LEVEL`` does not reach them), so the block's stderr
    (file descriptor 2) goes to a temporary file; every other line, warnings and errors included, is
    written back to stderr when the block ends. Verbose: nothing is dropped.
    """
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().splitlines(keepends=True) if not NATIVE_NOISE.match(line)]
            if kept:
                os.write(2, b"".join(kept))
