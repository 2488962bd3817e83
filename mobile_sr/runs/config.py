"""The typed contracts of a run folder's ``config.json``: the training settings
(:class:`TrainConfig`) and the whole run (:class:`RunConfig`: task, model, model config, training),
read and validated in one place, :func:`read_run_config`."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_sr.core.errors import ConfigError, RunFolderError
from mobile_sr.objectives import objective_problems
from mobile_sr.tasks import Task, task_of_model

CONFIG_FILE = "config.json"
DEFAULT_MINUTES = 8.0
QAT_ROUNDINGS = ("data_aware", "nearest")
LR_SCHEDULES = ("step", "cosine")
# what a run computes in (mobile_sr.training.precision): weights, the EMA and QAT stay float32
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored in the run folder's config.json."""

    model: str = "scsrn"
    model_options: dict[str, Any] = field(default_factory=dict)  # model config values, e.g. {"scale": 2}
    data: str = "default"
    val_data: str | None = None  # None: the default's val split, or images held out of `data`
    steps: int | None = None
    minutes: float | None = None  # neither steps nor minutes: DEFAULT_MINUTES
    batch_size: int = 16  # defaults for SR; an HDR model's task has its own (see for_model)
    patch_size: int = 64  # SR: LR patch side, HR patches are scale times larger; HDR: patch side
    learning_rate: float = 1e-3
    lr_schedule: str = "step"  # "step": x lr_gamma at each milestone; "cosine": to lr_min
    lr_milestones: tuple[float, ...] = (0.5, 0.75, 0.9)
    lr_gamma: float = 0.5
    lr_min: float = 1e-6
    warmup_steps: int = 200
    l2_finetune_fraction: float = 0.0  # last part of training with L2, which is what PSNR measures (1: all)
    ema_decay: float = 0.999  # 0 turns the EMA off
    validations: int = 20  # validation runs over the whole budget
    seed: int = 0
    checkpoint_seconds: float = 120.0
    init_from: str | None = None  # a float run folder whose weights start this run
    qat: bool = False  # quantization-aware training (needs init_from)
    # where QAT's weights start: "data_aware" rounding onto the int8 grid, or "nearest" (tfmot's own)
    qat_rounding: str = "data_aware"
    clip_threshold: str | float | None = None  # weight clipping: "mse" or k RMS; see quantization.weights
    symmetry_strength: float = 0.0  # symmetric-weight regularizer strength (0: off)
    # objective name -> weight (mobile_sr.objectives); empty: the model's default, e.g. {"pixel": 1.0}
    objectives: dict[str, float] = field(default_factory=dict)
    precision: str = "float32"  # one of PRECISIONS; runs stored before it trained in float32

    def __post_init__(self) -> None:
        problems = []
        if self.steps is not None and self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            problems.append(f"minutes must be > 0, got {self.minutes}")
        if self.batch_size < 1 or self.patch_size < 8:
            problems.append(f"batch size >= 1 and patch size >= 8 needed, got {self.batch_size}, {self.patch_size}")
        if not 0 < self.learning_rate < 1:
            problems.append(f"learning rate must be in (0, 1), got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be 'step' or 'cosine', got {self.lr_schedule!r}")
        if not all(0 < m < 1 for m in self.lr_milestones):
            problems.append(f"lr_milestones are fractions of training in (0, 1), got {self.lr_milestones}")
        if not 0 <= self.l2_finetune_fraction <= 1:
            problems.append(f"l2_finetune_fraction must be in [0, 1], got {self.l2_finetune_fraction}")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.validations < 1:
            problems.append(f"validations must be >= 1, got {self.validations}")
        if not self.checkpoint_seconds > 0:  # nan fails too
            problems.append(f"checkpoint_seconds must be > 0, got {self.checkpoint_seconds}")
        if not 0 <= self.seed < 2**32:
            problems.append(f"seed must be in [0, 2**32 - 1], got {self.seed}")
        if self.qat and not self.init_from:
            problems.append("QAT fine-tunes a trained float model: give the float run folder (init_from / --run)")
        if self.qat_rounding not in QAT_ROUNDINGS:
            problems.append(f"qat_rounding must be one of {', '.join(QAT_ROUNDINGS)}, got {self.qat_rounding!r}")
        if self.clip_threshold is not None and self.clip_threshold != "mse" and not (
            isinstance(self.clip_threshold, (int, float)) and self.clip_threshold > 0
        ):
            problems.append(f"clip_threshold must be 'mse' or a positive number of RMS, got {self.clip_threshold!r}")
        if self.clip_threshold is not None and not self.init_from:
            problems.append("weight clipping fixes its thresholds from the starting weights, so it needs a trained start "
                            "(init_from / --run); from scratch, use symmetry_strength alone")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        elif self.qat and self.precision != "float32":
            problems.append(f"QAT trains in float32 (tfmot's fake-quantization ops have no 16-bit kernels), got precision "
                            f"{self.precision}; set precision to float32")
        if self.symmetry_strength < 0:
            problems.append(f"symmetry_strength must be >= 0, got {self.symmetry_strength}")
        problems += objective_problems(self.objectives)
        from mobile_sr.models import make_config

        try:
            make_config(self.model, **self.model_options)
        except ConfigError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def budget_seconds(self) -> float | None:
        if self.minutes is not None:
            return self.minutes * 60.0
        return DEFAULT_MINUTES * 60.0 if self.steps is None else None

    def progress(self, step: int, elapsed: float) -> float:
        """Fraction of the budget used: the larger of the step and the time fraction."""
        fractions = []
        if self.steps is not None:
            fractions.append(step / self.steps)
        if self.budget_seconds is not None:
            fractions.append(elapsed / self.budget_seconds)
        return min(1.0, max(fractions))

    def learning_rate_at(self, step: int, progress: float) -> float:
        if self.lr_schedule == "cosine":
            rate = self.lr_min + 0.5 * (self.learning_rate - self.lr_min) * (1 + math.cos(math.pi * progress))
        else:
            rate = self.learning_rate * self.lr_gamma ** sum(progress >= m for m in self.lr_milestones)
        return rate * min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else rate

    @classmethod
    def for_model(cls, model: str, **options: Any) -> TrainConfig:
        """The config for ``model`` with its task's defaults (e.g. HDR patch and batch sizes) under
        ``options``; options that are None are left at their defaults."""
        chosen = {key: value for key, value in options.items() if value is not None}
        return cls(model=model, **{**task_of_model(model).train_defaults, **chosen})

    def with_objectives(self) -> TrainConfig:
        """This config with its objectives named: the model's default where it names none."""
        if self.objectives:
            return self
        from mobile_sr.models import get_model_spec

        return dataclasses.replace(self, objectives=dict(get_model_spec(self.model).objectives))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["lr_milestones"] = list(self.lr_milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        data = dict(data)
        if "lr_milestones" in data:
            data["lr_milestones"] = tuple(data["lr_milestones"])
        try:
            return cls(**data)
        except TypeError as exc:  # a value of the wrong type, e.g. from a hand-edited config.json
            raise ConfigError(f"training option of the wrong type: {exc}") from None



@dataclass(frozen=True)
class RunConfig:
    """A run folder's ``config.json``: the task, the model and its config, the training settings."""

    task: Task
    model: str
    model_config: Any  # the model's ModelConfig
    train: TrainConfig

    @property
    def is_qat(self) -> bool:
        return self.train.qat

    @property
    def name(self) -> str:
        """What the run holds, e.g. ``scsrn-x3``: its task's default run folder name."""
        return self.task.run_dir_name(self.model, self.model_config)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task.name, "model": self.model, "model_config": self.model_config.to_dict(),
                "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, data, *, source: Path) -> RunConfig:
        """Validate a run's stored config (``source`` names its file in messages). Runs written
        before runs recorded their task get their model's; their loss flags become objectives."""
        from mobile_sr.models import make_config

        problem = _config_problem(data)
        if problem is not None:
            raise RunFolderError(f"{source}: damaged ({problem}); retrain or restore the file")
        try:
            model_config = make_config(data["model"], **data["model_config"])
            task = task_of_model(data["model"])
        except ConfigError as exc:
            raise RunFolderError(f"{source}: invalid model config: {exc}") from None
        if data.get("task", task.name) != task.name:
            raise RunFolderError(f"{source}: damaged (its task '{data['task']}' is not that of {data['model']}, "
                                 f"'{task.name}'); retrain or restore the file")
        try:
            train = TrainConfig.from_dict(_current_train_keys(data["train"], task))
        except ConfigError as exc:
            raise RunFolderError(f"{source}: damaged ({exc}); retrain or restore the file") from None
        return cls(task, data["model"], model_config, train)


# training settings a run's config must hold (resume, QAT and export's calibration read them);
# the others have defaults
_REQUIRED_TRAIN_KEYS = ("model", "data", "seed", "patch_size", "steps", "minutes")


def _config_problem(config) -> str | None:
    if not isinstance(config, dict):
        return "not a JSON object"
    if not isinstance(config.get("model"), str):
        return "no model name"
    for key in ("model_config", "train"):
        if not isinstance(config.get(key), dict):
            return f"'{key}' is missing or not a mapping"
    missing = [key for key in _REQUIRED_TRAIN_KEYS if key not in config["train"]]
    return f"'train' lacks {', '.join(missing)}" if missing else None


def _current_train_keys(train: dict, task: Task) -> dict:
    """The training settings of a run written before runs recorded their task, in today's form:
    the scale is a model option, and the loss flags are objectives."""
    train = dict(train)
    if "scale" in train:
        model_options = train.get("model_options")
        train["model_options"] = {**task.model_options(scale=train.pop("scale")),
                                  **(model_options if isinstance(model_options, dict) else {})}
    high_frequency = train.pop("high_frequency_weight", 0.0)
    structure_texture = train.pop("structure_texture", False)
    if "objectives" not in train and (high_frequency or structure_texture):
        train["objectives"] = {"structure_texture" if structure_texture else "pixel": 1.0,
                               **({"high_frequency": high_frequency} if high_frequency else {})}
    return train


def read_run_config(run_dir: Path) -> RunConfig:
    """The run's config.json, read and validated: the one place a run's settings are read."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise RunFolderError(f"{run_dir} is a file, not a run folder; pass the folder 'mobile-sr train' wrote")
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder; train one with 'mobile-sr train'")
    config_path = run_dir / CONFIG_FILE
    try:
        data = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{run_dir}: not a run folder (no {CONFIG_FILE}); pass the folder 'mobile-sr train' wrote") from None
    except OSError as exc:
        raise RunFolderError(f"{config_path}: cannot be read ({exc.strerror}); retrain or restore the file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{config_path}: damaged ({exc}); retrain or restore the file") from None
    return RunConfig.from_dict(data, source=config_path)
