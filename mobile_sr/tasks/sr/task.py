"""Super-resolution: one LR RGB image in, the image ``scale`` times larger out, scored by PSNR and
SSIM on Y against bicubic upscaling."""

from __future__ import annotations

from pathlib import Path

from mobile_sr.tasks.base import EvalOptions, EvalSubject, ModelInput, Task
from mobile_sr.tasks.sr.protocol import CHANNELS, PIXEL_RANGE


class SRTask(Task):
    name = "sr"
    title = "super-resolution"
    inputs = (ModelInput("lr", CHANNELS),)
    graph_description = "one 1xHxWx3 image input (an SR model)"
    value_range = PIXEL_RANGE
    metric, secondary_metric, metric_label = "psnr_y", "ssim_y", "PSNR-Y"
    baselines = ("bicubic",)
    train_defaults = {}
    # QAT's peak learning rate: a well-trained SR model loses more to fine-tuning noise at 1e-4
    # than QAT wins back (SCSRN x3, 60 min float: -0.073 dB at 1e-4, -0.056 at 2e-5, -0.051 at 5e-6)
    qat_learning_rate = 1e-5
    default_export_size = (360, 640)  # the Mobile AI challenge frame: 360x640 LR -> 1080x1920 for x3

    def model_options(self, *, scale):
        return {} if scale is None else {"scale": scale}

    def run_dir_name(self, model, model_config):
        return f"{model}-x{model_config.scale}"

    def summary_fields(self, model_config):
        return {"scale": model_config.scale}

    def output_shape(self, model_config, height, width):
        return height * model_config.scale, width * model_config.scale, CHANNELS

    def check_training(self, config, model_config):
        """Any patch size fits: SR models pad what they downsample."""

    def load_split(self, data, split, *, seed, model_config, log=print):
        from mobile_sr.tasks.sr.data import stored_sr_pairs

        return stored_sr_pairs(data, model_config.scale, split=split, log=log)

    def describe(self, items):
        from mobile_sr.tasks.sr.data import describe_pairs

        return describe_pairs(items)

    def sampler(self, items, *, patch_size, batch_size, seed):
        from mobile_sr.tasks.sr.patches import PatchSampler

        return PatchSampler(items, patch_size=patch_size, batch_size=batch_size, seed=seed)

    def baseline_score(self, val, *, val_name, model_config):
        from mobile_sr.tasks.sr.evaluation import bicubic_upscaler, evaluate_pairs

        scale = model_config.scale
        return evaluate_pairs(bicubic_upscaler(scale), val, model="bicubic", dataset=val_name, scale=scale).mean_psnr_y

    def validator(self, model, model_config, val, *, name, val_name):
        from mobile_sr.tasks.sr.evaluation import evaluate_pairs, keras_upscaler

        upscale = keras_upscaler(model)

        def validate() -> tuple[float, float]:
            report = evaluate_pairs(upscale, val, model=name, dataset=val_name, scale=model_config.scale)
            return report.mean_psnr_y, report.mean_ssim_y

        return validate

    def calibration_sources(self, data, *, seed, model_config):
        from mobile_sr.tasks.sr.data import stored_sr_pairs

        _, pairs = stored_sr_pairs(data, model_config.scale, split="train")
        return [pair.lr for pair in pairs]  # StoredImages: crops read on demand

    def export_size_hint(self):
        return ("export a smaller --input-size (e.g. 360x640, or 'dynamic'): 'mobile-sr upscale' runs larger "
                "images by resizing the input, or in tiles with --tile")

    def runner(self, path: Path, *, threads=None, size_multiple=None):
        from mobile_sr.tasks.sr.runner import TFLiteUpscaler

        return TFLiteUpscaler(path, threads=threads, size_multiple=size_multiple)

    def check_exported(self, path, *, size_multiple, height, width):
        import numpy as np

        from mobile_sr.core.errors import TFLiteError

        upscaler = self.runner(path, size_multiple=size_multiple)
        result = upscaler(np.random.default_rng(0).integers(0, 256, (height, width, CHANNELS), dtype=np.uint8))
        if result.shape != (height * upscaler.scale, width * upscaler.scale, CHANNELS):
            raise TFLiteError(f"{path}: the interpreter returned {result.shape} for a {height}x{width} input")

    def keras_runner(self, model, model_config):
        from mobile_sr.tasks.sr.evaluation import keras_upscaler

        return keras_upscaler(model)

    def evaluate(self, subject: EvalSubject, options: EvalOptions):
        from mobile_sr.tasks.sr.evaluation import evaluate_subject

        return evaluate_subject(subject, options)


SR_TASK = SRTask()
