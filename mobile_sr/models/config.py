"""Frozen, self-validating model configurations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from mobile_sr.core.errors import ConfigError
from mobile_sr.tasks.sr.protocol import check_scale

ConfigT = TypeVar("ConfigT", bound="ModelConfig")


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model config: immutable, checked on creation, round-trips through dicts."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", int) and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"{type(self).__name__}.{field.name} must be an integer, got {value!r}")
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the bad field and its allowed values."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this for an exported graph (the model's
        total downsampling)."""
        return 1

    def objective_options(self, objective: str) -> dict[str, Any]:
        """Settings this model gives the training objective ``objective`` (see
        :mod:`mobile_sr.objectives`), e.g. the blur of a high-frequency loss matching its filter."""
        return {}

    @classmethod
    def from_dict(cls: type[ConfigT], data: dict[str, Any]) -> ConfigT:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(known))}"
            )
        return cls(**data)


@dataclass(frozen=True)
class PlainSRConfig(ModelConfig):
    """The plain mobile SR trunk shared by SCSRN and ABPN: ``feature_convs`` 3x3 conv + ReLU layers
    of ``channels`` channels on the LR image in [0, 255]."""

    scale: int = 3
    channels: int = 28
    feature_convs: int = 5

    def validate(self) -> None:
        check_scale(self.scale)
        if not 1 <= self.channels <= 512:
            raise ConfigError(f"channels must be in [1, 512], got {self.channels}")
        if not 1 <= self.feature_convs <= 64:
            raise ConfigError(f"feature_convs must be in [1, 64], got {self.feature_convs}")


@dataclass(frozen=True)
class HDRConfig(ModelConfig):
    """Multi-exposure HDR models: three LDR exposures in (each 6 channels in [0, 1]: the LDR image
    and its HDR-domain version L^2.2 / t), the mu-law tonemapped HDR image in [0, 1] out.
    ``channels`` is the width of the first stage."""

    channels: int = 32

    def validate(self) -> None:
        if not 1 <= self.channels <= 512:
            raise ConfigError(f"channels must be in [1, 512], got {self.channels}")
