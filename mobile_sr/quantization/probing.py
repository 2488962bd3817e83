"""Reading intermediate tensors of a model on a calibration batch without holding them all."""

from __future__ import annotations

from collections.abc import Iterator

from mobile_sr.core.backend import keras


def chunked_values(model, tensors: list, batch, chunk: int = 8) -> Iterator[list]:
    """For ``chunk`` samples of ``batch`` at a time (an array, or a list of arrays for a
    multi-input model), the values of ``tensors`` (symbolic tensors of ``model``), one list per
    chunk: one forward pass computes them all, and memory holds one chunk's."""
    probe = keras.Model(model.input, tensors)
    several_inputs = isinstance(batch, (list, tuple))
    arrays = batch if several_inputs else [batch]
    for start in range(0, len(arrays[0]), chunk):
        piece = [array[start : start + chunk] for array in arrays]
        outputs = probe(piece if several_inputs else piece[0], training=False)
        yield outputs if len(tensors) > 1 else [outputs]
