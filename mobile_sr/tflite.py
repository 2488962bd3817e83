"""Running ``.tflite`` models in the LiteRT interpreter (``ai_edge_litert``), the runtime users
deploy: loading with clear errors, uint8/int8/float I/O, whole-image inference by resizing the
input tensors, and for SR seamless tiling for fixed-size models or very large images."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from mobile_sr.errors import TFLiteError
from mobile_sr.native_logs import silenced_native_stderr


# (inputs, channels per input) of the two tasks' graphs: one LR RGB image, or three exposures
# of 6 channels (mobile_sr.hdr_protocol)
SR_INPUTS, HDR_INPUTS = (1, 3), (3, 6)
# The most CPU threads a command takes (interpreter, benchmark, TensorFlow): past 4 per core
# threads only contend, and tens of thousands crash LiteRT's thread pool (a segfault, no error).
# At least 256, so that no real setting is refused on a small machine.
MAX_THREADS = max(256, 4 * (os.cpu_count() or 1))


def load_interpreter(path: str | Path, *, threads: int | None = None, expect: tuple[int, int] | None = SR_INPUTS):
    """Load and allocate a .tflite; ``expect`` checks the (number of inputs, channels) of an SR
    or HDR graph (None: any)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
        raise ValueError(f"threads must be a whole number from 1 to {MAX_THREADS}, or None for the default; got {threads!r}")
    path = Path(path)
    if path.is_dir():
        raise TFLiteError(f"{path} is a folder; give the .tflite file itself (e.g. one 'mobile-sr export' wrote)")
    if not path.is_file():
        raise TFLiteError(f"{path}: no such file; export one with 'mobile-sr export'")

    def create(resolver):
        with silenced_native_stderr():
            created = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
            # a dynamic-size graph starts at 1x1, too small for one that downsamples its input
            dynamic = [d for d in created.get_input_details() if is_dynamic(d) and len(d["shape"]) == 4]
            if dynamic:
                side = _probe_side(graph_size_multiple(path))
                for detail in dynamic:
                    created.resize_tensor_input(detail["index"], [1, side, side, int(detail["shape"][-1])], strict=False)
            created.allocate_tensors()
        return created

    xnnpack_refusal = None
    try:
        interpreter = create(OpResolverType.AUTO)
    except (ValueError, RuntimeError) as exc:
        if "XNNPACK" not in str(exc):
            raise TFLiteError(f"{path}: not a valid TFLite model ({error_reason(exc)}); re-export it") from None
        # XNNPACK refuses some int8 graphs (e.g. scale ratios outside its kernels' range); the
        # builtin kernels still run them, as a phone would without the delegate
        xnnpack_refusal = error_reason(exc)
        try:
            interpreter = create(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        except (ValueError, RuntimeError) as retry_exc:
            raise TFLiteError(f"{path}: not a valid TFLite model ({error_reason(retry_exc)}); re-export it") from None
    interpreter.xnnpack_refusal = xnnpack_refusal
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if expect is not None:
        count, channels = expect
        if len(inputs) != count or len(outputs) != 1 or any(len(d["shape"]) != 4 or d["shape"][-1] != channels for d in inputs):
            what = "one 1xHxWx3 image input (an SR model)" if expect == SR_INPUTS else "three 1xHxWx6 exposure inputs (an HDR model)"
            raise TFLiteError(f"{path}: expected {what} and one output, got "
                              f"{', '.join(map(shape_text, inputs))} -> {', '.join(map(shape_text, outputs))}")
    return interpreter


def shape_text(detail: dict) -> str:
    """A tensor's shape as ``1x360x640x3``, a dynamic dimension as ``?``."""
    shape = detail.get("shape_signature", detail["shape"])
    return "x".join("?" if int(v) < 0 else str(int(v)) for v in shape)


def is_dynamic(detail: dict) -> bool:
    """Whether a tensor's size is set at run time (a model exported with a dynamic input size)."""
    return any(int(v) < 0 for v in detail.get("shape_signature", detail["shape"]))


def error_reason(exc: BaseException) -> str:
    """The first line of an interpreter error."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def graph_size_multiple(path: str | Path) -> int:
    """The multiple of which a model's input height and width must be, read from the graph: the
    block sizes of its SPACE_TO_DEPTH ops (the only downsampling mobile-sr's models use), chained
    along each path from the input (a U-Net's levels multiply) and undone by DEPTH_TO_SPACE."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    factors: dict[int, int] = {}  # tensor -> how much smaller than the input it is
    multiple = 1
    for op in model.subgraphs[0].operators:
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        inputs, outputs = ([] if ids is None else ids for ids in (op.inputs, op.outputs))
        factor = max((factors.get(int(i), 1) for i in inputs if i >= 0), default=1)
        if name == "SPACE_TO_DEPTH":
            factor *= op.builtinOptions.blockSize
            multiple = math.lcm(multiple, factor)
        elif name == "DEPTH_TO_SPACE":
            factor = max(1, factor // op.builtinOptions.blockSize)
        factors.update((int(o), factor) for o in outputs)
    return multiple


def _probe_side(size_multiple: int) -> int:
    """The side of the square a dynamic-size model is first run at: at least 8, a multiple of
    ``size_multiple``."""
    return -(-8 // size_multiple) * size_multiple


def _invoke(interpreter, path: Path, feeds: list[tuple[dict, np.ndarray]], size_multiple: int) -> np.ndarray:
    """Set the inputs (``(detail, 1 x H x W x C array)`` pairs, resizing the input tensors to
    them where needed), run the graph and return its output tensor."""
    shapes = {d["index"]: list(d["shape"]) for d in interpreter.get_input_details()}
    try:
        if any(shapes[detail["index"]] != list(x.shape) for detail, x in feeds):
            for detail, x in feeds:
                interpreter.resize_tensor_input(detail["index"], list(x.shape), strict=False)
            with silenced_native_stderr():
                interpreter.allocate_tensors()
        for detail, x in feeds:
            interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
    except (ValueError, RuntimeError) as exc:
        height, width = feeds[0][1].shape[1:3]
        report = path.with_suffix(".json")
        raise TFLiteError(
            f"{path}: the LiteRT interpreter cannot run the model on a {height}x{width} input ({error_reason(exc)}); "
            f"inputs are padded to a multiple of {size_multiple}, the model's downsampling as its export report "
            f"{report.name} gives it (without one, as read from the graph): if the model needs another size, "
            "re-export it, which rewrites the report") from None
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def graph_task(path: str | Path) -> str:
    """"sr" or "hdr": which kind of model a .tflite holds, from its inputs."""
    interpreter = load_interpreter(path, expect=None)
    return "hdr" if len(interpreter.get_input_details()) == HDR_INPUTS[0] else "sr"


def _quantize(image: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return image.astype(np.float32)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        raise TFLiteError(f"the model's {np.dtype(dtype).name} input has no quantization parameters")
    info = np.iinfo(dtype)
    return np.clip(np.round(image.astype(np.float32) / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return values
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


class TFLiteUpscaler:
    """Callable ``uint8 LR RGB -> uint8 SR RGB`` backed by a .tflite SR model.

    Whole images run by resizing the input tensor (exact: the same arithmetic as a full-size
    model), reflect-padded to a multiple of ``size_multiple`` (a model that unshuffles its input;
    by default from the JSON report next to the model, else from the graph) and cropped back.
    Images larger than ``max_pixels`` run in square tiles of about ``max_pixels``; with ``tile`` set, every image runs
    in tiles of the model's input size (a dynamic-size model: those square tiles). Tiles overlap by
    ``overlap`` LR pixels (a quarter of the tile's side where that does not fit); only the centre
    of each tile is kept, so with an overlap at least the network's receptive radius the result has
    no seams.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, tile: bool = False,
                 overlap: int = 8, max_pixels: int = 4_000_000, size_multiple: int | None = None):
        self.path = Path(path)
        self.interpreter = load_interpreter(path, threads=threads)
        self.size_multiple = _size_multiple(self.path) if size_multiple is None else int(size_multiple)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        if is_dynamic(self.input):  # the output's size is known only once the graph has run
            in_height = in_width = _probe_side(self.size_multiple)
            probe = np.zeros((1, in_height, in_width, 3), self.input["dtype"])
            out_height, out_width = (int(v) for v in _invoke(self.interpreter, self.path, [(self.input, probe)],
                                                             self.size_multiple).shape[1:3])
        else:
            (in_height, in_width), (out_height, out_width) = ([int(v) for v in d["shape"][1:3]] for d in (self.input, self.output))
        self.scale = out_height // in_height
        if self.scale < 1 or (out_height, out_width) != (in_height * self.scale, in_width * self.scale):
            raise TFLiteError(f"{path}: its output {shape_text(self.output)} is not an integer multiple of its input "
                              f"{shape_text(self.input)}; give an SR model exported with 'mobile-sr export'")
        if self.scale == 1:
            raise TFLiteError(f"{path}: the model's scale is 1 (its output {shape_text(self.output)} is the size of its "
                              f"input {shape_text(self.input)}), so it is not an upscaler; give an SR model of scale 2, 3 or 4")
        # None: a dynamic-size model, which runs at any size
        self.tile_shape = None if is_dynamic(self.input) else (in_height, in_width)
        self.tile, self.overlap, self.max_pixels = tile, overlap, max_pixels
        if tile and self.tile_shape is not None and overlap > 0 and self._overlap(min(self.tile_shape)) == 0:
            raise TFLiteError(f"{path}: its fixed {in_height}x{in_width} input is too small to run in overlapping tiles; "
                              "run it without --tile, or export the model with a larger --input-size")

    def _run(self, lr: np.ndarray) -> np.ndarray:
        height, width = lr.shape[:2]
        lr = _pad_to_multiple(lr, self.size_multiple)
        output = _invoke(self.interpreter, self.path, [(self.input, _quantize(lr[None], self.input))], self.size_multiple)[0]
        return _dequantize(output[: height * self.scale, : width * self.scale], self.output)

    def _overlap(self, tile: int) -> int:
        """The overlap used for tiles of ``tile`` pixels: two of them must leave the tile a centre."""
        return self.overlap if 2 * self.overlap < tile else tile // 4

    def _tile_shape_for(self, height: int, width: int) -> tuple[int, int]:
        if self.tile and self.tile_shape is not None:
            return self.tile_shape
        side = max(math.isqrt(self.max_pixels) // self.size_multiple * self.size_multiple, self.size_multiple)
        return min(side, height), min(side, width)

    def _tiled(self, lr: np.ndarray) -> np.ndarray:
        s = self.scale
        height, width = lr.shape[:2]
        tile_h, tile_w = self._tile_shape_for(height, width)
        padded = np.zeros((max(height, tile_h), max(width, tile_w), 3), lr.dtype)  # small images: zero pad
        padded[:height, :width] = lr
        # the kept spans partition the image, so every output pixel is written
        out = np.empty((height * s, width * s, 3), np.float32)
        for top, y0, y1 in _spans(height, tile_h, self._overlap(tile_h)):
            for left, x0, x1 in _spans(width, tile_w, self._overlap(tile_w)):
                result = self._run(padded[top : top + tile_h, left : left + tile_w])
                out[y0 * s : y1 * s, x0 * s : x1 * s] = result[(y0 - top) * s : (y1 - top) * s, (x0 - left) * s : (x1 - left) * s]
        return out

    def upscale_float(self, lr: np.ndarray) -> np.ndarray:
        if self.tile or lr.shape[0] * lr.shape[1] > self.max_pixels:
            return self._tiled(lr)
        return self._run(lr)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        from mobile_sr.metrics import to_uint8

        return to_uint8(self.upscale_float(lr))


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """``(tile start, kept start, kept end)`` of tiles of ``tile`` pixels (``tile > 2 * overlap``)
    along ``length`` pixels. The kept parts partition ``[0, length)``; each ends in the middle of
    two neighbours' shared pixels, at least ``overlap`` from a tile's inner edge."""
    if length <= tile:
        return [(0, 0, length)]
    starts = [*range(0, length - tile, tile - 2 * overlap), length - tile]
    bounds = [0, *((start + tile + following) // 2 for start, following in zip(starts, starts[1:])), length]
    return [(start, bounds[index], bounds[index + 1]) for index, start in enumerate(starts)]


def _size_multiple(path: Path) -> int:
    """The ``size_multiple`` that ``mobile-sr export`` wrote into the JSON report next to the
    model (the input size a model that downsamples needs); without a report, read from the graph."""
    report = path.with_suffix(".json")
    if not report.is_file():
        return graph_size_multiple(path)
    try:
        content = json.loads(report.read_text())
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        content = None
    if isinstance(content, dict) and "size_multiple" not in content:
        return graph_size_multiple(path)
    value = content.get("size_multiple") if isinstance(content, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TFLiteError(f"{report}: damaged export report (it should be a JSON object whose size_multiple, a whole "
                          f"number of 1 or more, is the input multiple {path.name} needs); re-export the model, "
                          "or delete the report to read the multiple from the model itself")
    return value


def _pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """``image`` (H x W x C) reflect-padded at the bottom and right to multiples of ``multiple``."""
    pad = ((0, -image.shape[0] % multiple), (0, -image.shape[1] % multiple), (0, 0))
    return np.pad(image, pad, mode="reflect") if pad[0][1] or pad[1][1] else image


class TFLiteMerger:
    """An HDR ``.tflite`` as a merger: ``scene -> linear HDR`` (see
    :mod:`mobile_sr.hdr_evaluation`). The exposures enter as their network inputs (LDR and
    L^2.2 / t, quantized with the graph's input scale, 1/255 for int8: the LDR half is then exact
    8-bit); the tonemapped output is mapped back to linear radiance. Whole scenes run by resizing
    the input tensors, reflect-padded to a multiple of ``size_multiple`` (a U-Net's downsampling;
    by default the ``size_multiple`` that ``mobile-sr export`` wrote into the JSON report next to
    the model, else read from the graph)."""

    def __init__(self, path: str | Path, *, threads: int | None = None, size_multiple: int | None = None):
        self.path = Path(path)
        self.interpreter = load_interpreter(path, threads=threads, expect=HDR_INPUTS)
        self.size_multiple = _size_multiple(self.path) if size_multiple is None else int(size_multiple)
        # inputs in exposure order, whatever order the converter gave them
        self.inputs = sorted(self.interpreter.get_input_details(), key=lambda d: d["name"])
        self.output = self.interpreter.get_output_details()[0]

    def tonemapped(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Run three ``H x W x 6`` network inputs; returns the ``H x W x 3`` tonemapped output."""
        height, width = inputs[0].shape[:2]
        padded = [_pad_to_multiple(x, self.size_multiple) for x in inputs]
        feeds = [(detail, _quantize(x[None], detail)) for detail, x in zip(self.inputs, padded)]
        output = _invoke(self.interpreter, self.path, feeds, self.size_multiple)[0, :height, :width]
        return _dequantize(output, self.output)

    def __call__(self, scene) -> np.ndarray:
        from mobile_sr.data.hdr import network_inputs
        from mobile_sr.metrics import inverse_mu_tonemap

        tonemapped = self.tonemapped(network_inputs(scene.ldrs, scene.exposure_times))
        return inverse_mu_tonemap(tonemapped).astype(np.float32)
