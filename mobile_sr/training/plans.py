"""What differs between float training and quantization-aware training (QAT): the model a run
starts from, how it is wrapped for training, and which weights the run keeps."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mobile_sr import runs
from mobile_sr.training.run_folder import MetricsLog, save_weights

BEST_WEIGHTS_FILE = "best.weights.h5"  # in the checkpoint folder while a QAT run trains


class FloatPlan:
    """Float training, from random weights or a float run's: keeps the final EMA weights."""

    validates_start = False  # whether the start is validated before the first step
    data_hint = ""  # how else to give data when a continued run's data no longer loads

    def __init__(self, config: runs.TrainConfig, run_dir: Path, metric: str):
        self.config, self.run_dir, self.metric = config, run_dir, metric

    def start_form(self, model, model_config) -> tuple[Any, Any]:
        """``(model, model_config)`` as the run trains them, from a trained start's."""
        return model, model_config

    def wrap(self, model, *, task, data):
        """The model the optimizer trains, from the freshly built (and started) ``model``."""
        return model

    def start_tracking(self, metrics: MetricsLog) -> None:
        """Continue tracking from the metrics a resumed run logged so far."""

    def after_validation(self, step: int, elapsed: float, score: float, ema_model,
                         save_checkpoint: Callable[[int, float], None]) -> None:
        """Called with each validation ``score`` before it is logged."""

    def keep_weights(self, ema_model, *, step: int, last_score: float, log: Callable[[str], None]) -> tuple[float, dict]:
        """Write the run's weights file; returns the kept weights' validation score and what the
        summary says of the choice."""
        save_weights(ema_model, self.run_dir / runs.WEIGHTS_FILE)
        return last_score, {}


class QATPlan(FloatPlan):
    """QAT fine-tunes the inference form of a float run (training-only structure folded into plain
    convs), fake-quantized and calibrated, and keeps its best-validated weights, its calibrated
    start included: from data-aware rounding, fine-tuning can cost more (weights drifting across
    rounding boundaries) than it wins."""

    validates_start = True
    data_hint = "; or give qat --data"

    def __init__(self, config, run_dir, metric):
        super().__init__(config, run_dir, metric)
        self.best_weights = run_dir / runs.CHECKPOINT_DIR / BEST_WEIGHTS_FILE
        self.best_score, self.best_step = -math.inf, None

    def start_form(self, model, model_config):
        from mobile_sr.models import deploy_form

        return deploy_form(self.config.model, model, model_config)

    def wrap(self, model, *, task, data):
        from mobile_sr.quantization.qat import quantize_for_training

        calibration = task.sampler(data.train, patch_size=self.config.patch_size, batch_size=64,
                                   seed=self.config.seed + 1).sample()[0]
        return quantize_for_training(model, task.split_inputs(calibration), value_range=task.value_range,
                                     data_aware_rounding=self.config.qat_rounding == "data_aware")

    def start_tracking(self, metrics):
        key = f"val_{self.metric}"
        self.best_score = max((r[key] for r in metrics.records if key in r), default=-math.inf)
        self.best_step = max((r["step"] for r in metrics.records if r.get(key) == self.best_score), default=None)
        self.best_weights.parent.mkdir(parents=True, exist_ok=True)

    def after_validation(self, step, elapsed, score, ema_model, save_checkpoint):
        if score > self.best_score:
            self.best_score, self.best_step = score, step
            save_weights(ema_model, self.best_weights)
            save_checkpoint(step, elapsed)  # a resumed run then never restarts before its best weights

    def keep_weights(self, ema_model, *, step, last_score, log):
        # the run ends on a validation, so the best file holds the weights to keep; without one, a
        # resumed finished run found no better and its weights file holds the best already
        if self.best_weights.exists():
            self.best_weights.replace(self.run_dir / runs.WEIGHTS_FILE)
        kept = last_score
        if self.best_step != step:
            kept = self.best_score
            log(f"keeping the weights of step {self.best_step} (validation {self.best_score:.4f} dB) over the last "
                f"step's ({last_score:.4f} dB), {self.best_score - last_score:.4f} dB better")
        return kept, {"kept_step": self.best_step, f"final_val_{self.metric}": round(last_score, 4)}


def plan_for(config: runs.TrainConfig, run_dir: Path, metric: str) -> FloatPlan:
    return (QATPlan if config.qat else FloatPlan)(config, run_dir, metric)
