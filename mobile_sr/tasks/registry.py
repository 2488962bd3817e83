"""The registered tasks. A new task is a subpackage of :mod:`mobile_sr.tasks` whose ``task``
module subclasses :class:`~mobile_sr.tasks.base.Task`, and one entry in ``TASKS`` below."""

from __future__ import annotations

from pathlib import Path

from mobile_sr.core.errors import ConfigError, TFLiteError
from mobile_sr.tasks.base import Task
from mobile_sr.tasks.hdr.task import HDR_TASK
from mobile_sr.tasks.sr.task import SR_TASK

TASKS: dict[str, Task] = {task.name: task for task in (SR_TASK, HDR_TASK)}


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task '{name}'; registered tasks: {', '.join(TASKS)}") from None


def task_of_model(model: str) -> Task:
    """The task of a registered model."""
    from mobile_sr.models import get_model_spec

    return get_task(get_model_spec(model).task)


def baseline_names() -> list[str]:
    """Every task's model-free baselines, e.g. bicubic, debevec and robertson."""
    return [name for task in TASKS.values() for name in task.baselines]


def task_of_baseline(name: str) -> Task:
    for task in TASKS.values():
        if name in task.baselines:
            return task
    raise ConfigError(f"unknown baseline '{name}'; the baselines are {', '.join(baseline_names())}")


def task_of_graph(path: str | Path) -> Task:
    """The task whose inputs a .tflite has; a one-line error for a model of none."""
    from mobile_sr.tflite import load_interpreter, shape_text

    interpreter = load_interpreter(path)
    for task in TASKS.values():
        if task.matches_graph(interpreter.get_input_details()):
            return task
    expected = " or ".join(task.graph_description for task in TASKS.values())
    inputs = ", ".join(map(shape_text, interpreter.get_input_details()))
    raise TFLiteError(f"{path}: its inputs {inputs} are those of no mobile-sr task; expected {expected}")
