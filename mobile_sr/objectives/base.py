"""What every training objective provides to the train step."""

from __future__ import annotations

from typing import Any


class Objective:
    """One registered training objective, built for a model. Exactly one objective of a run
    *produces the output* (:meth:`output_and_loss` runs the model); the others are weighted terms
    on that output (:meth:`term`). ``options`` are the objective's settings: the model config's
    (:meth:`~mobile_sr.models.config.ModelConfig.objective_options`) over the defaults."""

    name: str
    summary: str
    produces_output: bool
    defaults: dict[str, Any] = {}
    persistent_tape = False  # whether after_step reads the tape once more

    def __init__(self, model, model_config, weight: float, **options):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(f"objective '{self.name}' has no option(s) {', '.join(unknown)}; "
                             f"its options: {', '.join(self.defaults) or 'none'}")
        self.model, self.model_config, self.weight = model, model_config, weight
        self.options = {**self.defaults, **options}

    def output_and_loss(self, inputs, target, distance, *, global_batch: int, replicas: int):
        """``(output, loss, state)`` of one replica's batch: the model's output the terms score,
        this objective's weighted loss (averaged over the global batch) and what
        :meth:`after_step` needs. ``distance(error)`` is the mean L1 or L2 of the current phase."""
        raise NotImplementedError(f"objective '{self.name}' does not produce the output")

    def term(self, target, output):
        """This objective's unweighted loss on the output another objective produced."""
        raise NotImplementedError(f"objective '{self.name}' produces the output")

    def after_step(self, tape, state) -> None:
        """Work after the optimizer step, e.g. GradNorm's update of its task weights."""
        return  # a statement: AutoGraph cannot convert a body that is only a docstring

    def checkpointed(self) -> dict[str, Any]:
        """Trackable state to save in the run's checkpoints."""
        return {}
