"""Running an exported SR model in LiteRT: whole images by resizing the input tensor, or seamless
overlapping tiles for fixed-size models and very large images."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import TFLiteError
from mobile_sr.core.images import pad_to_multiple
from mobile_sr.metrics import to_uint8
from mobile_sr.tasks.sr.task import SR_TASK
from mobile_sr.tflite import (
    dequantize,
    invoke,
    is_dynamic,
    load_interpreter,
    probe_side,
    quantize,
    report_size_multiple,
    shape_text,
)


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
        SR_TASK.check_graph(self.interpreter, self.path, shape_text)
        self.size_multiple = report_size_multiple(self.path) if size_multiple is None else int(size_multiple)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        if is_dynamic(self.input):  # the output's size is known only once the graph has run
            in_height = in_width = probe_side(self.size_multiple)
            probe = np.zeros((1, in_height, in_width, 3), self.input["dtype"])
            out_height, out_width = (int(v) for v in invoke(self.interpreter, self.path, [(self.input, probe)],
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
        lr = pad_to_multiple(lr, self.size_multiple)
        output = invoke(self.interpreter, self.path, [(self.input, quantize(lr[None], self.input))], self.size_multiple)[0]
        return dequantize(output[: height * self.scale, : width * self.scale], self.output)

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
        return to_uint8(self.upscale_float(lr))


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int]]:
    """``(tile start, kept start, kept end)`` of tiles of ``tile`` pixels (``tile > 2 * overlap``)
    along ``length`` pixels. The kept parts partition ``[0, length)``; each ends in the middle of
    two neighbours' shared pixels, at least ``overlap`` from a tile's inner edge."""
    if length <= tile:
        return [(0, 0, length)]
    starts = [*range(0, length - tile, tile - 2 * overlap), length - tile]
    bounds = [0, *((start + tile + following) // 2 for start, following in itertools.pairwise(starts)), length]
    return [(start, bounds[index], bounds[index + 1]) for index, start in enumerate(starts)]
