"""The compiled train step, and a measurement of its speed with the real input pipeline."""

from __future__ import annotations

import time

from mobile_sr.data.pipeline import patch_dataset

LOSS_PHASES = ("l1", "l2")  # the distance of a step: L1, or L2 in a run's L2 phase


def make_train_step(strategy, model, ema_model, optimizer, *, loss_name: str, global_batch: int, objective,
                    terms=(), shaping=None):
    """A compiled ``step(inputs, target, ema_decay) -> loss``: one optimizer step on ``model``
    (``objective``'s loss, which produces the output, plus each of ``terms`` weighted on that
    output, plus the weight-shaping penalty), the weight clip if any, then ``ema_model``'s
    weights move toward ``model``'s by ``1 - ema_decay``. ``loss_name``: "l1" or "l2", the
    distance the pixel losses take."""
    from mobile_sr.core.backend import tf

    replicas = strategy.num_replicas_in_sync

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
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        objective.after_step(tape, state)
        del tape
        return loss

    @tf.function
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


def measure_step_time(
    model_name: str, pairs, *, scale: int, batch_size: int = 16, patch_size: int = 64, steps: int = 200,
) -> dict[str, float]:
    """Seconds per training step of an SR model fed by the real input pipeline and by one cached
    in-memory batch. Their ratio shows whether the pipeline starves training (1.0: not at all)."""
    from mobile_sr.core.backend import keras, tf
    from mobile_sr.models import build_model, make_config
    from mobile_sr.objectives.pixel import PixelObjective
    from mobile_sr.tasks.sr.patches import PatchSampler

    strategy = tf.distribute.get_strategy()
    config = make_config(model_name, scale=scale)
    model, ema_model = build_model(model_name, config), build_model(model_name, config)
    step = make_train_step(strategy, model, ema_model, keras.optimizers.Adam(1e-4), loss_name="l1",
                           global_batch=batch_size, objective=PixelObjective(model, config, 1.0))
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
