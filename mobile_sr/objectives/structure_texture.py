"""attention_sr's objective: the structure branch learns the TV structure of the target, the
texture branch the rest (:mod:`mobile_sr.tasks.sr.decomposition`); GradNorm
(:mod:`mobile_sr.objectives.gradnorm`) balances the two losses on the weights of the layer both
branches share. The output is the sum of the branches."""

from __future__ import annotations

from mobile_sr.core.errors import ConfigError
from mobile_sr.objectives.base import Objective


class StructureTextureObjective(Objective):
    name = "structure_texture"
    summary = "per-branch L1 against the TV structure / texture split of the target, balanced by GradNorm"
    produces_output = True
    persistent_tape = True

    def __init__(self, model, model_config, weight, **options):
        from mobile_sr.models.attention_sr import (
            STRUCTURE_OUTPUT,
            TEXTURE_OUTPUT,
            branch_outputs_view,
            shared_variables,
        )
        from mobile_sr.objectives.gradnorm import GradNorm

        super().__init__(model, model_config, weight, **options)
        names = {layer.name.removeprefix("quant_") for layer in model.layers}
        if not {STRUCTURE_OUTPUT, TEXTURE_OUTPUT} <= names:
            raise ConfigError(f"the structure_texture objective trains a structure and a texture branch; {model.name} "
                              "has none (use it with attention_sr)")
        self.branches = branch_outputs_view(model)
        self.shared = shared_variables(model)
        self.balancer = GradNorm(2)

    def output_and_loss(self, inputs, target, distance, *, global_batch, replicas):
        from mobile_sr.tasks.sr.decomposition import structure_texture_tf

        _, structure, texture = self.branches(inputs, training=True)
        target_structure, target_texture = structure_texture_tf(target)
        task_losses = [distance(structure - target_structure), distance(texture - target_texture)]
        loss = self.weight * self.balancer.weighted_loss(task_losses) / replicas
        return structure + texture, loss, task_losses

    def after_step(self, tape, state):
        self.balancer.update(tape, state, self.shared)

    def checkpointed(self):
        return {"gradnorm": self.balancer}
