"""The model registry: every architecture registers a builder and its config class by name,
with the task it serves (:mod:`mobile_sr.tasks`) and the training objectives it trains with by
default (:mod:`mobile_sr.objectives`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mobile_sr.core.errors import ConfigError
from mobile_sr.models.config import ModelConfig
from mobile_sr.tasks import get_task, task_names

DEFAULT_OBJECTIVES = {"pixel": 1.0}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_class: type[ModelConfig]
    build: Callable[[Any], Any]
    param_budget: int  # most parameters the default config may have: a guard against silent growth
    summary: str
    task: str  # the registered task whose inputs and outputs the model has, e.g. "sr", "hdr"
    tiny_config: dict[str, Any]  # a few-kilobyte variant for the registry-wide end-to-end tests
    # (model, config) -> the same function in its inference form and the config that builds it:
    # training-only structure (reparameterizable blocks, network deconvolution) folded into plain
    # convs. None: the trained model is the inference model.
    deploy: Callable[[Any, Any], tuple[Any, Any]] | None = None
    # objective name -> weight (mobile_sr.objectives) when training names none
    objectives: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_OBJECTIVES))

    @property
    def value_range(self) -> tuple[float, float]:
        """The range of every input and output of the model, its task's."""
        return get_task(self.task).value_range


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, config_class: type[ModelConfig], param_budget: int, summary: str, task: str = "sr",
    tiny_config: dict[str, Any] | None = None, deploy: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    objectives: dict[str, float] | None = None,
):
    """Decorator registering ``build(config) -> keras.Model`` under ``name``."""
    if task not in task_names():
        raise ValueError(f"task must be one of {task_names()}, got '{task}'")

    def decorator(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        _REGISTRY[name] = ModelSpec(
            name, config_class, build, param_budget, summary, task, dict(tiny_config or {}), deploy,
            dict(objectives or DEFAULT_OBJECTIVES),
        )
        return build

    return decorator


def model_names(task: str | None = None) -> list[str]:
    """Registered model names, all or those of one task (e.g. "sr", "hdr")."""
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
