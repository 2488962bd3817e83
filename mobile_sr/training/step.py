"""The compiled train step, and measurements of its speed: per precision, with XLA or not, and fed by
the real input pipeline or a cached batch."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from mobile_sr.data.pipeline import patch_dataset

LOSS_PHASES = ("l1", "l2")  # the distance of a step: L1, or L2 in a run's L2 phase


def make_train_step(strategy, model, ema_model, optimizer, *, loss_name: str, global_batch: int, objective,
                    terms=(), shaping=None, jit_compile: bool = False):
    """A compiled ``step(inputs, target, ema_decay) -> loss``: one optimizer step on ``model``
    (``objective``'s loss, which produces the output, plus each of ``terms`` weighted on that
    output, plus the weight-shaping penalty), the weight clip if any, then ``ema_model``'s
    weights move toward ``model``'s by ``1 - ema_decay``. ``loss_name``: "l1" or "l2", the
    distance the pixel losses take. A ``LossScaleOptimizer`` (float16) scales the loss and
    unscales the gradients, and skips steps whose gradients overflowed. ``jit_compile``: compile
    with XLA (slower on the CPU, as benchmarks/float_training.py measures, so training leaves it off)."""
    from mobile_sr.core.backend import keras, tf

    replicas = strategy.num_replicas_in_sync
    loss_scaled = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)

    def distance(error, axis=None):
        return tf.reduce_mean(tf.abs(error) if loss_name == "l1" else tf.square(error), axis=axis)

    def replica_step(inputs, target):
        with tf.GradientTape(persistent=objective.persistent_tape) as tape:
            output, loss, state = objective.output_and_loss(inputs, target, distance, global_batch=global_batch,
                                                            replicas=replicas)
            for term in terms:
                loss += term.weight * term.term(target, output) / replicas
            if shaping is not None:
                loss += shaping.penalty() / replicas
            # float16 gradients underflow: the loss is scaled up under the tape, the gradients back down
            scaled_loss = optimizer.get_scaled_loss(loss) if loss_scaled else loss
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        if loss_scaled:
            gradients = optimizer.get_unscaled_gradients(gradients)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        objective.after_step(tape, state)
        del tape
        return loss

    @tf.function(jit_compile=jit_compile)
    def train_step(inputs, target, ema_decay):
        loss = strategy.reduce("SUM", strategy.run(replica_step, args=(inputs, target)), axis=None)
        if shaping is not None:
            shaping.apply_clip()
        for average, weight in zip(ema_model.weights, model.weights, strict=True):
            if weight.dtype.is_floating:
                average.assign(ema_decay * average + (1.0 - ema_decay) * weight)
            else:  # counters, e.g. the QAT wrappers' step
                average.assign(weight)
        return loss

    return train_step


def sr_train_step(model_name: str, *, scale: int, batch_size: int = 16, precision: str = "float32",
                  jit_compile: bool = False):
    """``step(inputs, target) -> loss``: the compiled train step (L1, Adam, EMA) of a freshly built
    SR model computing in ``precision``, with XLA if ``jit_compile``; for timing."""
    from mobile_sr.core.backend import keras, tf
    from mobile_sr.models import build_model, make_config
    from mobile_sr.objectives.pixel import PixelObjective
    from mobile_sr.training.precision import optimizer_for, with_precision

    config = make_config(model_name, scale=scale)
    model, ema_model = with_precision(build_model(model_name, config), precision), build_model(model_name, config)
    step = make_train_step(tf.distribute.get_strategy(), model, ema_model,
                           optimizer_for(keras.optimizers.Adam(1e-4), precision), loss_name="l1", global_batch=batch_size,
                           objective=PixelObjective(model, config, 1.0), jit_compile=jit_compile)
    decay = tf.constant(0.999)
    return lambda inputs, target: step(inputs, target, decay)


def seconds_per_step(runs: dict[str, Callable[[], Any]], *, rounds: int = 5, steps: int = 20,
                     warmup: int = 5) -> dict[str, float]:
    """The median seconds per call of each of ``runs`` (name -> one train step, returning its
    loss), timed interleaved: each of ``rounds`` times every run for ``steps`` calls, so that load
    from elsewhere on a shared machine hits all of them alike."""
    for run in runs.values():
        for _ in range(warmup):  # tracing, and the first allocations
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(steps):
                loss = run()
            float(loss)  # waits for the last step
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def measure_step_time(model_name: str, pairs, *, scale: int, batch_size: int = 16, patch_size: int = 64,
                      steps: int = 200, rounds: int = 5, precision: str = "float32") -> dict[str, Any]:
    """Seconds per training step of an SR model in ``precision`` fed by the real input pipeline
    and by one cached in-memory batch, ``steps`` of each timed in ``rounds`` interleaved
    (:func:`seconds_per_step`). Their ratio shows whether the pipeline starves training
    (overhead 0: not at all)."""
    from mobile_sr.tasks.sr.patches import PatchSampler

    step = sr_train_step(model_name, scale=scale, batch_size=batch_size, precision=precision)
    batches = iter(patch_dataset(PatchSampler(pairs, patch_size=patch_size, batch_size=batch_size, seed=0)))
    cached = next(batches)
    timed = seconds_per_step({"cached": lambda: step(*cached), "pipeline": lambda: step(*next(batches))},
                             rounds=rounds, steps=max(1, steps // rounds))
    return {
        "model": model_name, "precision": precision, "batch_size": batch_size, "patch_size": patch_size, "steps": steps,
        "seconds_per_step_pipeline": timed["pipeline"], "seconds_per_step_cached": timed["cached"],
        "steps_per_s_pipeline": 1.0 / timed["pipeline"], "pipeline_overhead": timed["pipeline"] / timed["cached"] - 1.0,
    }
