"""Training in four stages, for every task and model:

1. :func:`prepare`: the run folder checked (nothing written), the run's config settled (a new run,
   a resumed one, or a fine-tuning of a float run) and the task's data loaded;
2. :func:`build`: the model (or the QAT plan's fake-quantized model), its EMA copy, the
   optimizer, the objectives and the checkpoint, restored when resuming;
3. :func:`fit`: the loop, which writes the run folder, validates, logs and checkpoints;
4. :func:`finalize`: the weights kept, the summary and the training curve.

The learning-rate schedule and the L2 phase follow training *progress*, the larger of
``step / steps`` and ``elapsed / budget``, so one recipe serves step and wall-clock budgets and a
resumed run continues the same schedule. With more than one GPU, training runs under
``tf.distribute.MirroredStrategy`` (batches split across the replicas); across the machines of a
``TF_CONFIG`` cluster, under ``MultiWorkerMirroredStrategy`` (:mod:`mobile_sr.training.cluster`);
otherwise it uses the default strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sr import runs
from mobile_sr.core.errors import ConfigError, DatasetError, MobileSRError, RunFolderError
from mobile_sr.core.files import check_output_path, is_full_disk, write_json
from mobile_sr.core.plots import plot_training_curve
from mobile_sr.core.progress import format_duration
from mobile_sr.data.pipeline import patch_dataset
from mobile_sr.runs import RunConfig, TrainConfig
from mobile_sr.tasks import Task, TaskData, task_of_model
from mobile_sr.training.cluster import ClusterError, Workers, cluster_position, join_workers, lost_worker_problem
from mobile_sr.training.interrupts import InterruptWatch, TrainingInterrupted
from mobile_sr.training.plans import FloatPlan, plan_for
from mobile_sr.training.precision import check_precision_runs_here, optimizer_for, with_precision
from mobile_sr.training.run_folder import (
    DiskFullError,
    MetricsLog,
    check_budget_left,
    check_free_space,
    check_new_run_dir,
    check_same_start,
    create_run_dir,
    remove_unfinished_checkpoints,
    resume_hint,
    weights_bytes,
)
from mobile_sr.training.step import LOSS_PHASES, make_train_step


@dataclass
class PreparedRun:
    """Stage 1's result: where the run goes and what it trains, nothing written yet."""

    run_dir: Path
    resume: bool
    overwrite: bool
    config: TrainConfig
    run_config: RunConfig
    task: Task
    plan: FloatPlan
    data: TaskData
    workers: Workers  # the processes training the run together: this one alone, or a cluster's
    resume_command: str  # how to continue the run once it stopped
    init_model: Any = None  # the trained start's weights, in the form the run trains
    latest_checkpoint: str | None = None  # the checkpoint a resumed run continues from
    metrics: MetricsLog | None = None  # a resumed run's log so far


@dataclass
class TrainingState:
    """Stage 2's result: everything the loop updates."""

    model: Any
    ema_model: Any
    optimizer: Any
    checkpoint: Any
    step_counter: Any
    elapsed_counter: Any
    batches: Any
    train_steps: dict[str, Callable]
    validate: Callable[[], tuple[float, float]]
    baseline_score: float


@dataclass
class FitOutcome:
    """Stage 3's result."""

    start_step: int
    step: int
    elapsed: float
    last_score: float
    metrics: MetricsLog


def default_run_dir(config: TrainConfig, model_config=None) -> Path:
    """``runs/<name>``, the name being the task's for the model (by default the one ``config``'s
    model options build), e.g. ``runs/scsrn-x3``."""
    from mobile_sr.models import make_config

    model_config = model_config or make_config(config.model, **config.model_options)
    return Path("runs") / task_of_model(config.model).run_dir_name(config.model, model_config)


def next_free_run_dir(run_dir: Path) -> Path:
    """``run_dir`` itself while it holds no run, else the first of ``<run_dir>-2``, ``-3``, ...
    that does not exist or is empty: the default folder, so the same command runs again."""
    def free(folder: Path) -> bool:
        empty = not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))
        return empty and not runs.lock_path(folder).exists()  # another command may be about to fill it

    if free(run_dir):
        return run_dir
    number = 2
    while not free(run_dir.with_name(f"{run_dir.name}-{number}")):
        number += 1
    return run_dir.with_name(f"{run_dir.name}-{number}")


def _start_config(config: TrainConfig) -> tuple[Any, RunConfig | None]:
    """The config of the model the run trains, and that of the float run it starts from (None:
    from random weights)."""
    from mobile_sr.models import make_config

    if not config.init_from:
        return make_config(config.model, **config.model_options), None
    init_config = runs.read_run_config(Path(config.init_from))
    if init_config.is_qat:
        raise ConfigError(f"{config.init_from} is a QAT run; start from the float run it came from")
    if init_config.model != config.model:
        wanted = task_of_model(config.model).run_dir_name(config.model, make_config(config.model, **config.model_options))
        raise ConfigError(f"{config.init_from} holds {init_config.name}, not {wanted}")
    return init_config.model_config, init_config


def prepare(config: TrainConfig, *, run_dir: Path | None, resume: bool, overwrite: bool, workers: Workers,
            held: contextlib.ExitStack, log: Callable[[str], None]) -> PreparedRun:
    """Stage 1: lock the run folder for as long as ``held`` lasts, check it, settle the run's
    config, load the start and the data. Writes nothing but the lock.

    Without ``run_dir``, a new run goes to the model's default folder, or to the next numbered
    one when that holds a run already, so that the same command can run again. Of several
    ``workers`` only the chief does so; the others run in a temporary folder that ``held``
    deletes, which holds the files the chief's resumed run starts from."""
    from mobile_sr.core.backend import tf

    command = "mobile-sr qat" if config.qat else "mobile-sr train"
    stored = latest_checkpoint = metrics = None
    if not workers.is_chief:
        run_dir = Path(held.enter_context(tempfile.TemporaryDirectory(prefix="mobile-sr-worker-"))) / "run"
        chief_run_dir, chief_settings = workers.chief_run(run_dir, resume=resume)
    if resume:
        run_dir = run_dir or default_run_dir(config)  # the command line's model picks the folder
        if workers.is_chief:
            held.enter_context(runs.RunLock(run_dir, command))
        stored = runs.read_run_config(run_dir)
        if config.init_from is not None:
            check_same_start(stored, config.init_from, run_dir)
        config = dataclasses.replace(stored.train, steps=config.steps or stored.train.steps,
                                     minutes=config.minutes or stored.train.minutes,
                                     checkpoint_seconds=config.checkpoint_seconds)
        metrics = MetricsLog(run_dir / runs.METRICS_FILE)
        latest_checkpoint = tf.train.latest_checkpoint(str(run_dir / runs.CHECKPOINT_DIR))
        if latest_checkpoint is None:
            raise RunFolderError(f"{run_dir}: nothing to resume (no checkpoint yet); start it again with --overwrite")
        check_budget_left(config, latest_checkpoint, run_dir)
        check_output_path(run_dir / runs.CONFIG_FILE)
    config = config.with_objectives()
    check_precision_runs_here(config.precision)
    task = task_of_model(config.model)
    if config.init_from:
        runs.check_unlocked(Path(config.init_from), action="fine-tune it")
    model_config, init_config = _start_config(config)
    if not resume:
        if run_dir is None:
            default = default_run_dir(config, model_config)
            run_dir = default if overwrite else next_free_run_dir(default)
            if run_dir != default:
                log(f"{default} already holds a run, so this one goes to {run_dir} (continue the earlier one with "
                    f"'mobile-sr train --out {default} --resume', or replace it with --overwrite)")
        if workers.is_chief:
            held.enter_context(runs.RunLock(run_dir, command))
        check_new_run_dir(run_dir, overwrite=overwrite, init_from=config.init_from)
    if workers.is_chief:
        workers.share_run(run_dir, config, resume=resume)
        chief_run_dir = run_dir
    else:
        _check_chief_settings(config, chief_settings, workers)
    plan = plan_for(config, run_dir, task.metric)
    init_model = None
    if init_config is not None:
        init_model, _ = runs.load_trained_model(Path(config.init_from))
        init_model, model_config = plan.start_form(init_model, model_config)
    if resume and (config.model, model_config) != (stored.model, stored.model_config):
        source = f"the run it fine-tunes ({config.init_from}) now holds" if config.init_from else "its training settings give"
        raise RunFolderError(f"{run_dir / runs.CONFIG_FILE}: its model_config differs from the model {source}; "
                             "restore the file, or start the run again with --overwrite")
    task.check_training(config, model_config)
    replicas = workers.strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"batch size {config.batch_size} does not split evenly across the {replicas} replicas (the "
                          f"devices of every worker); train with a --batch-size that is a multiple of {replicas}")
    try:
        data = task.load_data(config.data, config.val_data, seed=config.seed, model_config=model_config, log=log)
    except DatasetError as exc:
        if not (resume or config.init_from):
            raise
        hint = "" if resume else plan.data_hint
        raise DatasetError(f"{exc} (the data '{config.data}' of the run this one continues, from its {runs.CONFIG_FILE}; "
                           f"{runs.RELATIVE_DATA_HINT}{hint})") from None
    log(f"data: {data.name}: {task.describe(data.train)} for training; {data.val_name}: {len(data.val)} for validation")
    run_config = RunConfig(task, config.model, model_config, config)
    resume_command = f"'{resume_hint(chief_run_dir)}'" + (" on every worker" if workers.several else "")
    return PreparedRun(run_dir, resume, overwrite, config, run_config, task, plan, data, workers, resume_command,
                       init_model, latest_checkpoint, metrics)


def _check_chief_settings(config: TrainConfig, chief_settings: dict, workers: Workers) -> None:
    """Refuse to train with other settings than the chief's: every worker must run the same command."""
    settings = json.loads(json.dumps(config.to_dict()))  # as the chief's came: through JSON
    differing = [f"{key} {settings[key]!r} here, {chief_settings.get(key)!r} on the chief" for key in settings
                 if settings[key] != chief_settings.get(key)]
    if differing:
        raise ConfigError(f"worker {workers.index} has other training settings than the chief ({'; '.join(differing)}): "
                          "start every worker with the same command, its data at the same path on each machine")


def build(run: PreparedRun, *, log: Callable[[str], None]) -> TrainingState:
    """Stage 2: build the model the plan trains, its EMA copy, the optimizer, the objectives, the
    checkpoint (restored when resuming), the batches and the validation."""
    from mobile_sr.core.backend import keras, tf
    from mobile_sr.models import build_model
    from mobile_sr.objectives import build_objectives

    config, task, model_config = run.config, run.task, run.run_config.model_config
    strategy = run.workers.strategy
    keras.utils.set_random_seed(config.seed)  # initializers draw from Python, NumPy and TensorFlow seeds
    with strategy.scope():
        model = build_model(config.model, model_config)
        if run.init_model is not None:
            model.set_weights(run.init_model.get_weights())
        # the EMA copy stays a float32 model: the weights a run keeps, validates, QATs and exports
        model = with_precision(run.plan.wrap(model, task=task, data=run.data), config.precision)
        ema_model = runs.build_run_model(run.run_config)
        ema_model.set_weights(model.get_weights())
        shaping = None
        if config.clip_threshold or config.symmetry_strength:
            from mobile_sr.quantization.weights import WeightShaping, conv_kernels

            shaping = WeightShaping(conv_kernels(model), clip_threshold=config.clip_threshold,
                                    symmetry_strength=config.symmetry_strength)
        optimizer = optimizer_for(keras.optimizers.Adam(learning_rate=config.learning_rate), config.precision)
        objective, terms = build_objectives(config.objectives, model, model_config)
        step_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
        elapsed_counter = tf.Variable(0.0, dtype=tf.float64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, ema_model=ema_model, optimizer=optimizer, step=step_counter,
                                     elapsed=elapsed_counter, **objective.checkpointed())
    if run.resume:
        try:
            # partial: the optimizer's slots are restored when the first step creates them
            checkpoint.restore(run.latest_checkpoint).expect_partial()
        except (ValueError, IndexError, tf.errors.OpError) as exc:  # another model's checkpoint, or a damaged one
            raise RunFolderError(runs.checkpoint_problem(run.latest_checkpoint, exc)) from None

    start_step = int(step_counter.numpy())
    channels = tuple(model_input.channels for model_input in task.inputs)

    def worker_batches(context):
        """This worker's shard of the patch stream, in per-replica batches: the global batch of each
        step holds the same patches however many workers and replicas share it."""
        sampler = task.sampler(run.data.train, patch_size=config.patch_size,
                               batch_size=context.get_per_replica_batch_size(config.batch_size),
                               seed=config.seed + start_step)
        if sampler.padding_note:
            log(sampler.padding_note)
        return patch_dataset(sampler, input_channels=channels, shard_index=context.input_pipeline_id,
                             shard_count=context.num_input_pipelines)

    batches = iter(strategy.distribute_datasets_from_function(worker_batches))
    train_steps = {
        loss_name: make_train_step(strategy, model, ema_model, optimizer, loss_name=loss_name,
                                   global_batch=config.batch_size, objective=objective, terms=terms, shaping=shaping)
        for loss_name in LOSS_PHASES
    }
    validate = task.validator(ema_model, model_config, run.data.val, name=config.model, val_name=run.data.val_name)
    baseline_score = task.baseline_score(run.data.val, val_name=run.data.val_name, model_config=model_config)
    return TrainingState(model, ema_model, optimizer, checkpoint, step_counter, elapsed_counter, batches, train_steps,
                         validate, baseline_score)


class _ProgressLog:
    """Every 10 s and at each validation: a metrics record and a progress line with the loss, the
    learning rate, the speed, the last validation and the ETA."""

    INTERVAL_S = 10.0

    def __init__(self, task: Task, metrics: MetricsLog, baseline_score: float, log: Callable[[str], None]):
        self.task, self.metrics, self.baseline_score, self.log = task, metrics, baseline_score, log
        self.start = self.last = time.monotonic()
        self.steps, self.loss = 0, 0.0

    def add(self, loss: float) -> None:
        self.steps += 1
        self.loss += loss

    def due(self, now: float) -> bool:
        return now - self.last >= self.INTERVAL_S

    def write(self, *, now: float, step: int, loss_name: str, learning_rate: float, progress: float, elapsed: float,
              score: float) -> None:
        rate = self.steps / max(1e-9, now - self.start)
        self.metrics.add({"step": step, "loss": self.loss / self.steps, "lr": learning_rate, "loss_name": loss_name,
                          "steps_per_s": rate, "elapsed_s": elapsed})
        eta = (1.0 - progress) * elapsed / max(progress, 1e-9)
        val_text = "  --  " if math.isnan(score) else f"{score:6.2f}"
        self.log(f"step {step:>6} | {loss_name} loss {self.loss / self.steps:8.4f} | lr {learning_rate:.1e} | "
                 f"{rate:5.1f} steps/s | val {val_text} dB ({self.task.baseline} {self.baseline_score:.2f}) | "
                 f"{100 * progress:5.1f}% | ETA {format_duration(eta)}")
        self.start, self.steps, self.loss, self.last = time.monotonic(), 0, 0.0, time.monotonic()


def _open_run_folder(run: PreparedRun, state: TrainingState, start_step: int, log: Callable[[str], None]):
    """Write the run folder (a resumed run's log cut back to its checkpoint): ``(metrics log,
    save_checkpoint(step, elapsed))``. Refused up front when the disk cannot hold the run."""
    from mobile_sr.core.backend import tf

    # model, EMA copy and the optimizer's two moments; two checkpoints are kept, plus the weights files
    checkpoint_bytes = 4 * weights_bytes(state.model)
    check_free_space(run.run_dir, 2 * checkpoint_bytes + 2 * weights_bytes(state.ema_model), "this run")
    if run.resume:
        metrics = run.metrics
        metrics.truncate_after(start_step)
        log(f"resumed {run.run_dir} at step {start_step}")
    else:
        create_run_dir(run.run_dir, overwrite=run.overwrite)
        metrics = MetricsLog(run.run_dir / runs.METRICS_FILE)
    write_json(run.run_dir / runs.CONFIG_FILE, run.run_config.to_dict())
    manager = tf.train.CheckpointManager(state.checkpoint, str(run.run_dir / runs.CHECKPOINT_DIR), max_to_keep=2)

    def save_checkpoint(step: int, elapsed: float) -> None:
        check_free_space(run.run_dir, checkpoint_bytes, "a checkpoint")
        state.step_counter.assign(step)
        state.elapsed_counter.assign(elapsed)
        manager.save(checkpoint_number=step)

    return metrics, save_checkpoint


def fit(run: PreparedRun, state: TrainingState, *, interrupts: InterruptWatch,
        log: Callable[[str], None]) -> FitOutcome:
    """Stage 3: write the run folder, then train until the budget is used, validating, logging
    and checkpointing; an interrupt leaves a checkpoint and raises :class:`TrainingInterrupted`."""
    from mobile_sr.core.backend import tf

    config, task = run.config, run.task
    start_step = int(state.step_counter.numpy())
    # data, model and checkpoint loaded: only now the run folder is written
    interrupts.check()
    interrupts.hold()  # until the try below, which saves a checkpoint: a folder left half set up could not resume
    metrics, save_checkpoint = _open_run_folder(run, state, start_step, log)
    run.plan.start_tracking(metrics)

    def validate(step: int, elapsed: float) -> float:
        score, secondary = state.validate()
        run.plan.after_validation(step, elapsed, score, state.ema_model, save_checkpoint)
        # recorded after the best weights are saved: an interrupt in between never leaves a best record without its weights
        metrics.add({"step": step, f"val_{task.metric}": score, f"val_{task.secondary_metric}": secondary})
        return score

    step = start_step
    elapsed = float(state.elapsed_counter.numpy())
    validation_interval = 1.0 / config.validations
    next_validation = (math.floor(config.progress(step, elapsed) / validation_interval) + 1) * validation_interval
    last_checkpoint = time.monotonic()
    checkpointed = False  # the first checkpoint comes at the first validation: a crash then loses little
    progress_log = _ProgressLog(task, metrics, state.baseline_score, log)
    score = float("nan")
    replicas, workers = run.workers.strategy.num_replicas_in_sync, run.workers
    split = f", split over {replicas} replicas" if replicas > 1 else ""
    log(f"training {run.run_config.name} ({trainable_parameters(state.model):,} parameters) into {run.run_dir}; "
        f"batch {config.batch_size} of {config.patch_size}x{config.patch_size} patches in {config.precision}{split}"
        f"{f' on {workers.count} workers' if workers.several else ''}; "
        f"{task.baseline} on {run.data.val_name}: {task.metric_label} {state.baseline_score:.2f} dB")
    try:  # from here an interrupt leaves a checkpoint, the calibrated start's validation included
        if not workers.several:  # several workers stop together, at the step they agree on (below)
            interrupts.release()
        if run.plan.validates_start and step == 0:
            log(f"calibrated start: validation {task.metric_label} {validate(0, 0.0):.3f} dB")
        clock = time.monotonic()
        while config.progress(step, elapsed) < 1.0:
            if not workers.several:  # a Ctrl-C Python dropped (several workers: the agreed stop below)
                interrupts.check()
            progress = config.progress(step, elapsed)
            state.optimizer.learning_rate.assign(config.learning_rate_at(step, progress))
            loss_name = "l2" if progress >= 1.0 - config.l2_finetune_fraction else "l1"
            inputs, target = next(state.batches)
            # the EMA's warm-up keeps early averages from clinging to the random initial weights
            ema_decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))
            loss = state.train_steps[loss_name](inputs, target, tf.constant(ema_decay, tf.float32))
            step += 1
            progress_log.add(float(loss))
            now = time.monotonic()
            elapsed += now - clock
            clock = now
            # what the budget, the schedule, validations and checkpoints follow: the same on every worker
            elapsed, checkpoint_due, stopping = workers.agree(
                elapsed, checkpoint_due=now - last_checkpoint >= config.checkpoint_seconds, stop=interrupts.requested)
            if stopping:  # a Ctrl-C on any of the workers, or one Python dropped during the step
                raise KeyboardInterrupt
            progress = config.progress(step, elapsed)
            validating = progress >= next_validation - 1e-9 or progress >= 1.0
            if validating:
                score = validate(step, elapsed)
                next_validation += validation_interval
                clock = time.monotonic()  # validation time does not count against the budget
            if validating or progress_log.due(now):
                progress_log.write(now=now, step=step, loss_name=loss_name, progress=progress, elapsed=elapsed,
                                   learning_rate=float(state.optimizer.learning_rate.numpy()), score=score)
                clock = time.monotonic()
            if (validating and not checkpointed) or checkpoint_due:
                save_checkpoint(step, elapsed)
                checkpointed, last_checkpoint, clock = True, time.monotonic(), time.monotonic()
    except KeyboardInterrupt:
        save_checkpoint(step, elapsed)
        raise TrainingInterrupted(
            f"interrupted at step {step}; checkpoint saved, continue with {run.resume_command}"
        ) from None
    save_checkpoint(step, elapsed)
    if math.isnan(score):  # resumed after its last step (its final save had failed): the weights are unchanged
        score = _last_validation(metrics, step, task.metric) or validate(step, elapsed)
    return FitOutcome(start_step, step, elapsed, score, metrics)


def _last_validation(metrics: MetricsLog, step: int, metric: str) -> float | None:
    """The validation score logged at ``step``, if any."""
    return next((r[f"val_{metric}"] for r in reversed(metrics.records)
                 if r["step"] == step and f"val_{metric}" in r), None)


def finalize(run: PreparedRun, state: TrainingState, outcome: FitOutcome, *, log: Callable[[str], None]) -> dict[str, Any]:
    """Stage 4: keep the plan's weights, write the summary and the training curve."""
    task, baseline = run.task, run.task.baseline
    kept_score, choice = run.plan.keep_weights(state.ema_model, step=outcome.step, last_score=outcome.last_score, log=log)
    train_records = [r for r in outcome.metrics.records if "steps_per_s" in r and r["step"] > outcome.start_step]
    summary = {
        "model": run.config.model,
        **task.summary_fields(run.run_config.model_config),
        "parameters": trainable_parameters(state.model),
        "train_data": run.data.name,
        "val_data": run.data.val_name,
        "steps": outcome.step,
        "train_seconds": round(outcome.elapsed, 1),
        "steps_per_s": round(float(np.mean([r["steps_per_s"] for r in train_records])), 2) if train_records else None,
        f"val_{task.metric}": round(kept_score, 4),
        f"val_{baseline}_{task.metric}": round(state.baseline_score, 4),
        **choice,
        f"val_gain_over_{baseline}_db": round(kept_score - state.baseline_score, 4),
    }
    write_json(run.run_dir / runs.SUMMARY_FILE, summary)
    plot_training_curve(outcome.metrics.records, run.run_dir / runs.CURVE_FILE,
                        title=f"{run.run_config.name}{' QAT' if run.run_config.is_qat else ''} on {run.data.name}", metric=task.metric,
                        metric_label=task.metric_label, baseline=(baseline, state.baseline_score))
    log(f"done: {outcome.step} steps in {format_duration(outcome.elapsed)}; validation {task.metric_label} "
        f"{kept_score:.3f} dB, {kept_score - state.baseline_score:+.3f} dB over {baseline}; weights in "
        f"{run.run_dir / runs.WEIGHTS_FILE}")
    return summary


def train(config: TrainConfig, *, run_dir: Path | None = None, resume: bool = False, overwrite: bool = False,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``config.model`` into ``run_dir`` and return the run summary (also in summary.json).

    With ``resume``, the run in ``run_dir`` continues with its stored config; only ``config``'s
    budget (steps, minutes), where set, replaces the stored one. Nothing is written to ``run_dir``
    before the data, the model and the checkpoint have loaded.

    With a ``TF_CONFIG`` cluster of several workers, every worker calls this with the same
    arguments; the chief's ``run_dir`` holds the run, and only the chief logs."""
    from mobile_sr.core.backend import tf

    position = cluster_position()
    if position.workers > 1 and config.qat:
        raise ConfigError("quantization-aware training runs on one machine: unset TF_CONFIG, or give it one worker")
    workers = join_workers(position, log)  # first: a multi-worker strategy must set TensorFlow up itself
    if not workers.is_chief:
        log = _quiet
    lost_worker = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) if workers.several else ()
    with InterruptWatch() as interrupts, contextlib.ExitStack() as held:
        try:
            run = prepare(config, run_dir=None if run_dir is None else Path(run_dir), resume=resume,
                          overwrite=overwrite, workers=workers, held=held, log=log)
            state = build(run, log=log)
        except MobileSRError as exc:
            workers.tell_failure(str(exc))  # the others may be waiting for the chief's run
            raise
        except lost_worker as exc:
            raise ClusterError(f"{lost_worker_problem(exc)} before training began; start every worker again") from None
        try:
            outcome = fit(run, state, interrupts=interrupts, log=log)
            return finalize(run, state, outcome, log=log)
        except lost_worker as exc:
            raise ClusterError(_stopped_run_message(run, lost_worker_problem(exc), "stop every worker")) from None
        except (OSError, tf.errors.OpError, DiskFullError) as exc:
            if not (isinstance(exc, DiskFullError) or is_full_disk(exc)):
                raise
            problem = str(exc) if isinstance(exc, DiskFullError) else f"the disk holding {run.run_dir} is full"
            raise DiskFullError(_stopped_run_message(run, problem, "free space")) from None


def _quiet(_message: str) -> None:
    """The log of a worker other than the chief, which reports for all of them."""


def _stopped_run_message(run: PreparedRun, problem: str, remedy: str) -> str:
    """Clean up after a save that ``problem`` broke and say how to go on: ``remedy``, then resume."""
    from mobile_sr.core.backend import tf

    remove_unfinished_checkpoints(run.run_dir)
    checkpoint = tf.train.latest_checkpoint(str(run.run_dir / runs.CHECKPOINT_DIR))
    if checkpoint is None:
        if not run.resume and run.run_dir.is_dir():  # nothing to resume from: leave no half-made run behind
            shutil.rmtree(run.run_dir, ignore_errors=True)
        return f"{problem}; no checkpoint was written, so no run was kept: {remedy} and start it again"
    step = checkpoint.rsplit("-", 1)[-1]
    return f"{problem}; the checkpoint of step {step} is kept: {remedy}, then continue with {run.resume_command}"


def trainable_parameters(model) -> int:
    """Trainable parameters only: running statistics (e.g. network deconvolution's D matrices) are not."""
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
