"""Registry-wide model tests: a newly registered model is tested without writing a test."""

import numpy as np
import pytest

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import ConfigError
from mobile_sr.models import build_model, get_model_spec, make_config, model_names


@pytest.fixture(scope="module", params=model_names(task="sr"))
def name(request):
    return request.param


@pytest.fixture(scope="module", params=model_names())
def any_name(request):
    return request.param


def _inputs(name, height, width, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    if get_model_spec(name).task == "sr":
        return rng.uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
    return [rng.uniform(0, 1, (batch, height, width, 6)).astype(np.float32) for _ in range(3)]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shape_and_range(name, scale):
    model = build_model(name, make_config(name, scale=scale))
    lr = np.random.default_rng(0).uniform(0, 255, (2, 11, 13, 3)).astype(np.float32)
    sr = model(lr).numpy()
    assert sr.shape == (2, 11 * scale, 13 * scale, 3)
    assert np.isfinite(sr).all() and sr.min() >= 0 and sr.max() <= 255


def test_hdr_output_shape_and_range():
    for name in model_names(task="hdr"):
        model = build_model(name, make_config(name, **get_model_spec(name).tiny_config))
        output = model(_inputs(name, 16, 24, batch=2)).numpy()
        assert output.shape == (2, 16, 24, 3)
        assert np.isfinite(output).all() and output.min() >= 0 and output.max() <= 1


def test_parameter_budget(any_name):
    spec = get_model_spec(any_name)
    assert build_model(any_name).count_params() <= spec.param_budget


def test_config_round_trip(any_name):
    config = make_config(any_name, **get_model_spec(any_name).tiny_config)
    assert type(config).from_dict(config.to_dict()) == config


def test_keras_config_round_trip(any_name):
    model = build_model(any_name, make_config(any_name, **get_model_spec(any_name).tiny_config))
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    inputs = _inputs(any_name, 8, 8, seed=1)
    np.testing.assert_allclose(clone(inputs).numpy(), model(inputs).numpy(), atol=1e-4)


def test_no_lambda_or_nested_models(any_name):
    for layer in build_model(any_name).layers:
        assert not isinstance(layer, (keras.layers.Lambda, keras.Model)), layer.name


def test_invalid_configs(any_name):
    with pytest.raises(ConfigError, match="channels"):
        make_config(any_name, channels=0)
    with pytest.raises(ConfigError, match="no field"):
        make_config(any_name, colour="red")
    with pytest.raises(ConfigError, match="integer"):
        make_config(any_name, channels=3.0)


def test_sr_scale_is_checked(name):
    with pytest.raises(ConfigError, match="scale"):
        make_config(name, scale=5)


def test_unknown_model_lists_the_registry():
    with pytest.raises(ConfigError, match="registered models: .*scsrn"):
        build_model("nope")


def test_abpn_anchor_is_nearest_neighbour_upscaling():
    model = build_model("abpn", make_config("abpn", scale=2))
    for layer in model.layers:
        if layer.name.startswith("tail_conv2"):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    lr = np.random.default_rng(2).uniform(0, 255, (1, 5, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(model(lr).numpy()[0], lr[0].repeat(2, 0).repeat(2, 1), atol=1e-4)


def test_default_scsrn_has_fewer_convs_than_abpn_and_no_more_parameters():
    # int8 frame time on XNNPACK follows the conv count, not the width (benchmarks/latency.py)
    models = {name: build_model(name, make_config(name)) for name in ("scsrn", "abpn")}
    convs = {name: sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) for name, model in models.items()}
    assert convs == {"scsrn": 5, "abpn": 7}
    assert models["scsrn"].count_params() <= models["abpn"].count_params()
