"""The pixel loss: L1 (L2 in a run's L2 phase) between the model's output and the target."""

from __future__ import annotations

from mobile_sr.objectives.base import Objective


def pre_clip_view(model):
    """The model without its final ClipToRange: the L1 gradient then reaches every pixel, also
    those an untrained model pushes outside [0, 255]. Shares the model's layers and weights."""
    from mobile_sr.core.backend import keras
    from mobile_sr.models.layers import ClipToRange

    last = model.layers[-1]
    return keras.Model(model.input, last.input) if isinstance(last, ClipToRange) else model


class PixelObjective(Objective):
    name = "pixel"
    summary = "L1 (L2 in the L2 phase) between the output before its clip and the target"
    produces_output = True

    def __init__(self, model, model_config, weight, **options):
        super().__init__(model, model_config, weight, **options)
        self.view = pre_clip_view(model)

    def output_and_loss(self, inputs, target, distance, *, global_batch, replicas):
        from mobile_sr.core.backend import tf

        output = self.view(inputs, training=True)
        per_example = distance(output - target, axis=[1, 2, 3])
        return output, self.weight * tf.nn.compute_average_loss(per_example, global_batch_size=global_batch), None
