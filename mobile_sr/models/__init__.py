"""Model registry. Importing this package registers every architecture (one file each)."""

from mobile_sr.models import abpn, ahdrnet, attention_sr, edsr, hdr_unet, rt4ksr, scsrn, srcnn  # noqa: F401  (registration side effect)
from mobile_sr.models.config import ModelConfig
from mobile_sr.models.registry import (
    ModelSpec,
    build_model,
    deploy_form,
    get_model_spec,
    make_config,
    model_names,
)

__all__ = ["ModelConfig", "ModelSpec", "build_model", "deploy_form", "get_model_spec", "make_config", "model_names"]
