"""GradNorm (Chen et al., ICML 2018): learned weights that balance the losses of a multi-task net.

The net trains on ``sum_i w_i L_i``. GradNorm moves the weights ``w_i`` so that each task pulls
on the last shared layer's weights (parameters ``theta``) with a strength that fits how far the
task still has to go:

* ``G_i = ||grad_theta (w_i L_i)||``, the pull of task i, and ``G_avg`` their mean;
* ``r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))``, its relative inverse training rate: above 1
  for a task whose loss fell less than the others' since the start;
* the target pull ``G_avg * r_i ** alpha``, a constant for the update: ``alpha`` sets how hard
  slow tasks are pushed (0: equal pulls);
* the weights descend ``sum_i |G_i - target_i|``, then are rescaled to sum to the task count.

``w_i > 0`` makes ``G_i = w_i ||grad_theta L_i||``, so the update needs each task's gradient
norm on ``theta`` once and no second-order gradients. The attention SR paper balances its
structure and texture losses this way.
"""

from __future__ import annotations

from collections.abc import Sequence

from mobile_sr.core.backend import keras, tf

# Weights are kept at least this large before rescaling: G_i = w_i ||grad L_i|| needs w_i > 0,
# and a task whose weight reached 0 would get no pull to grow it back.
MIN_TASK_WEIGHT = 1e-3


class GradNorm(tf.Module):
    """GradNorm's task weights and their update, for a custom training step (checkpoint it with
    the model: it holds the weights, the initial losses and its optimizer's state).

    In a step, under a *persistent* ``tf.GradientTape``, compute the task losses and train the
    net on :meth:`weighted_loss`; then call :meth:`update` with the same tape, the losses and the
    last shared layer's weights. ``learning_rate`` is that of the weights' Adam (the paper: 0.025).
    """

    def __init__(self, task_count: int, *, alpha: float = 1.5, learning_rate: float = 0.025, name: str = "gradnorm"):
        super().__init__(name=name)
        if task_count < 2:
            raise ValueError(f"GradNorm balances 2 or more task losses, got task_count={task_count}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0 (0: equal gradient norms), got {alpha}")
        self.task_count = int(task_count)
        self.alpha = float(alpha)
        self.task_weights = tf.Variable(tf.ones([task_count]), name="task_weights")
        self.initial_losses = tf.Variable(tf.zeros([task_count]), trainable=False, name="initial_losses")
        self.started = tf.Variable(False, trainable=False, name="started")
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build([self.task_weights])  # its slots now exist, also when update() is traced

    def _stack(self, losses: Sequence) -> tf.Tensor:
        if len(losses) != self.task_count:
            raise ValueError(f"expected {self.task_count} task losses, got {len(losses)}")
        return tf.stack([tf.convert_to_tensor(loss, tf.float32) for loss in losses])

    def weighted_loss(self, losses: Sequence) -> tf.Tensor:
        """``sum_i w_i L_i``, the net's loss; the weights are constants here (only
        :meth:`update` changes them)."""
        return tf.reduce_sum(tf.stop_gradient(self.task_weights) * self._stack(losses))

    def update(self, tape: tf.GradientTape, losses: Sequence, shared_variables: Sequence) -> dict[str, tf.Tensor]:
        """One GradNorm step on the weights, from the task losses of this training step (computed
        under the persistent ``tape``) and the last shared layer's weights. Returns the GradNorm
        loss, the gradient norms ``G_i`` and the rates ``r_i`` (before the step) for logging."""
        norms = []
        for index, loss in enumerate(losses):
            gradients = tape.gradient(loss, shared_variables)
            if any(gradient is None for gradient in gradients):
                raise ValueError(f"task loss {index} does not depend on the shared variables; pass the weights "
                                 "of the last layer all tasks share")
            norms.append(tf.linalg.global_norm(gradients))
        task_losses = tf.stop_gradient(self._stack(losses))
        initial = tf.where(self.started, self.initial_losses, task_losses)
        self.initial_losses.assign(initial)
        self.started.assign(True)
        ratios = tf.math.divide_no_nan(task_losses, initial)
        rates = tf.math.divide_no_nan(ratios, tf.reduce_mean(ratios))
        with tf.GradientTape() as weight_tape:
            pulls = self.task_weights * tf.stack(norms)
            targets = tf.stop_gradient(tf.reduce_mean(pulls) * rates**self.alpha)
            gradnorm_loss = tf.reduce_sum(tf.abs(pulls - targets))
        self.optimizer.apply_gradients([(weight_tape.gradient(gradnorm_loss, self.task_weights), self.task_weights)])
        positive = tf.maximum(self.task_weights, MIN_TASK_WEIGHT)
        self.task_weights.assign(positive * (self.task_count / tf.reduce_sum(positive)))
        return {"gradnorm_loss": gradnorm_loss, "gradient_norms": pulls, "training_rates": rates}
