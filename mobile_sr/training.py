"""Float training of registered models, SR and multi-exposure HDR (what differs between the two
is in :mod:`mobile_sr.tasks`): L1 (optionally L2 at the end), Adam, step or cosine decay, an
exponential moving average (EMA) of the weights, time or step budgets, resumable checkpoints, and
progress with loss, validation PSNR and ETA.

The learning-rate schedule and the L2 phase follow training *progress*, the larger of
``step / steps`` and ``elapsed / budget``, so one recipe serves step and wall-clock budgets and a
resumed run continues the same schedule. With more than one GPU, training runs under
``tf.distribute.MirroredStrategy`` (batches split across the replicas); otherwise it uses the
default strategy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mobile_sr import runs
from mobile_sr.data.patches import PatchSampler, patch_dataset
from mobile_sr.data.sr import SUPPORTED_SCALES
from mobile_sr.errors import ConfigError, DatasetError, MobileSRError, RunFolderError
from mobile_sr.plots import plot_training_curve
from mobile_sr.tasks import task_of

DEFAULT_MINUTES = 8.0
QAT_ROUNDINGS = ("data_aware", "nearest")
BEST_WEIGHTS_FILE = "best.weights.h5"  # in the checkpoint folder while a QAT run trains


class TrainingInterrupted(MobileSRError):
    """Training stopped by the user; the checkpoint written on the way out allows --resume."""

    exit_code = 130  # the shell's code for a run stopped by Ctrl-C


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored in the run folder's config.json."""

    model: str = "scsrn"
    scale: int = 3  # SR only
    model_options: dict[str, Any] = field(default_factory=dict)
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
    high_frequency_weight: float = 0.0  # RT4KSR's high-frequency L1 added with this weight (0: off)
    # attention_sr: train each branch on its part of the HR image (TV structure / texture), the two
    # losses balanced by GradNorm, instead of the output's pixel loss
    structure_texture: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.scale not in SUPPORTED_SCALES:
            problems.append(f"scale must be one of {SUPPORTED_SCALES}, got {self.scale}")
        if self.steps is not None and self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            problems.append(f"minutes must be > 0, got {self.minutes}")
        if self.batch_size < 1 or self.patch_size < 8:
            problems.append(f"batch size >= 1 and patch size >= 8 needed, got {self.batch_size}, {self.patch_size}")
        if not 0 < self.learning_rate < 1:
            problems.append(f"learning rate must be in (0, 1), got {self.learning_rate}")
        if self.lr_schedule not in ("step", "cosine"):
            problems.append(f"lr_schedule must be 'step' or 'cosine', got {self.lr_schedule!r}")
        if not all(0 < m < 1 for m in self.lr_milestones):
            problems.append(f"lr_milestones are fractions of training in (0, 1), got {self.lr_milestones}")
        if not 0 <= self.l2_finetune_fraction <= 1:
            problems.append(f"l2_finetune_fraction must be in [0, 1], got {self.l2_finetune_fraction}")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.validations < 1:
            problems.append(f"validations must be >= 1, got {self.validations}")
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
        if self.symmetry_strength < 0:
            problems.append(f"symmetry_strength must be >= 0, got {self.symmetry_strength}")
        if self.high_frequency_weight < 0:
            problems.append(f"high_frequency_weight must be >= 0, got {self.high_frequency_weight}")
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
    def for_model(cls, model: str, **options: Any) -> "TrainConfig":
        """The config for ``model`` with its task's defaults (e.g. HDR patch and batch sizes) under
        ``options``; options that are None are left at their defaults."""
        chosen = {key: value for key, value in options.items() if value is not None}
        return cls(model=model, **{**task_of(model).train_defaults, **chosen})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["lr_milestones"] = list(self.lr_milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
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


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / task_of(config.model).run_dir_name(config.model, config.scale)


def _resumed_config(stored: dict, config: TrainConfig, run_dir: Path) -> TrainConfig:
    """The stored run's training config with ``config``'s budget, where it sets one."""
    try:
        return TrainConfig.from_dict({**stored["train"], "steps": config.steps or stored["train"]["steps"],
                                      "minutes": config.minutes or stored["train"]["minutes"]})
    except ConfigError as exc:
        raise RunFolderError(f"{run_dir / runs.CONFIG_FILE}: damaged ({exc}); retrain or restore the file") from None


def _stored_model_config(stored: dict, run_dir: Path) -> dict:
    """The stored run's model config with the defaults of fields it lacks, as ``to_dict`` gives it."""
    from mobile_sr.models import make_config

    try:
        return make_config(stored["model"], **stored["model_config"]).to_dict()
    except ConfigError as exc:
        raise RunFolderError(f"{run_dir / runs.CONFIG_FILE}: invalid model config: {exc}") from None


def _check_new_run_dir(run_dir: Path, *, overwrite: bool, init_from: str | None = None) -> None:
    """Fail before any work when ``run_dir`` cannot take a new run: ``overwrite`` replaces only a
    run (a folder with a config.json), never other files nor the run ``init_from`` starts from."""
    from mobile_sr.images import check_output_path

    existing = next((path for path in (run_dir, *run_dir.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        raise RunFolderError(f"{existing} is a file, so {run_dir} cannot be a run folder; pick another folder with --out")
    start = Path(init_from).resolve() if init_from is not None else None
    if start is not None and run_dir.resolve() in (start, *start.parents):
        raise RunFolderError(f"{run_dir} is or holds the run {init_from} that this run starts from; pick another "
                             "folder with --out")
    if existing == run_dir and any(run_dir.iterdir()):
        if not (run_dir / runs.CONFIG_FILE).is_file():
            raise RunFolderError(f"{run_dir} is not empty and holds no run (no {runs.CONFIG_FILE}); --overwrite "
                                 "replaces only a run folder, so pick an empty or new folder with --out")
        if not overwrite:
            raise RunFolderError(
                f"{run_dir} already holds a run; continue it with --resume, replace it with "
                "--overwrite, or pick another folder with --out"
            )
    check_output_path(run_dir / runs.CONFIG_FILE)


def _create_run_dir(run_dir: Path, *, overwrite: bool) -> None:
    """``run_dir`` for a new run; with ``overwrite``, emptied of the run it held."""
    try:
        if overwrite and (run_dir / runs.CONFIG_FILE).is_file():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{run_dir}: cannot be created ({exc.strerror or exc}); pick another folder with --out") from None


def _check_same_start(stored: dict, init_from: str, run_dir: Path) -> None:
    """Refuse to resume the run in ``run_dir`` as a fine-tuning of ``init_from`` when it started from another run."""
    stored_start = stored["train"].get("init_from")
    if stored_start is None or Path(stored_start).resolve() != Path(init_from).resolve():
        raise RunFolderError(f"{run_dir} fine-tunes {stored_start or 'nothing (a run trained from scratch)'}, not "
                             f"{init_from}; give the run it started from with --run, or pick its QAT run with --out")


def _check_budget_left(config: TrainConfig, checkpoint: str, run_dir: Path) -> None:
    """Refuse to resume a run whose ``checkpoint`` has used ``config``'s budget, before loading anything."""
    from mobile_sr.backend import tf

    try:
        step = int(tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE"))
        elapsed = float(tf.train.load_variable(checkpoint, "elapsed/.ATTRIBUTES/VARIABLE_VALUE"))
    except (ValueError, tf.errors.OpError) as exc:  # a damaged checkpoint, or another program's
        raise RunFolderError(runs.checkpoint_problem(checkpoint, exc)) from None
    if config.progress(step, elapsed) >= 1.0:
        raise RunFolderError(f"{run_dir} has used its whole budget ({step} steps); "
                             "give a larger --steps or --minutes to continue it")


def _choose_strategy():
    from mobile_sr.backend import tf

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def _pre_clip_view(model):
    """The model without its final ClipToRange: the L1 gradient then reaches every pixel, also
    those an untrained model pushes outside [0, 255]. Shares the model's layers and weights."""
    from mobile_sr.backend import keras
    from mobile_sr.models.layers import ClipToRange

    last = model.layers[-1]
    return keras.Model(model.input, last.input) if isinstance(last, ClipToRange) else model


class StructureTextureObjective:
    """attention_sr's objective: the structure branch learns the TV structure of the HR patch,
    the texture branch the rest (:mod:`mobile_sr.data.decomposition`); GradNorm balances the two
    losses on the weights of the layer both branches share."""

    def __init__(self, model):
        from mobile_sr.gradnorm import GradNorm
        from mobile_sr.models.attention_sr import branch_outputs_view, shared_variables

        self.branches = branch_outputs_view(model)
        self.shared = shared_variables(model)
        self.balancer = GradNorm(2)

    def losses(self, lr, hr, distance):
        from mobile_sr.data.decomposition import structure_texture_tf

        _, structure, texture = self.branches(lr, training=True)
        hr_structure, hr_texture = structure_texture_tf(hr)
        return structure + texture, [distance(structure - hr_structure), distance(texture - hr_texture)]


def _structure_texture_objective(config: TrainConfig, model):
    if not config.structure_texture:
        return None
    from mobile_sr.models.attention_sr import STRUCTURE_OUTPUT, TEXTURE_OUTPUT

    names = {layer.name.removeprefix("quant_") for layer in model.layers}
    if not {STRUCTURE_OUTPUT, TEXTURE_OUTPUT} <= names:
        raise ConfigError(f"structure_texture trains a structure and a texture branch; {config.model} has none "
                          "(use it with attention_sr)")
    return StructureTextureObjective(model)


def make_train_step(strategy, model, ema_model, optimizer, *, loss_name: str, global_batch: int, shaping=None,
                    high_frequency_weight: float = 0.0, blur_kernel=None,
                    objective: StructureTextureObjective | None = None):
    """A compiled ``step(lr, hr, ema_decay) -> loss``: one optimizer step on ``model`` (its pre-clip
    output against ``hr``, or ``objective``'s GradNorm-weighted branch losses; plus the
    high-frequency loss with ``blur_kernel`` and the weight-shaping penalty), the weight clip if any, then
    ``ema_model``'s weights move toward ``model``'s by ``1 - ema_decay``."""
    from mobile_sr.backend import tf
    from mobile_sr.losses import high_frequency_l1

    trainable = _pre_clip_view(model)
    replicas = strategy.num_replicas_in_sync

    def distance(error):
        return tf.reduce_mean(tf.abs(error) if loss_name == "l1" else tf.square(error))

    def replica_step(lr, hr):
        with tf.GradientTape(persistent=objective is not None) as tape:
            if objective is None:
                output = trainable(lr, training=True)
                error = output - hr
                per_example = tf.reduce_mean(tf.abs(error) if loss_name == "l1" else tf.square(error), axis=[1, 2, 3])
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            else:
                output, task_losses = objective.losses(lr, hr, distance)
                loss = objective.balancer.weighted_loss(task_losses) / replicas
            if high_frequency_weight:
                loss += high_frequency_weight * high_frequency_l1(hr, output, blur_kernel) / replicas
            if shaping is not None:
                loss += shaping.penalty() / replicas
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        if objective is not None:
            objective.balancer.update(tape, task_losses, objective.shared)
            del tape
        return loss

    @tf.function
    def train_step(lr, hr, ema_decay):
        loss = strategy.reduce("SUM", strategy.run(replica_step, args=(lr, hr)), axis=None)
        if shaping is not None:
            shaping.apply_clip()
        for average, weight in zip(ema_model.weights, model.weights):
            if weight.dtype.is_floating:
                average.assign(ema_decay * average + (1.0 - ema_decay) * weight)
            else:  # counters, e.g. the QAT wrappers' step
                average.assign(weight)
        return loss

    return train_step


def measure_step_time(
    model_name: str, pairs, *, scale: int, batch_size: int = 16, patch_size: int = 64, steps: int = 200,
) -> dict[str, float]:
    """Seconds per training step fed by the real input pipeline and by one cached in-memory batch.

    Their ratio shows whether the pipeline starves training (1.0: not at all).
    """
    from mobile_sr.backend import keras, tf
    from mobile_sr.models import build_model, make_config

    strategy = tf.distribute.get_strategy()
    config = make_config(model_name, scale=scale)
    model, ema_model = build_model(model_name, config), build_model(model_name, config)
    step = make_train_step(strategy, model, ema_model, keras.optimizers.Adam(1e-4), loss_name="l1", global_batch=batch_size)
    sampler = PatchSampler(pairs, patch_size=patch_size, batch_size=batch_size, seed=0)
    batches = iter(patch_dataset(sampler))
    cached = next(batches)
    decay = tf.constant(0.999)

    def seconds_per_step(next_batch) -> float:
        for _ in range(20):
            step(*next_batch(), decay)
        start = time.perf_counter()
        for _ in range(steps):
            loss = step(*next_batch(), decay)
        float(loss)
        return (time.perf_counter() - start) / steps

    cached_time = seconds_per_step(lambda: cached)
    pipeline_time = seconds_per_step(lambda: next(batches))
    return {
        "model": model_name, "batch_size": batch_size, "patch_size": patch_size, "steps": steps,
        "seconds_per_step_pipeline": pipeline_time, "seconds_per_step_cached": cached_time,
        "steps_per_s_pipeline": 1.0 / pipeline_time, "pipeline_overhead": pipeline_time / cached_time - 1.0,
    }


def _format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _save_weights(model, path: Path) -> None:
    """``model``'s weights to ``path``, never half-written: saved beside it, then moved over it."""
    partial = path.with_name(f".partial.{path.name}")  # same suffix, same format
    model.save_weights(str(partial))
    partial.replace(path)


class _MetricsLog:
    def __init__(self, path: Path):
        self.path = path
        self.records = []
        try:
            lines = path.read_text().splitlines() if path.exists() else []
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{path}: cannot be read ({exc}); delete it, or start the run again with --overwrite") from None
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                self.records.append(record)
            elif number < len(lines):  # a cut last line is what a crash mid-write leaves: dropped on resume
                raise RunFolderError(f"{path}: line {number} is not a metrics record; delete that line, or start "
                                     "the run again with --overwrite")

    def add(self, record: dict) -> None:
        self.records.append(record)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past the resumed checkpoint, so a resumed log has no repeated steps."""
        self.records = [r for r in self.records if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.records))


def train(
    config: TrainConfig,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``config.model`` into ``run_dir`` and return the run summary (also in summary.json).

    With ``resume``, the run in ``run_dir`` continues with its stored config; only ``config``'s
    budget (steps, minutes), where set, replaces the stored one. Nothing is written to ``run_dir``
    before the data, the model and the checkpoint have loaded."""
    with _InterruptWatch() as interrupts:
        return _train(config, run_dir=run_dir, resume=resume, overwrite=overwrite, log=log, interrupts=interrupts)


class _InterruptWatch:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt as usual, and is also remembered: Python drops the
    exception when it lands in a weakref callback or ``__del__`` (TensorFlow runs many while it
    traces), so training checks :meth:`check` at each step. Between :meth:`hold` and :meth:`release`
    it is only remembered. Only in the main thread, and only where SIGINT has Python's default handler."""

    def __init__(self):
        self.requested = False
        self.holding = False
        self.previous_handler = None

    def __enter__(self) -> "_InterruptWatch":
        if threading.current_thread() is threading.main_thread() and (
                signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous_handler = signal.signal(signal.SIGINT, self._handle)
            self.previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *_exc) -> None:
        if self.previous_handler is not None:
            signal.signal(signal.SIGINT, self.previous_handler)
            sys.unraisablehook = self.previous_hook

    def _handle(self, _signum, _frame) -> None:
        self.requested = True
        if not self.holding:
            raise KeyboardInterrupt

    def _unraisable(self, unraisable) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):  # a dropped Ctrl-C: check() raises it again
            self.previous_hook(unraisable)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        """Raise the Ctrl-C remembered meanwhile, if any; later ones raise at once again."""
        self.holding = False
        self.check()


def _train(config: TrainConfig, *, run_dir: Path | None, resume: bool, overwrite: bool, log: Callable[[str], None],
           interrupts: _InterruptWatch) -> dict[str, Any]:
    from mobile_sr.backend import keras, tf
    from mobile_sr.images import check_output_path
    from mobile_sr.models import build_model, deploy_form, get_model_spec, make_config
    from mobile_sr.models.layers import gaussian_kernel

    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    if resume:
        stored = runs.read_run_config(run_dir)
        if config.init_from is not None:
            _check_same_start(stored, config.init_from, run_dir)
        config = _resumed_config(stored, config, run_dir)
        metrics = _MetricsLog(run_dir / runs.METRICS_FILE)
        latest_checkpoint = tf.train.latest_checkpoint(str(run_dir / runs.CHECKPOINT_DIR))
        if latest_checkpoint is None:
            raise RunFolderError(f"{run_dir}: nothing to resume (no checkpoint yet); start it again with --overwrite")
        _check_budget_left(config, latest_checkpoint, run_dir)
        check_output_path(run_dir / runs.CONFIG_FILE)
    else:
        _check_new_run_dir(run_dir, overwrite=overwrite, init_from=config.init_from)
    task = task_of(config.model)
    init_model = None
    if config.init_from:
        init_model, init_config = runs.load_trained_model(Path(config.init_from))
        if init_config["train"].get("qat"):
            raise ConfigError(f"{config.init_from} is a QAT run; start from the float run it came from")
        model_config = make_config(init_config["model"], **init_config["model_config"])
        if config.qat:  # QAT fine-tunes the inference form: training-only structure folded into plain convs
            init_model, model_config = deploy_form(init_config["model"], init_model, model_config)
        held = task.run_dir_name(init_config["model"], getattr(model_config, "scale", config.scale))
        if held != task.run_dir_name(config.model, config.scale):
            raise ConfigError(f"{config.init_from} holds {held}, not {task.run_dir_name(config.model, config.scale)}")
    else:
        model_config = make_config(config.model, **task.model_options(config.scale), **config.model_options)
    if resume and (config.model, model_config.to_dict()) != (stored["model"], _stored_model_config(stored, run_dir)):
        source = f"the run it fine-tunes ({config.init_from}) now holds" if config.init_from else "its training settings give"
        raise RunFolderError(f"{run_dir / runs.CONFIG_FILE}: its model_config differs from the model {source}; "
                             "restore the file, or start the run again with --overwrite")
    task.check(config, model_config)
    run_config = {"model": config.model, "model_config": model_config.to_dict(), "train": config.to_dict()}
    try:
        data = task.load(config)
    except DatasetError as exc:
        if not (resume or config.init_from):
            raise
        qat_option = "; or give qat --data" if config.qat and not resume else ""
        raise DatasetError(f"{exc} (the data '{config.data}' of the run this one continues, from its {runs.CONFIG_FILE}; "
                           f"{runs.RELATIVE_DATA_HINT}{qat_option})") from None
    log(f"data: {data.name}: {task.describe(data.train)} for training; {data.val_name}: {len(data.val)} for validation")

    strategy = _choose_strategy()
    keras.utils.set_random_seed(config.seed)  # initializers draw from Python, NumPy and TensorFlow seeds
    with strategy.scope():
        model = build_model(config.model, model_config)
        if init_model is not None:
            model.set_weights(init_model.get_weights())
        if config.qat:
            from mobile_sr.quantization.qat import quantize_for_training

            calibration = task.sampler(data.train, patch_size=config.patch_size, batch_size=64,
                                       seed=config.seed + 1).sample()[0]
            model = quantize_for_training(model, task.model_inputs(calibration),
                                          value_range=get_model_spec(config.model).value_range,
                                          data_aware_rounding=config.qat_rounding == "data_aware")
        ema_model = runs.build_run_model(run_config)
        ema_model.set_weights(model.get_weights())
        shaping = None
        if config.clip_threshold or config.symmetry_strength:
            from mobile_sr.quantization.weights import WeightShaping, conv_kernels

            shaping = WeightShaping(conv_kernels(model), clip_threshold=config.clip_threshold,
                                    symmetry_strength=config.symmetry_strength)
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        objective = _structure_texture_objective(config, model)
        step_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
        elapsed_counter = tf.Variable(0.0, dtype=tf.float64, trainable=False)
    checkpoint = tf.train.Checkpoint(
        model=model, ema_model=ema_model, optimizer=optimizer, step=step_counter, elapsed=elapsed_counter,
        **({"gradnorm": objective.balancer} if objective is not None else {}),
    )
    if resume:
        try:
            checkpoint.restore(latest_checkpoint)
        except (ValueError, IndexError, tf.errors.OpError) as exc:  # another model's checkpoint, or a damaged one
            raise RunFolderError(runs.checkpoint_problem(latest_checkpoint, exc)) from None

    start_step = int(step_counter.numpy())
    sampler = task.sampler(data.train, patch_size=config.patch_size, batch_size=config.batch_size,
                           seed=config.seed + start_step)
    if sampler.skipped:
        log(f"skipped {sampler.skipped} training image(s) smaller than a {config.patch_size}px patch")
    batches = iter(strategy.experimental_distribute_dataset(patch_dataset(sampler, input_groups=task.input_groups)))

    train_steps = {
        loss_name: make_train_step(strategy, model, ema_model, optimizer, loss_name=loss_name,
                                   global_batch=config.batch_size, shaping=shaping,
                                   high_frequency_weight=config.high_frequency_weight, objective=objective,
                                   blur_kernel=gaussian_kernel(getattr(model_config, "blur_kernel_size", 5),
                                                               getattr(model_config, "blur_sigma", 1.0)))
        for loss_name in ("l1", "l2")
    }
    validate_ema = task.validator(ema_model, model_config, data.val, name=config.model, val_name=data.val_name)
    baseline_val = task.baseline_score(data.val, val_name=data.val_name, scale=config.scale)
    label = task.run_dir_name(config.model, config.scale)

    # data, model and checkpoint loaded: only now the run folder is written
    interrupts.check()
    interrupts.hold()  # until the try below, which saves a checkpoint: a folder left half set up could not resume
    if resume:
        metrics.truncate_after(start_step)
        log(f"resumed {run_dir} at step {start_step}")
    else:
        _create_run_dir(run_dir, overwrite=overwrite)
        metrics = _MetricsLog(run_dir / runs.METRICS_FILE)
    runs.write_json(run_dir / runs.CONFIG_FILE, run_config)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / runs.CHECKPOINT_DIR), max_to_keep=2)

    def save_checkpoint(step: int, elapsed: float) -> None:
        step_counter.assign(step)
        elapsed_counter.assign(elapsed)
        manager.save(checkpoint_number=step)

    # QAT keeps its best-validated weights, its calibrated start included: from data-aware rounding,
    # fine-tuning can cost more (weights drifting across rounding boundaries) than it wins.
    best_weights = run_dir / runs.CHECKPOINT_DIR / BEST_WEIGHTS_FILE
    best_val = max((r[f"val_{task.metric}"] for r in metrics.records if f"val_{task.metric}" in r), default=-math.inf)
    best_step = max((r["step"] for r in metrics.records if r.get(f"val_{task.metric}") == best_val), default=None)

    def validate(step: int, elapsed: float) -> float:
        nonlocal best_val, best_step
        score, secondary = validate_ema()
        if config.qat and score > best_val:
            best_val, best_step = score, step
            _save_weights(ema_model, best_weights)
            save_checkpoint(step, elapsed)  # a resumed run then never restarts before its best weights
        # recorded after the best weights are saved: an interrupt in between never leaves a best record without its weights
        metrics.add({"step": step, f"val_{task.metric}": score, f"val_{task.secondary_metric}": secondary})
        return score

    step = start_step
    elapsed = float(elapsed_counter.numpy())
    validation_interval = 1.0 / config.validations
    next_validation = (math.floor(config.progress(step, elapsed) / validation_interval) + 1) * validation_interval
    last_checkpoint = last_log = time.monotonic()
    window_start, window_steps, window_loss = time.monotonic(), 0, 0.0
    val_psnr = float("nan")
    # trainable only: running statistics (e.g. network deconvolution's D matrices) are not parameters
    parameters = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    log(f"training {label} ({parameters:,} parameters) into {run_dir}; "
        f"batch {config.batch_size} of {config.patch_size}x{config.patch_size} patches; "
        f"{task.baseline} on {data.val_name}: {task.metric_label} {baseline_val:.2f} dB")
    try:  # from here an interrupt leaves a checkpoint, the calibrated start's validation included
        interrupts.release()
        if config.qat and step == 0:
            best_weights.parent.mkdir(parents=True, exist_ok=True)
            log(f"calibrated start: validation {task.metric_label} {validate(0, 0.0):.3f} dB")
        clock = time.monotonic()
        while config.progress(step, elapsed) < 1.0:
            interrupts.check()
            progress = config.progress(step, elapsed)
            optimizer.learning_rate.assign(config.learning_rate_at(step, progress))
            loss_name = "l2" if progress >= 1.0 - config.l2_finetune_fraction else "l1"
            lr_batch, hr_batch = next(batches)
            # the EMA's warm-up keeps early averages from clinging to the random initial weights
            ema_decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))
            loss = train_steps[loss_name](lr_batch, hr_batch, tf.constant(ema_decay, tf.float32))
            step += 1
            window_steps += 1
            window_loss += float(loss)
            now = time.monotonic()
            elapsed += now - clock
            clock = now
            progress = config.progress(step, elapsed)
            validating = progress >= next_validation - 1e-9 or progress >= 1.0
            if validating:
                val_psnr = validate(step, elapsed)
                next_validation += validation_interval
                clock = time.monotonic()  # validation time does not count against the budget
            if validating or now - last_log >= 10.0:
                rate = window_steps / max(1e-9, now - window_start)
                metrics.add({"step": step, "loss": window_loss / window_steps, "lr": float(optimizer.learning_rate.numpy()),
                             "loss_name": loss_name, "steps_per_s": rate, "elapsed_s": elapsed})
                eta = (1.0 - progress) * elapsed / max(progress, 1e-9)
                val_text = "  --  " if math.isnan(val_psnr) else f"{val_psnr:6.2f}"
                log(f"step {step:>6} | {loss_name} loss {window_loss / window_steps:8.4f} | "
                    f"lr {float(optimizer.learning_rate.numpy()):.1e} | {rate:5.1f} steps/s | "
                    f"val {val_text} dB ({task.baseline} {baseline_val:.2f}) | "
                    f"{100 * progress:5.1f}% | ETA {_format_duration(eta)}")
                window_start, window_steps, window_loss, last_log = time.monotonic(), 0, 0.0, time.monotonic()
                clock = time.monotonic()
            if now - last_checkpoint >= config.checkpoint_seconds:
                save_checkpoint(step, elapsed)
                last_checkpoint = clock = time.monotonic()
    except KeyboardInterrupt:
        save_checkpoint(step, elapsed)
        raise TrainingInterrupted(
            f"interrupted at step {step}; checkpoint saved, continue with: mobile-sr train --out {run_dir} --resume"
        ) from None

    save_checkpoint(step, elapsed)
    weights_path = run_dir / runs.WEIGHTS_FILE
    final_val = val_psnr
    if config.qat:  # the run ends on a validation, so the best file holds the weights to keep
        if best_weights.exists():  # else a resumed finished run found no better: its weights file holds the best
            best_weights.replace(weights_path)
        if best_step != step:
            val_psnr = best_val
            log(f"keeping the weights of step {best_step} (validation {best_val:.3f} dB) over the last step's "
                f"({final_val:.3f} dB)")
    else:
        _save_weights(ema_model, weights_path)
    train_records = [r for r in metrics.records if "steps_per_s" in r and r["step"] > start_step]
    summary = {
        "model": config.model,
        **({"scale": config.scale} if task.name == "sr" else {}),
        "parameters": parameters,
        "train_data": data.name,
        "val_data": data.val_name,
        "steps": step,
        "train_seconds": round(elapsed, 1),
        "steps_per_s": round(float(np.mean([r["steps_per_s"] for r in train_records])), 2) if train_records else None,
        f"val_{task.metric}": round(val_psnr, 4),
        f"val_{task.baseline}_{task.metric}": round(baseline_val, 4),
        **({"kept_step": best_step, f"final_val_{task.metric}": round(final_val, 4)} if config.qat else {}),
        f"val_gain_over_{task.baseline}_db": round(val_psnr - baseline_val, 4),
    }
    runs.write_json(run_dir / runs.SUMMARY_FILE, summary)
    plot_training_curve(metrics.records, run_dir / runs.CURVE_FILE, title=f"{label} on {data.name}",
                        metric=task.metric, metric_label=task.metric_label, baseline=(task.baseline, baseline_val))
    log(f"done: {step} steps in {_format_duration(elapsed)}; validation {task.metric_label} {val_psnr:.3f} dB, "
        f"{val_psnr - baseline_val:+.3f} dB over {task.baseline}; weights in {weights_path}")
    return summary
