"""Attention SR: every attention variant, its branch outputs for the two losses, and its int8
graph (the registry-wide tests cover the default attention only)."""

import numpy as np
import pytest

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import ConfigError
from mobile_sr.export import convert, inspect, verify
from mobile_sr.models import build_model, get_model_spec, make_config
from mobile_sr.models.attention_sr import ATTENTIONS, SHARED_LAYER, branch_outputs_view, shared_variables
from mobile_sr.quantization.qat import quantize_for_training
from mobile_sr.quantization.weights import conv_kernels
from mobile_sr.tasks import get_task
from mobile_sr.tasks.sr.runner import TFLiteUpscaler


def _tiny(attention: str, **values):
    return build_model("attention_sr", make_config("attention_sr", **{**get_model_spec("attention_sr").tiny_config,
                                                                       "attention": attention, **values}))


def _lr(seed=0, shape=(2, 10, 12, 3)):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def test_untrained_net_is_nearest_neighbour_upscaling_split_into_structure_and_zero_texture():
    lr = _lr()
    sr, structure, texture = (output.numpy() for output in branch_outputs_view(_tiny("channel", scale=3))(lr))
    nearest = lr.repeat(3, axis=1).repeat(3, axis=2)
    np.testing.assert_allclose(structure, nearest, atol=1e-3)
    np.testing.assert_array_equal(texture, 0.0)
    np.testing.assert_allclose(sr, nearest, atol=1e-3)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_output_is_the_clipped_sum_of_the_branches(attention):
    model = _tiny(attention)
    for kernel in conv_kernels(model):  # every branch and attention path contributes
        kernel.assign(kernel + np.random.default_rng(1).normal(0, 0.1, kernel.shape).astype(np.float32))
    sr, structure, texture = (output.numpy() for output in branch_outputs_view(model)(_lr()))
    assert np.abs(texture).max() > 1.0
    np.testing.assert_allclose(sr, np.clip(structure + texture, 0, 255), atol=1e-3)
    np.testing.assert_array_equal(sr, model(_lr()).numpy())


def test_attention_layers_follow_the_config():
    names = {attention: {layer.name for layer in _tiny(attention).layers} for attention in ATTENTIONS}
    block = "structure_group1_block1_attention"
    assert not any("attention" in name for name in names["none"])
    assert {f"{block}_pool", f"{block}_reduce", f"{block}_expand", f"{block}_sigmoid", f"{block}_apply"} <= names["channel"]
    assert {f"{block}_map", f"{block}_sigmoid"} <= names["spatial"] and f"{block}_conv1" not in names["spatial"]
    model = _tiny("multi_spatial", spatial_width=32)
    assert [model.get_layer(f"{block}_conv{i}").kernel.shape for i in (1, 2, 3)] == [(7, 7, 4, 32), (5, 5, 32, 16), (3, 3, 16, 8)]
    assert model.get_layer(f"{block}_map").kernel.shape == (1, 1, 8, 1)


def test_channel_attention_squeezes_by_the_reduction():
    model = _tiny("channel", channels=8, reduction=4)
    assert model.get_layer("texture_group1_block1_attention_reduce").kernel.shape == (1, 1, 8, 2)


def test_invalid_attention_and_reduction_name_the_field():
    with pytest.raises(ConfigError, match="attention must be one of none, channel, spatial, multi_spatial"):
        make_config("attention_sr", attention="both")
    with pytest.raises(ConfigError, match="reduction"):
        make_config("attention_sr", channels=8, reduction=16)


def test_shared_variables_are_the_feature_convs_also_in_the_qat_model():
    model = _tiny("spatial")
    assert [v.name for v in shared_variables(model)] == [v.name for v in model.get_layer(SHARED_LAYER).trainable_weights]
    qat_model = quantize_for_training(model)
    assert [tuple(v.shape) for v in shared_variables(qat_model)] == [(3, 3, 3, 4), (4,)]
    sr, structure, texture = branch_outputs_view(qat_model)(_lr())
    assert structure.shape == texture.shape == sr.shape == (2, 20, 24, 3)


@pytest.mark.large
@pytest.mark.parametrize("attention", ["channel", "multi_spatial"])  # "spatial" is multi_spatial's one-layer case
def test_attention_converts_to_a_full_integer_graph_that_matches(attention, tmp_path):
    model = _tiny(attention)
    rng = np.random.default_rng(0)
    for kernel in conv_kernels(model):  # no zero upsamplers: every attention path reaches the output
        kernel.assign(0.2 * kernel + rng.normal(0, 0.02, kernel.shape).astype(np.float32))
    calibration = _lr(seed=2, shape=(4, 12, 16, 3))
    qat_model = quantize_for_training(model, calibration)
    qat_model(calibration, training=True)
    path = tmp_path / f"{attention}.tflite"
    path.write_bytes(convert(qat_model, mode="int8", input_size=(12, 16)))
    report = inspect(path)
    verify(path, report, task=get_task("sr"), mode="int8", io_type="uint8")  # full integer, uint8 I/O, runs
    assert "QUANTIZE" not in report["ops"][1:-1], "no requantize inside the graph (sigmoid, LeakyReLU, MEAN, MUL)"
    assert {"LOGISTIC", "MUL"} <= set(report["ops"])
    lr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    expected = qat_model(lr[None].astype(np.float32), training=False).numpy()[0]
    error = np.abs(TFLiteUpscaler(path).upscale_float(lr) - expected)
    assert error.mean() < 1.0 and error.max() <= 3.01


def test_a_gradnorm_training_step_on_the_structure_and_texture_losses():
    from mobile_sr.core.backend import tf
    from mobile_sr.objectives.gradnorm import GradNorm
    from mobile_sr.tasks.sr.decomposition import structure_texture

    model = _tiny("channel")
    view = branch_outputs_view(model)
    optimizer = keras.optimizers.Adam(1e-3)
    balancer = GradNorm(2)
    lr = _lr(shape=(2, 8, 8, 3))
    structure_target, texture_target = structure_texture(np.random.default_rng(4).integers(0, 256, (2, 16, 16, 3)))

    def step():
        with tf.GradientTape(persistent=True) as tape:
            _, structure, texture = view(lr, training=True)
            losses = [tf.reduce_mean(tf.abs(structure - structure_target)), tf.reduce_mean(tf.abs(texture - texture_target))]
            total = balancer.weighted_loss(losses)
        optimizer.apply_gradients(zip(tape.gradient(total, model.trainable_variables), model.trainable_variables, strict=True))
        report = balancer.update(tape, losses, shared_variables(model))
        del tape
        return report

    for _ in range(3):  # the zero upsamplers give the shared layer no gradient in the first step
        report = step()
    assert (report["gradient_norms"].numpy() > 0).all()
    assert float(tf.reduce_sum(balancer.task_weights)) == pytest.approx(2.0)
    assert not np.allclose(balancer.task_weights.numpy(), 1.0)
