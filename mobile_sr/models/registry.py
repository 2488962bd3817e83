"""The model registry: every architecture registers a builder and its config class by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mobile_sr.errors import ConfigError
from mobile_sr.models.config import ModelConfig


TASKS = ("sr", "hdr")
# The range of every model input and output: SR works on pixels, HDR on exposures in [0, 1] and
# the tonemapped HDR image.
VALUE_RANGES = {"sr": (0.0, 255.0), "hdr": (0.0, 1.0)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_class: type[ModelConfig]
    build: Callable[[Any], Any]
    param_budget: int  # most parameters the default config may have: a guard against silent growth
    summary: str
    task: str  # "sr": one LR RGB image in [0, 255]; "hdr": three LDR exposures in, tonemapped HDR out
    tiny_config: dict[str, Any]  # a few-kilobyte variant for the registry-wide end-to-end tests
    # (model, config) -> the same function in its inference form and the config that builds it:
    # training-only structure (reparameterizable blocks, network deconvolution) folded into plain
    # convs. None: the trained model is the inference model.
    deploy: Callable[[Any, Any], tuple[Any, Any]] | None = None

    @property
    def value_range(self) -> tuple[float, float]:
        return VALUE_RANGES[self.task]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, config_class: type[ModelConfig], param_budget: int, summary: str, task: str = "sr",
    tiny_config: dict[str, Any] | None = None, deploy: Callable[[Any, Any], tuple[Any, Any]] | None = None,
):
    """Decorator registering ``build(config) -> keras.Model`` under ``name``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got '{task}'")

    def decorator(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        _REGISTRY[name] = ModelSpec(
            name, config_class, build, param_budget, summary, task, dict(tiny_config or {}), deploy,
        )
        return build

    return decorator


def model_names(task: str | None = None) -> list[str]:
    """Registered model names, all or those of one task ("sr", "hdr")."""
    return sorted(name for name, spec in _REGISTRY.items() if task in (None, spec.task))


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}'; registered models: {', '.join(model_names())}") from None


def make_config(name: str, **values: Any) -> ModelConfig:
    """The config of model ``name`` with ``values`` overriding its defaults (validated)."""
    return get_model_spec(name).config_class.from_dict(values)


def deploy_form(name: str, model, config: ModelConfig):
    """``(model, config)`` in inference form (see ``ModelSpec.deploy``): what QAT fine-tunes and
    export converts. Unchanged for models without training-only structure, or already folded."""
    spec = get_model_spec(name)
    return (model, config) if spec.deploy is None else spec.deploy(model, config)


def build_model(name: str, config: ModelConfig | None = None):
    """Build a fresh (untrained) tf_keras model ``name`` from ``config`` (defaults if None)."""
    spec = get_model_spec(name)
    config = config if config is not None else spec.config_class()
    if not isinstance(config, spec.config_class):
        raise ConfigError(f"model '{name}' needs a {spec.config_class.__name__}, got {type(config).__name__}")
    return spec.build(config)
