"""Exceptions the library raises. Each message says what was wrong and how to fix it; only the CLI
turns them into a one-line ``Error: ...`` and a non-zero exit."""


class MobileSRError(Exception):
    """Base class of every error mobile-sr raises on purpose."""


class ConfigError(MobileSRError, ValueError):
    """A model or training configuration holds an invalid value."""


class ImageError(MobileSRError):
    """An image file cannot be read or has a layout mobile-sr cannot use."""


class DatasetError(MobileSRError):
    """A dataset folder is missing, empty or laid out unexpectedly."""


class MetricInputError(MobileSRError, ValueError):
    """A metric got images of the wrong type, range or shape."""


class RunFolderError(MobileSRError):
    """A training run folder is missing, incomplete or would be overwritten."""


class QuantizationError(MobileSRError):
    """A model cannot be quantized or converted to a full-integer TFLite graph."""


class TFLiteError(MobileSRError):
    """A .tflite file is missing, invalid, or does not run in the LiteRT interpreter."""


class AndroidBenchError(MobileSRError):
    """adb, the device or TFLite's benchmark tool is missing, refuses, or fails."""


class OutputError(MobileSRError):
    """An output file cannot be written where it was asked for."""


class MissingExtraError(MobileSRError):
    """An optional extra that the requested feature needs (e.g. OpenVINO) is not installed."""


class OptionError(MobileSRError):
    """An option does not fit the model or data it came with (e.g. ``--scale 2`` for an x3 model);
    the CLI reports it as a usage error."""

    exit_code = 2
