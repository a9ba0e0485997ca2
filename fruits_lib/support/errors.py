"""The errors a user can fix: each carries a one-line message that says what to do."""


class FruitsError(Exception):
    """A configuration or input problem reported to the user in one line (exit code 2)."""


class InputError(FruitsError):
    """The input path is missing, malformed or holds no image."""


class OutputError(FruitsError):
    """The output path is unwritable, or already holds results that must not be overwritten."""


class WeightsError(FruitsError):
    """The MobileNetV2 weights source cannot be resolved."""


class TamperedModelError(WeightsError):
    """A saved featurizer whose bundled network is missing or does not match its recorded sha256."""
