"""The contract every task fulfils. A task owns what differs between kinds of restoration
(super-resolution, multi-exposure HDR, ...): the model inputs and their value range, loading its
data, training patches and validation, evaluation and its model-free baselines, what export
calibrates on and how large it makes a frame, and the LiteRT runner of an exported model.
Training, export, evaluation and the CLI ask the task; none of them tells tasks apart."""

from __future__ import annotations

import abc
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sr.core.errors import OutputError, TFLiteError
from mobile_sr.core.files import check_output_path
from mobile_sr.runtimes import DEFAULT_RUNTIME


@dataclass(frozen=True)
class ModelInput:
    """One input of a task's models: ``1 x H x W x channels`` float32, any size."""

    name: str
    channels: int


@dataclass(frozen=True)
class TaskData:
    """Loaded training data: items for the patch sampler and a validation split."""

    name: str
    train: list
    val_name: str
    val: list


@dataclass(frozen=True)
class EvalSubject:
    """What ``evaluate`` scores: the Keras ``model`` of the run in ``run_dir``, an exported
    ``.tflite`` at ``path``, or (neither) the model-free baseline ``name``."""

    name: str
    model: Any = None
    model_config: Any = None
    run_dir: Path | None = None
    path: Path | None = None

    @property
    def source(self) -> str:
        """The file, folder or baseline as the user named it."""
        return str(self.path or self.run_dir or self.name)


@dataclass(frozen=True)
class EvalOptions:
    """How ``evaluate`` runs: the data, SR ``scales`` and ``tile`` (None/False where not given),
    the JSON report (and its figures) to write, per-item lines or only means, and the runtime
    that runs a ``.tflite`` (one of :data:`mobile_sr.runtimes.RUNTIMES`).

    Without ``json_path``, with ``report_dir``, each dataset (SR: each scale) gets its own report
    there, named ``<report_prefix><dataset>[_x<scale>].json``, so evaluating another dataset
    keeps the earlier reports."""

    data: str
    scales: list[int] | None = None
    tile: bool = False
    json_path: Path | None = None
    quiet: bool = False
    log: Callable[[str], None] = field(default=print)
    report_dir: Path | None = None
    report_prefix: str = ""
    runtime: str = DEFAULT_RUNTIME

    def writable_report_path(self, dataset: str, scale: int | None = None) -> Path | None:
        """Where the report of ``dataset`` (at SR ``scale``) goes: ``json_path`` (checked by the
        caller), else its own file in ``report_dir``, checked writable now; None: nowhere."""
        if self.json_path is not None or self.report_dir is None:
            return self.json_path
        path = self.report_dir / f"{self.report_prefix}{file_name_part(dataset)}{f'_x{scale}' if scale else ''}.json"
        try:
            check_output_path(path)
        except OutputError as exc:
            raise OutputError(f"{exc} (the default report location: --json chooses another place)") from None
        return path


def file_name_part(name: str) -> str:
    """``name`` (e.g. a dataset's) as part of a file name: runs of other characters than letters,
    digits, ``.``, ``-`` and ``_`` as one ``_``, no leading dot (no hidden file, no ``..``)."""
    return re.sub(r"[^\w.-]+", "_", name).lstrip(".") or "data"


class Task(abc.ABC):
    """A kind of restoration. Subclasses set the class attributes and implement the methods; one
    instance of each is registered in :mod:`mobile_sr.tasks.registry`."""

    name: str  # the registry key, written into every run folder
    title: str
    inputs: tuple[ModelInput, ...]
    graph_description: str  # the inputs as an error message names them, e.g. "one 1xHxWx3 image input (an SR model)"
    value_range: tuple[float, float]  # of every model input and output
    metric: str  # the validation metric, e.g. "psnr_y", and the secondary one
    secondary_metric: str
    metric_label: str
    baselines: tuple[str, ...]  # model-free methods; training compares with the first
    train_defaults: dict[str, Any]  # TrainConfig values that differ from the SR-sized defaults
    qat_learning_rate: float  # QAT's peak learning rate
    default_export_size: tuple[int, int]  # the input frame export converts at when no size is given

    @property
    def baseline(self) -> str:
        return self.baselines[0]

    # --- models and their inputs ------------------------------------------------------------

    def split_inputs(self, batch: np.ndarray):
        """A channel-stacked batch (``... x sum(channels)``) as the model's float32 input(s): one
        array for a one-input model, else a list, one per input."""
        if len(self.inputs) == 1:
            return batch.astype(np.float32)
        splits = np.cumsum([model_input.channels for model_input in self.inputs])[:-1]
        return [part.astype(np.float32) for part in np.split(batch, splits, axis=-1)]

    def matches_graph(self, input_details: list[dict]) -> bool:
        """Whether a .tflite's inputs are this task's (by count and channels)."""
        return len(input_details) == len(self.inputs) and all(
            len(detail["shape"]) == 4 and int(detail["shape"][-1]) == model_input.channels
            for detail, model_input in zip(input_details, self.inputs, strict=True))

    def check_graph(self, runtime, shape_text: Callable[[dict], str]) -> None:
        """Raise :class:`TFLiteError` unless the .tflite loaded in ``runtime`` (a
        :class:`~mobile_sr.runtimes.Runtime`) has this task's inputs and one output."""
        inputs, outputs = runtime.inputs, runtime.outputs
        if not self.matches_graph(inputs) or len(outputs) != 1:
            raise TFLiteError(f"{runtime.path}: expected {self.graph_description} and one output, got "
                              f"{', '.join(map(shape_text, inputs))} -> {', '.join(map(shape_text, outputs))}")

    @abc.abstractmethod
    def model_options(self, *, scale: int | None) -> dict[str, Any]:
        """Model config values that the CLI's task-wide options (``--scale``) set."""

    @abc.abstractmethod
    def run_dir_name(self, model: str, model_config) -> str:
        """The default run folder name of ``model`` built from ``model_config``."""

    @abc.abstractmethod
    def summary_fields(self, model_config) -> dict[str, Any]:
        """What a run summary and an export report say of the model beyond its name."""

    @abc.abstractmethod
    def output_shape(self, model_config, height: int, width: int) -> tuple[int, int, int]:
        """The output ``H x W x C`` of a model built from ``model_config`` for an ``height x width`` input."""

    # --- training ---------------------------------------------------------------------------

    @abc.abstractmethod
    def check_training(self, config, model_config) -> None:
        """Raise :class:`~mobile_sr.core.errors.ConfigError` if ``config`` cannot train the model."""

    @abc.abstractmethod
    def load_split(self, data: str, split: str, *, seed: int, model_config,
                   log: Callable[[str], None] = print) -> tuple[str, list]:
        """``(dataset name, items)`` of ``data``'s ``split`` ("train" or "val"; a plain folder
        gives all of its items to both). Long preparation (SR: decoding images into the training
        cache the first time) shows progress through ``log``."""

    def load_data(self, data: str, val_data: str | None, *, seed: int, model_config,
                  log: Callable[[str], None] = print) -> TaskData:
        """Training items and a validation split: ``val_data``, the default's val split, or
        items held out of ``data``."""
        from mobile_sr.data.locations import DEFAULT_DATASET
        from mobile_sr.data.split import split_train_val

        name, items = self.load_split(data, "train", seed=seed, model_config=model_config, log=log)
        if val_data is not None or data == DEFAULT_DATASET:
            val_name, val = self.load_split(data if val_data is None else val_data, "val", seed=seed,
                                            model_config=model_config, log=log)
            return TaskData(name, items, val_name, val)
        train, val = split_train_val(items)
        return TaskData(name, train, f"{name} (held out)", val)

    @abc.abstractmethod
    def describe(self, items: list) -> str:
        """A few words on the size of loaded training data."""

    @abc.abstractmethod
    def sampler(self, items: list, *, patch_size: int, batch_size: int, seed: int):
        """The training items as a :class:`mobile_sr.data.pipeline.PatchSource` of channel-stacked
        inputs and targets, which :func:`mobile_sr.data.pipeline.patch_dataset` feeds to training."""

    @abc.abstractmethod
    def baseline_score(self, val: list, *, val_name: str, model_config) -> float:
        """The :attr:`baseline`'s :attr:`metric` on the validation items."""

    @abc.abstractmethod
    def validator(self, model, model_config, val: list, *, name: str, val_name: str) -> Callable[[], tuple[float, float]]:
        """``validate() -> (metric, secondary metric)`` of ``model`` on the validation items."""

    # --- export -----------------------------------------------------------------------------

    @abc.abstractmethod
    def calibration_sources(self, data: str, *, seed: int, model_config) -> list[np.ndarray]:
        """Channel-stacked model inputs of the run's training data, to cut calibration crops from:
        arrays, or images read on demand (:class:`mobile_sr.data.stored.StoredImage`: a ``shape``,
        ``[rows, cols]`` slices that are arrays, ``np.asarray``)."""

    @abc.abstractmethod
    def export_size_hint(self) -> str:
        """What to do when an export size is too large."""

    @abc.abstractmethod
    def runner(self, path: Path, *, threads: int | None = None, size_multiple: int | None = None):
        """The LiteRT runner of an exported model of this task."""

    @abc.abstractmethod
    def check_exported(self, path: Path, *, size_multiple: int, height: int, width: int) -> None:
        """Run the exported model once on random inputs of ``height x width``; raise
        :class:`TFLiteError` if its output has the wrong shape."""

    # --- evaluation -------------------------------------------------------------------------

    @abc.abstractmethod
    def keras_runner(self, model, model_config):
        """What the evaluator calls to run a trained Keras model on one item."""

    @abc.abstractmethod
    def evaluate(self, subject: EvalSubject, options: EvalOptions) -> list:
        """Score ``subject`` on ``options.data``, print the report through ``options.log`` and
        write it (with its figures) to ``options.json_path`` if given, else to a report per dataset
        in ``options.report_dir`` if given; returns the reports."""
