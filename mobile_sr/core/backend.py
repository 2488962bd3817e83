"""The one module that imports TensorFlow and Keras; everything else imports them from here.

tensorflow-model-optimization only quantizes tf_keras (Keras 2) models, while TensorFlow 2.21 ships
Keras 3 as ``tf.keras``. Setting TF_USE_LEGACY_KERAS before TensorFlow's first import makes
``tf.keras`` (and so tfmot) resolve to tf_keras, the same Keras our models are built with.
"""

import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError(
        "TensorFlow was imported before mobile_sr with Keras 3 active; tfmot needs tf_keras. "
        "Import mobile_sr.core.backend first, or set TF_USE_LEGACY_KERAS=1 before importing TensorFlow."
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mobile_sr.core.native_logs import silenced_native_stderr  # noqa: E402

with silenced_native_stderr():
    import tensorflow as tf
    import tf_keras as keras

    tf.config.list_physical_devices()  # the device probe logs once, here


def import_tfmot():
    """tensorflow-model-optimization, imported on first use (it re-runs TF's noisy start-up)."""
    with silenced_native_stderr():
        import tensorflow_model_optimization as tfmot
    return tfmot


__all__ = ["tf", "keras", "import_tfmot"]
