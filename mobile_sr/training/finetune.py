"""Quantization-aware fine-tuning of a float run: the QAT policy (learning rate per task, the
QAT run's folder, what it keeps of the float run's settings) in one library call that the CLI and
the benchmarks share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mobile_sr.data.locations import stored_dataset_argument
from mobile_sr.runs import TrainConfig, read_run_config
from mobile_sr.training.stages import train

DEFAULT_CLIP = "mse"
DEFAULT_SYMMETRY = 1e-2


def qat_run_dir(float_run: Path, *, plain: bool = False) -> Path:
    """``<float run>-qat`` (``-qat-plain`` for plain QAT), beside the float run."""
    resolved = Path(float_run).resolve()  # '.' too: the run folder given from inside it
    return resolved.with_name(resolved.name + ("-qat-plain" if plain else "-qat"))


def finetune(float_run: Path, *, data: str | None = None, steps: int | None = None, minutes: float | None = None,
             learning_rate: float | None = None, clip_threshold: str | float | None = DEFAULT_CLIP,
             symmetry_strength: float = DEFAULT_SYMMETRY, plain: bool = False, rounding: str = "data_aware",
             l2_fraction: float = 1.0, seed: int | None = None, checkpoint_seconds: float | None = None,
             run_dir: Path | None = None, resume: bool = False, overwrite: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune the float run in ``float_run`` with QAT into ``run_dir`` (default
    :func:`qat_run_dir`) and return the summary. It keeps the float run's settings but for: its
    data (``data`` replaces it), the budget, the learning rate (default: the task's QAT rate, no
    warm-up), the L2 fraction (default: all), the seed and the checkpoint interval (default: the
    float run's), the start (``rounding``: "data_aware" or "nearest"), the weight shaping
    (``plain``: none) and the precision (float32, see :mod:`mobile_sr.training.precision`)."""
    base = read_run_config(float_run)
    config = TrainConfig.from_dict({
        **base.train.to_dict(), "data": stored_dataset_argument(data) or base.train.data, "steps": steps,
        "minutes": minutes, "learning_rate": base.task.qat_learning_rate if learning_rate is None else learning_rate, "warmup_steps": 0,
        "l2_finetune_fraction": l2_fraction,
        "init_from": str(Path(float_run).resolve()),  # the run then works from any folder
        "seed": base.train.seed if seed is None else seed, "qat": True, "qat_rounding": rounding,
        "checkpoint_seconds": base.train.checkpoint_seconds if checkpoint_seconds is None else checkpoint_seconds,
        "clip_threshold": None if plain else clip_threshold, "symmetry_strength": 0.0 if plain else symmetry_strength,
        "precision": "float32",  # whatever the float run's: fake quantization runs in float32 only
    })
    return train(config, run_dir=run_dir or qat_run_dir(float_run, plain=plain), resume=resume, overwrite=overwrite,
                 log=log)
