"""Muting the C++ start-up logs of TensorFlow and LiteRT, which bypass Python logging."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def silenced_native_stderr():
    """Point file descriptor 2 at /dev/null for the duration. TensorFlow 2.21 and LiteRT print
    start-up notices (oneDNN, the CUDA probe on CPU hosts, the XNNPACK delegate) there whatever
    TF_CPP_MIN_LOG_LEVEL says. Python exceptions still propagate and print normally."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
