"""Tasks: what differs between kinds of restoration lives here, one subpackage per task
(``sr``, ``hdr``), each with its data, patches, evaluation and LiteRT runner. The rest of
mobile-sr asks a task (:class:`~mobile_sr.tasks.base.Task`) and never tells tasks apart itself."""

from mobile_sr.tasks.base import EvalOptions, EvalSubject, ModelInput, Task, TaskData
from mobile_sr.tasks.registry import (
    TASKS,
    baseline_names,
    get_task,
    task_names,
    task_of_baseline,
    task_of_graph,
    task_of_model,
)

__all__ = [
    "TASKS", "EvalOptions", "EvalSubject", "ModelInput", "Task", "TaskData", "baseline_names", "get_task",
    "task_names", "task_of_baseline", "task_of_graph", "task_of_model",
]
