"""Evaluation, the entry point ``mobile-sr eval`` and the benchmarks share: a trained run's Keras
model, an exported ``.tflite`` in LiteRT or OpenVINO, or a model-free baseline, scored by its task's
evaluator (SR: PSNR/SSIM-Y against bicubic; HDR: PSNR-mu/PSNR-l/SSIM-mu next to OpenCV's merges)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mobile_sr.runtimes import DEFAULT_RUNTIME
from mobile_sr.tasks import EvalOptions, EvalSubject, Task, task_of_baseline, task_of_graph


def load_subject(*, run_dir: Path | None = None, tflite_path: Path | None = None, baseline: str | None = None,
                 log: Callable[[str], None] = print) -> tuple[Task, EvalSubject]:
    """The task and the subject of exactly one of the run in ``run_dir`` (its model loaded; an
    unfinished run's latest checkpoint, which ``log`` notes; a QAT run named so, e.g.
    ``scsrn QAT``), the model at ``tflite_path`` or
    ``baseline`` (e.g. bicubic, debevec)."""
    if sum(value is not None for value in (run_dir, tflite_path, baseline)) != 1:
        raise ValueError("evaluate one of run_dir, tflite_path or baseline")
    if baseline is not None:
        return task_of_baseline(baseline), EvalSubject(baseline)
    if tflite_path is not None:
        return task_of_graph(tflite_path), EvalSubject(Path(tflite_path).stem, path=Path(tflite_path))
    from mobile_sr.runs import WEIGHTS_FILE, load_trained_model, unfinished_checkpoint_step

    model, run_config = load_trained_model(run_dir)
    step = unfinished_checkpoint_step(run_dir)
    if step is not None:
        log(f"note: {run_dir} has no final {WEIGHTS_FILE} (an unfinished run); evaluating its checkpoint of step {step}")
    name = f"{run_config.model} QAT" if run_config.is_qat else run_config.model
    return run_config.task, EvalSubject(name, model, run_config.model_config, run_dir=Path(run_dir))


RUN_EVAL_DIR = "eval"  # a run's reports, without a JSON path


def default_report_location(subject: EvalSubject, runtime: str = DEFAULT_RUNTIME) -> dict:
    """Where reports go without a JSON path, as :class:`EvalOptions` fields: a run's in
    ``RUN_DIR/eval/``, a .tflite's next to it, named after it (``<model>_eval_<dataset>...``, so
    its export report keeps its name; run in another ``runtime`` than LiteRT,
    ``<model>_eval_<runtime>_<dataset>...``, so both reports stay); a baseline's nowhere."""
    if subject.run_dir is not None:
        return {"report_dir": subject.run_dir / RUN_EVAL_DIR}
    if subject.path is not None:
        runtime_part = "" if runtime == DEFAULT_RUNTIME else f"{runtime}_"
        return {"report_dir": subject.path.parent, "report_prefix": f"{subject.path.stem}_eval_{runtime_part}"}
    return {}


def evaluate(*, data: str, run_dir: Path | None = None, tflite_path: Path | None = None, baseline: str | None = None,
             scales: list[int] | None = None, tile: bool = False, json_path: Path | None = None, quiet: bool = False,
             runtime: str = DEFAULT_RUNTIME, log: Callable[[str], None] = print) -> list:
    """Score the subject :func:`load_subject` loads on ``data``; print the report through ``log``
    and, with ``json_path``, write it there with its figures. Returns the task's reports.
    ``scales`` and ``tile`` are for SR (``tile``: a .tflite in tiles of its input size);
    ``runtime`` runs a .tflite (one of :data:`~mobile_sr.runtimes.RUNTIMES`)."""
    task, subject = load_subject(run_dir=run_dir, tflite_path=tflite_path, baseline=baseline, log=log)
    return task.evaluate(subject, EvalOptions(data, scales=scales, tile=tile, json_path=json_path, quiet=quiet, log=log,
                                              runtime=runtime))
