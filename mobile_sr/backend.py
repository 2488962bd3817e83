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
        "Import mobile_sr.backend first, or set TF_USE_LEGACY_KERAS=1 before importing TensorFlow."
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hides the CUDA probe noise on CPU hosts

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
