"""Running ``.tflite`` SR models in the LiteRT interpreter (``ai_edge_litert``), the runtime
users deploy: loading with clear errors, uint8/int8/float I/O, whole-image inference by resizing
the input tensor, and seamless tiling for fixed-size models or very large images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mobile_sr.errors import TFLiteError
from mobile_sr.native_logs import silenced_native_stderr


def load_interpreter(path: str | Path, *, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    if not path.is_file():
        raise TFLiteError(f"{path}: no such file; export one with 'mobile-sr export'")
    try:
        with silenced_native_stderr():
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TFLiteError(f"{path}: not a valid TFLite model ({reason}); re-export it") from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][-1] != 3:
        raise TFLiteError(f"{path}: expected one 1xHxWx3 image input and one output, got "
                          f"{[list(d['shape']) for d in inputs]} -> {[list(d['shape']) for d in outputs]}")
    return interpreter


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
    model). Images larger than ``max_pixels`` at once, or any image when ``tile`` is set, run in
    tiles of the model's input size that overlap by ``overlap`` LR pixels on each side; only the
    centre of each tile is kept, so with an overlap at least the network's receptive radius the
    result has no seams.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, tile: bool = False,
                 overlap: int = 8, max_pixels: int = 4_000_000):
        self.path = Path(path)
        self.interpreter = load_interpreter(path, threads=threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.tile_shape = tuple(int(v) for v in self.input["shape"][1:3])
        self.scale = int(self.output["shape"][1]) // self.tile_shape[0]
        self.tile, self.overlap, self.max_pixels = tile, overlap, max_pixels
        if self.scale < 1 or self.tile_shape[0] * self.scale != self.output["shape"][1]:
            raise TFLiteError(f"{path}: output {list(self.output['shape'])} is not an integer multiple of "
                              f"input {list(self.input['shape'])}")
        if tile and min(self.tile_shape) <= 2 * overlap:
            raise TFLiteError(f"tiles of {self.tile_shape} LR pixels cannot overlap by {overlap}; lower the overlap")

    def _run(self, lr: np.ndarray) -> np.ndarray:
        shape = [1, lr.shape[0], lr.shape[1], 3]
        if list(self.interpreter.get_input_details()[0]["shape"]) != shape:
            self.interpreter.resize_tensor_input(self.input["index"], shape, strict=False)
            self.interpreter.allocate_tensors()
        self.interpreter.set_tensor(self.input["index"], _quantize(lr[None], self.input))
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self.interpreter.get_output_details()[0]["index"])[0]
        return _dequantize(output, self.output)

    def _starts(self, length: int, tile: int) -> list[int]:
        if length <= tile:
            return [0]
        step = tile - 2 * self.overlap
        return sorted({min(i * step, length - tile) for i in range(math.ceil((length - tile) / step) + 1)})

    def _tiled(self, lr: np.ndarray) -> np.ndarray:
        s, (tile_h, tile_w) = self.scale, self.tile_shape
        height, width = lr.shape[:2]
        padded = np.zeros((max(height, tile_h), max(width, tile_w), 3), lr.dtype)  # small images: zero pad
        padded[:height, :width] = lr
        out = np.zeros((padded.shape[0] * s, padded.shape[1] * s, 3), np.float32)
        rows, cols = self._starts(padded.shape[0], tile_h), self._starts(padded.shape[1], tile_w)
        for top in rows:
            for left in cols:
                result = self._run(padded[top : top + tile_h, left : left + tile_w])
                # keep the centre: drop `overlap` pixels on every side that touches another tile
                y0 = 0 if top == rows[0] else self.overlap
                x0 = 0 if left == cols[0] else self.overlap
                y1 = tile_h if top == rows[-1] else tile_h - self.overlap
                x1 = tile_w if left == cols[-1] else tile_w - self.overlap
                out[(top + y0) * s : (top + y1) * s, (left + x0) * s : (left + x1) * s] = result[y0 * s : y1 * s, x0 * s : x1 * s]
        return out[: height * s, : width * s]

    def upscale_float(self, lr: np.ndarray) -> np.ndarray:
        if self.tile or lr.shape[0] * lr.shape[1] > self.max_pixels:
            return self._tiled(lr)
        return self._run(lr)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        from mobile_sr.metrics import to_uint8

        return to_uint8(self.upscale_float(lr))
