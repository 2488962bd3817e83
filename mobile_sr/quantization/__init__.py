"""Quantization: QAT wrapping with explicit layer configs, weight clipping and the symmetric
weight regularizer."""
