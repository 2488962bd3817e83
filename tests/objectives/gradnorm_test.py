"""GradNorm on toy two-task regressions: the weights move the way the method intends."""

import numpy as np
import pytest

from mobile_sr.core.backend import keras, tf
from mobile_sr.objectives.gradnorm import GradNorm


def _train_toy(target_noise=(0.0, 0.0), loss_scales=(1.0, 1.0), steps=150):
    """Two linear regressions from one shared layer; returns the task-weight history. Noise in a
    target is error no net can remove, so that task's loss falls more slowly."""
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(256, 8)).astype(np.float32)
    targets = [inputs @ rng.normal(size=(8, 1)).astype(np.float32) + noise * rng.normal(size=(256, 1)).astype(np.float32)
               for noise in target_noise]
    shared = keras.layers.Dense(8, name="shared")
    heads = [keras.layers.Dense(1, name=f"head{i}") for i in range(2)]
    shared.build((None, 8))
    for head in heads:
        head.build((None, 8))
    variables = shared.trainable_weights + [w for head in heads for w in head.trainable_weights]
    optimizer = keras.optimizers.Adam(0.01)
    balancer = GradNorm(2, alpha=1.5, learning_rate=0.025)

    @tf.function
    def step():
        with tf.GradientTape(persistent=True) as tape:
            features = shared(inputs)
            losses = [scale * tf.reduce_mean(tf.square(head(features) - target))
                      for head, target, scale in zip(heads, targets, loss_scales, strict=True)]
            total = balancer.weighted_loss(losses)
        optimizer.apply_gradients(zip(tape.gradient(total, variables), variables, strict=True))
        balancer.update(tape, losses, shared.trainable_weights)
        del tape

    history = []
    for _ in range(steps):
        step()
        history.append(balancer.task_weights.numpy().copy())
    return np.array(history)


def test_the_task_that_trains_slower_gets_more_weight():
    history = _train_toy(target_noise=(1.0, 3.0))  # noise keeps ~1/2 of loss 1, ~1/9 of loss 0
    np.testing.assert_allclose(history.sum(axis=1), 2.0, rtol=1e-5)
    assert history[-1, 1] > 1.5 > 0.5 > history[-1, 0]
    assert history[30, 1] < history[75, 1] < history[-1, 1]  # gaining while task 0 outpaces it


def test_a_loss_on_a_larger_scale_is_weighted_down_to_balance_the_gradients():
    history = _train_toy(loss_scales=(1.0, 100.0))
    assert history[-1, 1] < 0.2 and history[-1, 0] > 1.8


def test_weighted_loss_uses_the_weights_and_update_needs_the_shared_layer():
    balancer = GradNorm(2)
    balancer.task_weights.assign([0.5, 1.5])
    assert float(balancer.weighted_loss([2.0, 4.0])) == pytest.approx(7.0)
    unrelated = tf.Variable(1.0)
    shared = tf.Variable(2.0)
    with tf.GradientTape(persistent=True) as tape:
        losses = [shared * 3.0, shared**2]
    with pytest.raises(ValueError, match="does not depend on the shared variables"):
        balancer.update(tape, losses, [unrelated])
    with pytest.raises(ValueError, match="GradNorm balances 2 or more"):
        GradNorm(1)
