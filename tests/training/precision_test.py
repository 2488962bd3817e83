"""Mixed-precision training: the model computing in 16 bits keeps float32 weights and output, a run
records its precision and keeps, QATs and exports a float32 model, and "auto" resolves from the
hardware."""

import dataclasses

import numpy as np
import pytest

from mobile_sr import runs
from mobile_sr.core.errors import ConfigError
from mobile_sr.models import build_model, get_model_spec, make_config, model_names
from mobile_sr.training import TrainConfig, train
from mobile_sr.training import precision as precision_module
from mobile_sr.training.precision import float32_layers, resolve_precision, with_precision
from tests.helpers import TINY_SR, raw_run_config, run_cli, tiered, write_raw_run_config


def _tiny_model(name: str, **options):
    return build_model(name, make_config(name, **{**get_model_spec(name).tiny_config, **options}))


def _inputs(model, seed: int = 0):
    rng = np.random.default_rng(seed)
    peak = 255.0 if len(model.inputs) == 1 else 1.0  # SR pixels; HDR exposures in [0, 1]
    arrays = [rng.uniform(0, peak, (2, 32, 32, int(model_input.shape[-1]))).astype(np.float32)
              for model_input in model.inputs]
    return arrays[0] if len(arrays) == 1 else arrays


@pytest.mark.parametrize("name", tiered(model_names(), fast=("scsrn", "hdr_unet")))
def test_a_bfloat16_model_keeps_float32_weights_and_output(name):
    from mobile_sr.core.backend import tf

    model = _tiny_model(name)
    mixed = with_precision(model, "mixed_bfloat16")
    assert [layer.name for layer in mixed.layers] == [layer.name for layer in model.layers]  # checkpoints match
    assert all(weight.dtype == tf.float32 for weight in mixed.weights)
    inputs = _inputs(model)
    with tf.GradientTape() as tape:
        output = mixed(inputs, training=True)
        loss = tf.reduce_mean(tf.abs(output))
    assert output.dtype == tf.float32
    assert all(gradient is not None for gradient in tape.gradient(loss, mixed.trainable_variables))
    reference = model(inputs).numpy()
    # bfloat16 keeps 8 significant bits: within a few steps of 2^-8 of the output's range
    assert np.abs(mixed(inputs).numpy() - reference).max() <= 0.02 * max(1.0, np.abs(reference).max())


def test_the_output_tail_and_the_whitening_compute_in_float32():
    assert float32_layers(_tiny_model("scsrn")) == {"depth_to_space", "clip"}  # not the output conv: it has weights
    assert float32_layers(_tiny_model("abpn")) == {"anchor", "anchor_add", "depth_to_space", "clip"}
    deconvolved = _tiny_model("edsr", deconvolution=True)
    decorrelated = {layer.name for layer in deconvolved.layers if getattr(layer, "needs_float32", False)}
    assert decorrelated and decorrelated <= float32_layers(deconvolved)
    mixed = with_precision(deconvolved, "mixed_bfloat16")
    computing_float32 = {layer.name for layer in mixed.layers[1:] if layer.compute_dtype == "float32"}  # [0]: the input
    assert computing_float32 == float32_layers(deconvolved)


def test_float32_is_the_model_itself():
    model = _tiny_model("scsrn")
    assert with_precision(model, "float32") is model


def test_a_bfloat16_run_records_its_precision_keeps_a_float32_model_and_resumes_in_bfloat16(tiny_sr, tmp_path):
    run_dir = tmp_path / "bf16"
    config = dataclasses.replace(tiny_sr.config, steps=4, precision="mixed_bfloat16")
    summary = train(config, run_dir=run_dir, log=lambda _: None)
    assert np.isfinite(summary["val_psnr_y"])
    assert raw_run_config(run_dir)["train"]["precision"] == "mixed_bfloat16"
    model, _ = runs.load_trained_model(run_dir)  # what eval, QAT and export build
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    assert model(np.zeros((1, 8, 8, 3), np.float32)).shape == (1, 16, 16, 3)
    lines = []
    summary = train(dataclasses.replace(config, steps=6), run_dir=run_dir, resume=True, log=lines.append)
    assert summary["steps"] == 6 and any("in mixed_bfloat16" in line for line in lines)


@pytest.mark.large
def test_qat_of_a_bfloat16_run_trains_in_float32(tiny_sr, tmp_path):
    from mobile_sr.training import finetune

    float_run = tmp_path / "bf16"
    train(dataclasses.replace(tiny_sr.config, steps=4, precision="mixed_bfloat16"), run_dir=float_run, log=lambda _: None)
    finetune(float_run, steps=1, run_dir=tmp_path / "qat", log=lambda _: None)
    assert runs.read_run_config(tmp_path / "qat").train.precision == "float32"


def test_qat_refuses_a_16_bit_precision(tiny_sr):
    with pytest.raises(ConfigError, match="QAT trains in float32.*set precision to float32"):
        TrainConfig(**{**TINY_SR, "init_from": str(tiny_sr.float_run), "qat": True, "precision": "mixed_bfloat16"})
    with pytest.raises(ConfigError, match="precision must be one of float32, mixed_float16, mixed_bfloat16"):
        TrainConfig(precision="auto")  # the CLI resolves auto before a run's config is made


def test_float16_without_a_gpu_is_refused_before_anything_is_written(tiny_sr, tmp_path):
    from mobile_sr.core.backend import tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU runs float16")
    with pytest.raises(ConfigError, match="mixed_float16 runs fast only on NVIDIA GPUs.*train with precision"):
        train(dataclasses.replace(tiny_sr.config, precision="mixed_float16"), run_dir=tmp_path / "run", log=print)
    assert not (tmp_path / "run").exists()


def test_a_float16_step_scales_the_loss_and_moves_float32_weights():
    from mobile_sr.core.backend import keras, tf
    from mobile_sr.objectives.pixel import PixelObjective
    from mobile_sr.training import make_train_step
    from mobile_sr.training.precision import optimizer_for

    config = make_config("scsrn", **get_model_spec("scsrn").tiny_config)
    model = with_precision(build_model("scsrn", config), "mixed_float16")
    ema_model = build_model("scsrn", config)
    optimizer = optimizer_for(keras.optimizers.Adam(1e-3), "mixed_float16")
    assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    step = make_train_step(tf.distribute.get_strategy(), model, ema_model, optimizer, loss_name="l1", global_batch=2,
                           objective=PixelObjective(model, config, 1.0))
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    target = rng.uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    before = [weight.numpy() for weight in model.trainable_weights]
    for _ in range(3):
        loss = step(inputs, target, tf.constant(0.5))
    assert np.isfinite(float(loss))
    after = [weight.numpy() for weight in model.trainable_weights]
    assert all(np.isfinite(weights).all() for weights in after)
    assert any(not np.array_equal(old, new) for old, new in zip(before, after, strict=True))


@pytest.mark.parametrize("flags,hardware,resolved", [
    ("fpu avx512f avx512_bf16 amx_bf16 amx_tile", "amx", "mixed_bfloat16"),
    ("fpu avx512f avx512_bf16", "avx512", "float32"),  # not measured: auto stays float32
    ("fpu avx2", None, "float32"),
])
def test_auto_precision_follows_the_cpu_flags(flags, hardware, resolved, tmp_path, monkeypatch):
    from mobile_sr.core.backend import tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("with a GPU the GPU decides")
    cpu_info = tmp_path / "cpuinfo"
    cpu_info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(precision_module, "CPU_INFO", cpu_info)
    assert precision_module.bf16_hardware() == hardware
    assert resolve_precision("auto") == resolved
    assert resolve_precision("float32") == "float32"


def test_the_train_command_records_the_resolved_precision(tiny_sr, tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "resolve_precision", lambda precision: "mixed_bfloat16")
    result = run_cli("train", "--model", "scsrn", "--scale", "2", "--data", tiny_sr.config.data, "--steps", "1",
                     "--channels", "8", "--option", "feature_convs=2", "--batch-size", "4", "--patch-size", "16",
                     "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert runs.read_run_config(tmp_path / "run").train.precision == "mixed_bfloat16"


def test_runs_stored_before_the_precision_trained_in_float32(run_copy):
    config = raw_run_config(run_copy)
    del config["train"]["precision"]
    write_raw_run_config(run_copy, config)
    assert runs.read_run_config(run_copy).train.precision == "float32"
