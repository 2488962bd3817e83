"""The multi-device train step (``MirroredStrategy``, chosen with more than one GPU), run on two
logical CPU devices: one distributed step equals one single-device step on the same global batch."""

import json
import subprocess
import sys
import textwrap

import pytest

# Logical devices must be set before TensorFlow touches a device, so the comparison runs in a
# fresh process.
_PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mobile_sr.core.backend import keras, tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mobile_sr.models import build_model, make_config
    from mobile_sr.objectives import build_objectives
    from mobile_sr.quantization.weights import WeightShaping, conv_kernels
    from mobile_sr.training import make_train_step

    model_name, options, objectives, shaping_on = json.loads(sys.argv[1])
    config = make_config(model_name, **options)
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0, 255, (4, 12, 12, 3)).astype(np.float32)
    target = rng.uniform(0, 255, (4, 12 * config.scale, 12 * config.scale, 3)).astype(np.float32)

    def one_step(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model, ema_model = build_model(model_name, config), build_model(model_name, config)
            ema_model.set_weights(model.get_weights())
            optimizer = keras.optimizers.Adam(1e-3)
            objective, terms = build_objectives(objectives, model, config)
            shaping = WeightShaping(conv_kernels(model), clip_threshold=2.0, symmetry_strength=1e-2) if shaping_on else None
        step = make_train_step(strategy, model, ema_model, optimizer, loss_name="l1", global_batch=4,
                               objective=objective, terms=terms, shaping=shaping)
        batch = tf.data.Dataset.from_tensors((inputs, target))
        (distributed_inputs, distributed_target), = strategy.experimental_distribute_dataset(batch)
        loss = step(distributed_inputs, distributed_target, tf.constant(0.5))
        return float(loss), [w.numpy() for w in model.weights], [w.numpy() for w in ema_model.weights]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    single_loss, single_weights, single_ema = one_step(tf.distribute.get_strategy())
    mirrored_loss, mirrored_weights, mirrored_ema = one_step(mirrored)
    print(json.dumps({
        "losses": [single_loss, mirrored_loss],
        "weights_moved": max(float(np.abs(a - b).max()) for a, b in zip(single_weights, single_ema)),
        "weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(single_weights, mirrored_weights)),
        "ema_difference": max(float(np.abs(a - b).max()) for a, b in zip(single_ema, mirrored_ema)),
    }))
""")


@pytest.mark.parametrize("model_name,options,objectives,shaping", [
    ("scsrn", {"scale": 2, "channels": 8, "feature_convs": 2}, {"pixel": 1.0, "high_frequency": 0.5}, True),
])
def test_a_mirrored_step_on_two_devices_equals_a_single_device_step(model_name, options, objectives, shaping):
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([model_name, options, objectives, shaping])],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    single_loss, mirrored_loss = measured["losses"]
    assert mirrored_loss == pytest.approx(single_loss, rel=1e-5)
    assert measured["weights_moved"] > 1e-5  # the step did change the weights
    assert measured["weight_difference"] < 1e-5 and measured["ema_difference"] < 1e-5
