"""Run folders: their typed config (:mod:`mobile_sr.runs.config`) and files
(:mod:`mobile_sr.runs.folder`), and loading a trained model back."""

from mobile_sr.runs.config import (
    CONFIG_FILE,
    DEFAULT_MINUTES,
    LR_SCHEDULES,
    PRECISIONS,
    QAT_ROUNDINGS,
    RunConfig,
    TrainConfig,
    read_run_config,
)
from mobile_sr.runs.folder import (
    CHECKPOINT_DIR,
    CURVE_FILE,
    METRICS_FILE,
    RELATIVE_DATA_HINT,
    SUMMARY_FILE,
    WEIGHTS_FILE,
    build_run_model,
    checkpoint_problem,
    deployed_model,
    latest_run,
    load_trained_model,
    unfinished_checkpoint_step,
)
from mobile_sr.runs.lock import RunLock, check_unlocked, lock_path

__all__ = [
    "CHECKPOINT_DIR", "CONFIG_FILE", "CURVE_FILE", "DEFAULT_MINUTES", "LR_SCHEDULES", "METRICS_FILE", "PRECISIONS", "QAT_ROUNDINGS",
    "RELATIVE_DATA_HINT", "SUMMARY_FILE", "WEIGHTS_FILE", "RunConfig", "RunLock", "TrainConfig", "build_run_model",
    "check_unlocked", "checkpoint_problem", "deployed_model", "latest_run", "load_trained_model", "lock_path", "read_run_config",
    "unfinished_checkpoint_step",
]
