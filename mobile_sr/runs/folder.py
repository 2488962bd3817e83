"""Training run folders: what they hold, and loading the trained model back from one.

Layout of ``runs/<model>-x<scale>/`` (an HDR run: ``runs/<model>/``)::

    config.json           task, model name, model config and training config (mobile_sr.runs.config)
    checkpoints/          tf.train checkpoints (model, EMA model, optimizer, step) for --resume
    model.weights.h5      the final (EMA) weights, written atomically at the end
    metrics.jsonl         one JSON record per log line / validation
    training_curve.png    loss and validation PSNR against step
    summary.json          final validation PSNR against bicubic, steps, throughput
"""

from __future__ import annotations

from pathlib import Path

from mobile_sr.core.errors import RunFolderError
from mobile_sr.runs.config import CONFIG_FILE, RunConfig, read_run_config

WEIGHTS_FILE = "model.weights.h5"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "training_curve.png"
CHECKPOINT_DIR = "checkpoints"


# how to fix a run's stored data path that no longer loads (after a message naming its config.json)
RELATIVE_DATA_HINT = ("a relative path is read from the current folder: run from the folder it was trained in, "
                      "or fix data in that file")


def build_run_model(run_config: RunConfig):
    """A fresh model shaped as the run's: the registered model, QAT-wrapped for a QAT run."""
    from mobile_sr.models import build_model

    model = build_model(run_config.model, run_config.model_config)
    if run_config.is_qat:
        from mobile_sr.quantization.qat import quantize_for_training

        model = quantize_for_training(model, value_range=run_config.task.value_range)
    return model


def load_trained_model(run_dir: Path):
    """Rebuild the run's model from its config and load the final weights (or the latest
    checkpoint of an unfinished run). Returns ``(model, run_config)``."""
    from mobile_sr.core.backend import tf

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = build_run_model(config)
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


def deployed_model(model, run_config: RunConfig):
    """The inference form of a float run's ``model``: training-only structure folded into plain
    layers (the registry's ``ModelSpec.deploy``; the model itself where there is none)."""
    from mobile_sr.models import deploy_form

    deployed, _ = deploy_form(run_config.model, model, run_config.model_config)
    return deployed


def latest_run(root: Path = Path("runs")) -> Path:
    """The most recently finished run below ``root``."""
    finished = [p.parent for p in root.glob(f"*/{WEIGHTS_FILE}")] if root.is_dir() else []
    if not finished:
        raise RunFolderError(f"no finished run in {root}/; train one with 'mobile-sr train' or pass --run")
    return max(finished, key=lambda p: (p / WEIGHTS_FILE).stat().st_mtime)


def unfinished_checkpoint_step(run_dir: Path) -> int | None:
    """The step of the checkpoint :func:`load_trained_model` falls back to in a run without final
    weights; None for a finished run."""
    if (Path(run_dir) / WEIGHTS_FILE).is_file():
        return None
    from mobile_sr.core.backend import tf

    return int(tf.train.latest_checkpoint(str(Path(run_dir) / CHECKPOINT_DIR)).rsplit("-", 1)[-1])
