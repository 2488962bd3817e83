"""Training run folders: what they hold, and loading the trained model back from one.

Layout of ``runs/<model>-x<scale>/``::

    config.json           model name, model config and training config
    checkpoints/          tf.train checkpoints (model, EMA model, optimizer, step) for --resume
    model.weights.h5      the final (EMA) weights, written atomically at the end
    metrics.jsonl         one JSON record per log line / validation
    training_curve.png    loss and validation PSNR against step
    summary.json          final validation PSNR against bicubic, steps, throughput
"""

from __future__ import annotations

import json
from pathlib import Path

from mobile_sr.errors import ConfigError, RunFolderError
from mobile_sr.images import atomic_write_bytes

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "training_curve.png"
CHECKPOINT_DIR = "checkpoints"


def write_json(path: Path, data) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


# training settings read straight from a run's config (resume, QAT, export's calibration); the
# others have defaults
_REQUIRED_TRAIN_KEYS = ("model", "data", "seed", "patch_size", "steps", "minutes")


def read_run_config(run_dir: Path) -> dict:
    """The run's config.json, checked to hold what the code reads from it: ``model`` (a name),
    ``model_config`` (a mapping) and ``train`` (a mapping with the settings read straight from it)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise RunFolderError(f"{run_dir} is a file, not a run folder; pass the folder 'mobile-sr train' wrote")
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder; train one with 'mobile-sr train'")
    config_path = run_dir / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"{run_dir}: not a run folder (no {CONFIG_FILE}); pass the folder 'mobile-sr train' wrote") from None
    except OSError as exc:
        raise RunFolderError(f"{config_path}: cannot be read ({exc.strerror}); retrain or restore the file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{config_path}: damaged ({exc}); retrain or restore the file") from None
    problem = _config_problem(config)
    if problem is not None:
        raise RunFolderError(f"{config_path}: damaged ({problem}); retrain or restore the file")
    return config


def _config_problem(config) -> str | None:
    if not isinstance(config, dict):
        return "not a JSON object"
    if not isinstance(config.get("model"), str):
        return "no model name"
    for key in ("model_config", "train"):
        if not isinstance(config.get(key), dict):
            return f"'{key}' is missing or not a mapping"
    missing = [key for key in _REQUIRED_TRAIN_KEYS if key not in config["train"]]
    return f"'train' lacks {', '.join(missing)}" if missing else None


# how to fix a run's stored data path that no longer loads (after a message naming its config.json)
RELATIVE_DATA_HINT = ("a relative path is read from the current folder: run from the folder it was trained in, "
                      "or fix data in that file")


def is_qat_run(config: dict) -> bool:
    return bool(config.get("train", {}).get("qat"))


def build_run_model(config: dict):
    """A fresh model shaped as the run's: the registered model, QAT-wrapped for a QAT run."""
    from mobile_sr.models import build_model, get_model_spec, make_config

    model = build_model(config["model"], make_config(config["model"], **config["model_config"]))
    if is_qat_run(config):
        from mobile_sr.quantization.qat import quantize_for_training

        model = quantize_for_training(model, value_range=get_model_spec(config["model"]).value_range)
    return model


def load_trained_model(run_dir: Path):
    """Rebuild the run's model from its config and load the final weights (or the latest
    checkpoint of an unfinished run). Returns ``(model, run_config)``."""
    from mobile_sr.backend import tf

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    try:
        model = build_run_model(config)
    except ConfigError as exc:
        raise RunFolderError(f"{run_dir / CONFIG_FILE}: invalid model config: {exc}") from None
    weights = run_dir / WEIGHTS_FILE
    if weights.is_file():
        try:
            model.load_weights(str(weights))
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"{weights}: cannot be loaded ({exc}); retrain or resume the run") from None
        return model, config
    latest = tf.train.latest_checkpoint(str(run_dir / CHECKPOINT_DIR))
    if latest is None:
        raise RunFolderError(
            f"{run_dir}: no {WEIGHTS_FILE} and no checkpoint; the run never saved, train it again"
        )
    try:
        tf.train.Checkpoint(ema_model=model).read(latest).expect_partial()
    except (ValueError, IndexError, tf.errors.OpError) as exc:  # another model's checkpoint, or a damaged one
        raise RunFolderError(checkpoint_problem(latest, exc)) from None
    return model, config


def checkpoint_problem(checkpoint: str, exc: Exception) -> str:
    """The message for ``checkpoint`` failing to restore with ``exc``."""
    return (f"{checkpoint}: cannot be restored ({exc}); it is damaged or holds another model than the run's "
            f"{CONFIG_FILE}; train the run again with --overwrite")


def deployed_model(model, config: dict):
    """The inference form of a float run's ``model``: training-only structure folded into plain
    layers (the registry's ``ModelSpec.deploy``; the model itself where there is none)."""
    from mobile_sr.models import deploy_form, make_config

    deployed, _ = deploy_form(config["model"], model, make_config(config["model"], **config["model_config"]))
    return deployed
