"""The host runtimes that run a ``.tflite``, behind one small interface (:class:`Runtime`): set the
inputs, invoke, get the output. LiteRT's interpreter is the default, the runtime phones use;
OpenVINO reads the same ``.tflite`` directly and runs it on Intel CPUs, often much faster (an
optional extra: ``pip install -e ".[openvino]"``). Both describe a model's tensors as LiteRT
does, read from the file (shape, dtype, quantization), so the tasks' runners, the evaluation and
the benchmark run either the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from mobile_sr.core.errors import MissingExtraError, TFLiteError
from mobile_sr.core.native_logs import silenced_native_stderr
from mobile_sr.tflite import check_threads, error_reason, graph_io_details, load_interpreter

RUNTIME_PACKAGES = {"litert": "ai-edge-litert", "openvino": "openvino"}  # each runtime's Python package
RUNTIMES = tuple(RUNTIME_PACKAGES)
DEFAULT_RUNTIME = RUNTIMES[0]
OPENVINO_INSTALL = 'pip install -e ".[openvino]"'


class Runtime(Protocol):
    """A ``.tflite`` loaded in one runtime. ``inputs`` and ``outputs`` describe the graph's tensors
    as LiteRT does (``name``, ``index``, ``shape``, ``shape_signature``, ``dtype``,
    ``quantization``) with the size the model was exported at; an input fed at another size is
    resized, as LiteRT's ``resize_tensor_input`` does."""

    name: str  # one of RUNTIMES
    title: str  # how messages name it
    path: Path
    inputs: list[dict]
    outputs: list[dict]

    def set_input(self, tensor: dict, value: np.ndarray) -> None:
        """Feed ``value`` (of the tensor's dtype) to the input ``tensor`` at the next invoke."""

    def invoke(self) -> None:
        """Run the graph on the inputs fed (raises ValueError or RuntimeError where it cannot)."""

    def get_output(self, tensor: dict) -> np.ndarray:
        """The output ``tensor`` of the last invoke, a copy."""


class LiteRTRuntime:
    """LiteRT's interpreter (XNNPACK where it accepts the graph), the runtime phones use."""

    name, title = "litert", "the LiteRT interpreter"

    def __init__(self, path: str | Path, interpreter):
        self.path, self.interpreter = Path(path), interpreter
        self.inputs, self.outputs = interpreter.get_input_details(), interpreter.get_output_details()
        self._fed: dict[int, np.ndarray] = {}

    def set_input(self, tensor: dict, value: np.ndarray) -> None:
        self._fed[tensor["index"]] = value

    def invoke(self) -> None:
        if self._fed:
            shapes = {detail["index"]: list(detail["shape"]) for detail in self.interpreter.get_input_details()}
            if any(shapes[index] != list(value.shape) for index, value in self._fed.items()):
                # every input first: a multi-input graph allocates only once their sizes agree
                for index, value in self._fed.items():
                    self.interpreter.resize_tensor_input(index, list(value.shape), strict=False)
                with silenced_native_stderr():
                    self.interpreter.allocate_tensors()
            for index, value in self._fed.items():
                self.interpreter.set_tensor(index, value)
            self._fed.clear()
        self.interpreter.invoke()

    def get_output(self, tensor: dict) -> np.ndarray:
        return self.interpreter.get_tensor(tensor["index"])


def runtime_version(runtime: str) -> str:
    """The installed version of ``runtime``'s Python package, e.g. ``2.3.0``."""
    from importlib.metadata import version

    return version(RUNTIME_PACKAGES[runtime])


def import_openvino():
    """The ``openvino`` module; a one-line error saying how to install it where it is missing."""
    try:
        import openvino
    except ImportError:
        raise MissingExtraError(f"OpenVINO is not installed: install the optional extra with '{OPENVINO_INSTALL}' in "
                                "the mobile-sr checkout (or 'pip install openvino'), or use --runtime litert") from None
    return openvino


def openvino_config(threads: int | None) -> dict:
    """OpenVINO CPU properties: one frame at a time, ``threads`` threads (None: OpenVINO's
    default), and float ops in float32 as LiteRT runs them (on CPUs with AMX or AVX512-BF16,
    OpenVINO's default would run them in bfloat16 and change the output)."""
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


class OpenVINORuntime:
    """OpenVINO's CPU plugin, which reads the ``.tflite`` itself (its TFLite frontend) and keeps
    its uint8/int8 inputs and outputs. Compiled for the exported input size at load (a
    dynamic-size model: at its first invoke), and again whenever it is fed another size (as
    LiteRT reallocates its tensors): tiles all have one size, whole images one each."""

    name, title = "openvino", "OpenVINO"

    def __init__(self, path: str | Path, *, threads: int | None = None):
        self._openvino = import_openvino()
        check_threads(threads)
        self.path = Path(path)
        self.inputs, self.outputs = graph_io_details(self.path)
        self._core, self._config = self._openvino.Core(), openvino_config(threads)
        try:
            with silenced_native_stderr():
                self._model = self._core.read_model(str(self.path))
        except RuntimeError as exc:
            raise TFLiteError(f"{self.path}: OpenVINO cannot read the model ({openvino_reason(exc)}); run it in "
                              "LiteRT with --runtime litert") from None
        self._fed: dict[str, np.ndarray] = {}
        # the input shapes the model is compiled for (-1 where a dynamic-size model is not yet)
        self._shapes = tuple(tuple(int(v) for v in detail["shape_signature"]) for detail in self.inputs)
        self._request = None
        if not any(-1 in shape for shape in self._shapes):
            try:
                self._compile(self._shapes)
            except RuntimeError as exc:
                raise TFLiteError(f"{self.path}: OpenVINO cannot compile the model ({exc}); run it in LiteRT with "
                                  "--runtime litert") from None

    def _compile(self, shapes: tuple) -> None:
        """Compile the model for ``shapes`` (one per input, in input order)."""
        try:
            self._model.reshape({detail["name"]: self._openvino.PartialShape(list(shape))
                                 for detail, shape in zip(self.inputs, shapes, strict=True)})
            with silenced_native_stderr():
                self._request = self._core.compile_model(self._model, "CPU", self._config).create_infer_request()
        except RuntimeError as exc:
            raise RuntimeError(openvino_reason(exc)) from None
        self._shapes = shapes

    def set_input(self, tensor: dict, value: np.ndarray) -> None:
        self._fed[tensor["name"]] = value

    def invoke(self) -> None:
        if self._fed:
            shapes = tuple(tuple(self._fed[d["name"]].shape) if d["name"] in self._fed else shape
                           for d, shape in zip(self.inputs, self._shapes, strict=True))
            if shapes != self._shapes or self._request is None:
                self._compile(shapes)
            for name, value in self._fed.items():
                self._request.set_tensor(name, self._openvino.Tensor(np.ascontiguousarray(value)))
            self._fed.clear()
        if self._request is None:
            raise ValueError(f"{self.path} has a dynamic input size: feed its inputs before the first invoke")
        try:
            self._request.infer(share_outputs=True)  # no copy of the outputs: get_output copies the one asked for
        except RuntimeError as exc:
            raise RuntimeError(openvino_reason(exc)) from None

    def get_output(self, tensor: dict) -> np.ndarray:
        return self._request.get_tensor(tensor["name"]).data.copy()


def openvino_reason(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its first lines name the source files that threw)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    told = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (told or lines or [type(exc).__name__])[0]


def load_runtime(path: str | Path, *, runtime: str = DEFAULT_RUNTIME, threads: int | None = None) -> Runtime:
    """Load ``path`` in ``runtime`` (one of :data:`RUNTIMES`) with ``threads`` CPU threads (None:
    the runtime's default)."""
    if runtime == "litert":
        return LiteRTRuntime(path, load_interpreter(path, threads=threads))
    if runtime == "openvino":
        return OpenVINORuntime(path, threads=threads)
    raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")


def run_graph(runtime: Runtime, feeds: list[tuple[dict, np.ndarray]], size_multiple: int) -> np.ndarray:
    """Feed ``(input tensor, 1 x H x W x C array)`` pairs, run the graph and return its first
    output; a one-line error where the runtime cannot run the model at that size."""
    try:
        for tensor, value in feeds:
            runtime.set_input(tensor, value)
        runtime.invoke()
    except (ValueError, RuntimeError) as exc:
        height, width = feeds[0][1].shape[1:3]
        report = runtime.path.with_suffix(".json")
        raise TFLiteError(
            f"{runtime.path}: {runtime.title} cannot run the model on a {height}x{width} input ({error_reason(exc)}); "
            f"inputs are padded to a multiple of {size_multiple}, the model's downsampling as its export report "
            f"{report.name} gives it (without one, as read from the graph): if the model needs another size, "
            "re-export it, which rewrites the report") from None
    return runtime.get_output(runtime.outputs[0])


def random_frame(inputs: list[dict], seed: int = 0) -> list[np.ndarray]:
    """One random value per input tensor at its exported size, the same for every runtime: uniform
    over an integer dtype's range, else over [0, 1]."""
    rng = np.random.default_rng(seed)
    frames = []
    for detail in inputs:
        if np.issubdtype(detail["dtype"], np.integer):
            info = np.iinfo(detail["dtype"])
            frames.append(rng.integers(info.min, info.max, detail["shape"], endpoint=True).astype(detail["dtype"]))
        else:
            frames.append(rng.uniform(0, 1, detail["shape"]).astype(detail["dtype"]))
    return frames


def output_agreement(reference: np.ndarray, other: np.ndarray, lsb: float) -> dict:
    """How far ``other`` is from ``reference`` (two runtimes' ``... x C`` outputs of one frame):
    the largest difference in ``lsb`` units and the fraction of pixels where any channel differs."""
    difference = np.abs(reference.astype(np.float64) - other.astype(np.float64)) / lsb
    return {"max_diff_lsb": round(float(difference.max()), 3),
            "differing_pixels": round(float((difference.max(axis=-1) > 0).mean()), 6)}
