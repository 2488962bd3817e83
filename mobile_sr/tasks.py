"""What differs between the pipelines of the two tasks, super-resolution and multi-exposure HDR:
the data, the training patches, the validation metric and the classical baseline it is compared
with. Training and the CLI pick the task from the registered model and compose the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from mobile_sr.errors import ConfigError


@dataclass(frozen=True)
class TaskData:
    name: str
    train: list
    val_name: str
    val: list


class SRTask:
    name = "sr"
    metric, secondary_metric, metric_label = "psnr_y", "ssim_y", "PSNR-Y"
    baseline = "bicubic"
    input_groups = 1
    train_defaults: dict[str, Any] = {}
    # QAT's peak learning rate: a well-trained SR model loses more to fine-tuning noise at 1e-4
    # than QAT wins back (SCSRN x3, 60 min float: -0.073 dB at 1e-4, -0.056 at 2e-5, -0.051 at 5e-6)
    qat_learning_rate = 1e-5

    @staticmethod
    def run_dir_name(model: str, scale: int) -> str:
        return f"{model}-x{scale}"

    @staticmethod
    def model_options(scale: int) -> dict[str, Any]:
        return {"scale": scale}

    @staticmethod
    def load(config) -> TaskData:
        from mobile_sr.data.sr import load_sr_pairs, split_train_val

        name, pairs = load_sr_pairs(config.data, config.scale, split="train")
        if config.val_data is not None:
            val_name, val = load_sr_pairs(config.val_data, config.scale, split="val")
            return TaskData(name, pairs, val_name, val)
        if config.data == "default":
            val_name, val = load_sr_pairs("default", config.scale, split="val")
            return TaskData(name, pairs, val_name, val)
        train, val = split_train_val(pairs)
        return TaskData(name, train, f"{name} (held out)", val)

    @staticmethod
    def describe(items: list) -> str:
        from mobile_sr.data.sr import describe_pairs

        return describe_pairs(items)

    @staticmethod
    def sampler(items: list, *, patch_size: int, batch_size: int, seed: int):
        from mobile_sr.data.patches import PatchSampler

        return PatchSampler(items, patch_size=patch_size, batch_size=batch_size, seed=seed)

    @staticmethod
    def check(config, model_config) -> None:
        """Raise :class:`ConfigError` if the training config does not fit the model."""

    @staticmethod
    def model_inputs(batch_inputs: np.ndarray):
        return batch_inputs.astype(np.float32)

    @staticmethod
    def baseline_score(val: list, *, val_name: str, scale: int) -> float:
        from mobile_sr.evaluation import bicubic_upscaler, evaluate_pairs

        return evaluate_pairs(bicubic_upscaler(scale), val, model="bicubic", dataset=val_name, scale=scale).mean_psnr_y

    @staticmethod
    def validator(model, model_config, val: list, *, name: str, val_name: str) -> Callable[[], tuple[float, float]]:
        from mobile_sr.evaluation import evaluate_pairs, keras_upscaler

        upscale = keras_upscaler(model)

        def validate() -> tuple[float, float]:
            report = evaluate_pairs(upscale, val, model=name, dataset=val_name, scale=model_config.scale)
            return report.mean_psnr_y, report.mean_ssim_y

        return validate


class HDRTask:
    name = "hdr"
    metric, secondary_metric, metric_label = "psnr_mu", "ssim_mu", "PSNR-mu"
    baseline = "debevec"
    input_groups = 3  # the exposures
    # CPU-sized: the paper trains batch 8 of 256x256 at 1e-4 for 100k+ steps on a GPU.
    train_defaults: dict[str, Any] = {"batch_size": 8, "patch_size": 128, "learning_rate": 5e-4}
    qat_learning_rate = 1e-4

    @staticmethod
    def run_dir_name(model: str, scale: int) -> str:
        return model

    @staticmethod
    def model_options(scale: int) -> dict[str, Any]:
        return {}

    @staticmethod
    def load(config) -> TaskData:
        from mobile_sr.data.hdr import load_hdr_scenes
        from mobile_sr.data.sr import split_train_val

        name, scenes = load_hdr_scenes(config.data, "train", seed=config.seed)
        if config.val_data is not None:
            val_name, val = load_hdr_scenes(config.val_data, "val", seed=config.seed)
            return TaskData(name, scenes, val_name, val)
        if config.data == "default":
            val_name, val = load_hdr_scenes("default", "val", seed=config.seed)
            return TaskData(name, scenes, val_name, val)
        train, val = split_train_val(scenes)
        return TaskData(name, train, f"{name} (held out)", val)

    @staticmethod
    def describe(items: list) -> str:
        pixels = sum(scene.ldrs[0].shape[0] * scene.ldrs[0].shape[1] for scene in items)
        return f"{len(items)} scenes, {pixels / 1e6:.1f} MP"

    @staticmethod
    def sampler(items: list, *, patch_size: int, batch_size: int, seed: int):
        from mobile_sr.data.hdr import HDRPatchSampler

        return HDRPatchSampler(items, patch_size=patch_size, batch_size=batch_size, seed=seed)

    @staticmethod
    def check(config, model_config) -> None:
        multiple = model_config.size_multiple
        if config.patch_size % multiple:
            raise ConfigError(f"patch size {config.patch_size} must be a multiple of {multiple} for this model "
                              f"(its downsampling); try {config.patch_size - config.patch_size % multiple}")

    @staticmethod
    def model_inputs(batch_inputs: np.ndarray):
        return [part.astype(np.float32) for part in np.split(batch_inputs, HDRTask.input_groups, axis=-1)]

    @staticmethod
    def baseline_score(val: list, *, val_name: str, scale: int) -> float:
        from mobile_sr.hdr_evaluation import evaluate_scenes, opencv_merger

        return evaluate_scenes(opencv_merger("debevec"), val, model="debevec", dataset=val_name).mean("psnr_mu")

    @staticmethod
    def validator(model, model_config, val: list, *, name: str, val_name: str) -> Callable[[], tuple[float, float]]:
        from mobile_sr.hdr_evaluation import evaluate_scenes, keras_merger

        merge = keras_merger(model, size_multiple=model_config.size_multiple)

        def validate() -> tuple[float, float]:
            report = evaluate_scenes(merge, val, model=name, dataset=val_name)
            return report.mean("psnr_mu"), report.mean("ssim_mu")

        return validate


TASKS = {"sr": SRTask, "hdr": HDRTask}


def task_of(model: str):
    """The task (:class:`SRTask` or :class:`HDRTask`) of a registered model."""
    from mobile_sr.models import get_model_spec

    return TASKS[get_model_spec(model).task]
