"""Multi-exposure HDR: three LDR exposures in, the mu-law tonemapped HDR image aligned to the
middle one out, scored by PSNR-mu, PSNR-l and SSIM-mu against OpenCV's radiance merges."""

from __future__ import annotations

from pathlib import Path

from mobile_sr.core.errors import ConfigError
from mobile_sr.tasks.base import EvalOptions, EvalSubject, ModelInput, Task
from mobile_sr.tasks.hdr.protocol import EXPOSURES, INPUT_CHANNELS, VALUE_RANGE


class HDRTask(Task):
    name = "hdr"
    title = "multi-exposure HDR"
    inputs = tuple(ModelInput(f"exposure{index + 1}", INPUT_CHANNELS) for index in range(EXPOSURES))
    graph_description = "three 1xHxWx6 exposure inputs (an HDR model)"
    value_range = VALUE_RANGE
    metric, secondary_metric, metric_label = "psnr_mu", "ssim_mu", "PSNR-mu"
    baselines = ("debevec", "robertson")
    # CPU-sized: the paper trains batch 8 of 256x256 at 1e-4 for 100k+ steps on a GPU.
    train_defaults = {"batch_size": 8, "patch_size": 128, "learning_rate": 5e-4}
    qat_learning_rate = 1e-4
    default_export_size = (1000, 1500)  # a 1.5-megapixel frame, the size of Kalantari's test scenes

    def model_options(self, *, scale):
        return {}

    def run_dir_name(self, model, model_config):
        return model

    def summary_fields(self, model_config):
        return {}

    def output_shape(self, model_config, height, width):
        return height, width, 3

    def check_training(self, config, model_config):
        multiple = model_config.size_multiple
        if config.patch_size % multiple:
            raise ConfigError(f"patch size {config.patch_size} must be a multiple of {multiple} for this model "
                              f"(its downsampling); try {config.patch_size - config.patch_size % multiple}")

    def load_split(self, data, split, *, seed, model_config, log=print):
        from mobile_sr.tasks.hdr.data import load_hdr_scenes

        return load_hdr_scenes(data, split, seed=seed)

    def describe(self, items):
        pixels = sum(scene.ldrs[0].shape[0] * scene.ldrs[0].shape[1] for scene in items)
        return f"{len(items)} scenes, {pixels / 1e6:.1f} MP (in memory)"

    def sampler(self, items, *, patch_size, batch_size, seed):
        from mobile_sr.tasks.hdr.patches import HDRPatchSampler

        return HDRPatchSampler(items, patch_size=patch_size, batch_size=batch_size, seed=seed)

    def baseline_score(self, val, *, val_name, model_config):
        from mobile_sr.tasks.hdr.evaluation import evaluate_scenes, opencv_merger

        return evaluate_scenes(opencv_merger(self.baseline), val, model=self.baseline, dataset=val_name).mean("psnr_mu")

    def validator(self, model, model_config, val, *, name, val_name):
        from mobile_sr.tasks.hdr.evaluation import evaluate_scenes

        merge = self.keras_runner(model, model_config)

        def validate() -> tuple[float, float]:
            report = evaluate_scenes(merge, val, model=name, dataset=val_name)
            return report.mean("psnr_mu"), report.mean("ssim_mu")

        return validate

    def calibration_sources(self, data, *, seed, model_config):
        import numpy as np

        from mobile_sr.tasks.hdr.data import load_hdr_scenes
        from mobile_sr.tasks.hdr.scene import network_inputs

        _, scenes = load_hdr_scenes(data, "train", seed=seed)
        return [np.concatenate(network_inputs(s.ldrs, s.exposure_times), axis=-1) for s in scenes]

    def export_size_hint(self):
        return "export a smaller --input-size (e.g. 1000x1500, or 'dynamic')"

    def runner(self, path: Path, *, threads=None, size_multiple=None):
        from mobile_sr.tasks.hdr.runner import TFLiteMerger

        return TFLiteMerger(path, threads=threads, size_multiple=size_multiple)

    def check_exported(self, path, *, size_multiple, height, width):
        import numpy as np

        from mobile_sr.core.errors import TFLiteError

        rng = np.random.default_rng(0)
        result = self.runner(path, size_multiple=size_multiple).tonemapped(
            [rng.uniform(0, 1, (height, width, INPUT_CHANNELS)) for _ in range(EXPOSURES)])
        if result.shape != (height, width, 3):
            raise TFLiteError(f"{path}: the interpreter returned {result.shape} for a {height}x{width} input")

    def keras_runner(self, model, model_config):
        from mobile_sr.tasks.hdr.evaluation import keras_merger

        return keras_merger(model, size_multiple=model_config.size_multiple)

    def evaluate(self, subject: EvalSubject, options: EvalOptions):
        from mobile_sr.tasks.hdr.evaluation import evaluate_subject

        return evaluate_subject(subject, options)


HDR_TASK = HDRTask()
