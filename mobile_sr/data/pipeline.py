"""Feeding a task's patch sampler to training through ``tf.data``: a generator that ``tf.data``
runs ahead of training in a background thread (``prefetch``), so the CPU pipeline stays ahead of
the train step; ``benchmarks/float_training.py`` measures this."""

from __future__ import annotations


def patch_dataset(sampler, *, input_channels: tuple[int, ...] = (3,)):
    """An endless, prefetched ``tf.data.Dataset`` of float32 ``(inputs, target)`` batches from
    ``sampler.sample()`` (a task's patch sampler: channel-stacked inputs and the target). With
    several ``input_channels`` the inputs' channels are split into that many model inputs (an HDR
    model's exposures)."""
    from mobile_sr.core.backend import tf

    first = sampler.sample()

    def generate():
        yield first
        while True:
            yield sampler.sample()

    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=tuple(tf.TensorSpec(array.shape, tf.as_dtype(array.dtype)) for array in first)
    )

    def to_model(inputs, target):
        inputs, target = tf.cast(inputs, tf.float32), tf.cast(target, tf.float32)
        return (tuple(tf.split(inputs, list(input_channels), axis=-1)) if len(input_channels) > 1 else inputs), target

    return dataset.map(to_model).prefetch(4)
