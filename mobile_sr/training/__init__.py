"""Float training and quantization-aware fine-tuning of registered models, for every task, in
stages (:mod:`mobile_sr.training.stages`)."""

from mobile_sr.runs import TrainConfig
from mobile_sr.training.finetune import finetune, qat_run_dir
from mobile_sr.training.interrupts import TrainingInterrupted
from mobile_sr.training.stages import default_run_dir, train
from mobile_sr.training.step import make_train_step, measure_step_time

__all__ = ["TrainConfig", "TrainingInterrupted", "default_run_dir", "finetune", "make_train_step",
           "measure_step_time", "qat_run_dir", "train"]
