"""mobile-sr: train image-restoration networks, quantize them to int8 TFLite and time them on phones.

TensorFlow is imported lazily (through :mod:`mobile_sr.core.backend`) so that ``mobile-sr --help`` and the
data/metrics code stay fast to import.
"""

__version__ = "0.1.0"
