"""Training objectives, registered by name: what a train step minimises. A run names its
objectives with weights (``{"pixel": 1.0, "high_frequency": 0.5}``; a model's registry entry
names its default): one of them produces the output from the model (``pixel``, or
``structure_texture`` for a model with structure and texture branches), the others are weighted
terms on that output. A new objective is one module here (an
:class:`~mobile_sr.objectives.base.Objective`) and one entry in ``OBJECTIVES``."""

from __future__ import annotations

import math

from mobile_sr.core.errors import ConfigError
from mobile_sr.objectives.base import Objective
from mobile_sr.objectives.high_frequency import HighFrequencyObjective
from mobile_sr.objectives.pixel import PixelObjective
from mobile_sr.objectives.structure_texture import StructureTextureObjective

OBJECTIVES: dict[str, type[Objective]] = {
    objective.name: objective for objective in (PixelObjective, HighFrequencyObjective, StructureTextureObjective)
}


def objective_problems(objectives: dict[str, float]) -> list[str]:
    """What is wrong with a run's ``{objective name: weight}`` (empty: nothing)."""
    if not isinstance(objectives, dict):
        return [f"objectives must map objective names to weights, got {objectives!r}"]
    problems = []
    unknown = sorted(set(objectives) - set(OBJECTIVES))
    if unknown:
        problems.append(f"unknown objective(s) {', '.join(unknown)}; the objectives: {', '.join(OBJECTIVES)}")
    for name, weight in objectives.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (weight > 0 and math.isfinite(weight)):
            problems.append(f"the weight of objective {name} must be a positive number, got {weight!r}")
    producing = [name for name in objectives if name in OBJECTIVES and OBJECTIVES[name].produces_output]
    if objectives and not unknown and len(producing) != 1:
        choices = ", ".join(name for name, objective in OBJECTIVES.items() if objective.produces_output)
        problems.append(f"exactly one objective must produce the output ({choices}), got {', '.join(producing) or 'none'}")
    return problems


def build_objectives(objectives: dict[str, float], model, model_config) -> tuple[Objective, list[Objective]]:
    """``(the objective that produces the output, the weighted terms on it)`` for ``model``."""
    problems = objective_problems(objectives)
    if problems:
        raise ConfigError("; ".join(problems))
    built = [OBJECTIVES[name](model, model_config, float(weight), **model_config.objective_options(name))
             for name, weight in objectives.items()]
    (main,) = [objective for objective in built if objective.produces_output]
    return main, [objective for objective in built if not objective.produces_output]


__all__ = ["OBJECTIVES", "Objective", "build_objectives", "objective_problems"]
