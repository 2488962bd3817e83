"""Running an exported SR model in a host runtime (LiteRT or OpenVINO, :mod:`mobile_sr.runtimes`):
whole images by resizing the input tensor, or seamless overlapping tiles (:mod:`mobile_sr.tiling`)
for fixed-size models and large images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mobile_sr.core.errors import TFLiteError
from mobile_sr.core.images import pad_to_multiple
from mobile_sr.metrics import to_uint8
from mobile_sr.runtimes import DEFAULT_RUNTIME, load_runtime, run_graph
from mobile_sr.tasks.sr.task import SR_TASK
from mobile_sr.tflite import (
    dequantize,
    graph_receptive_radius,
    is_dynamic,
    probe_side,
    quantize,
    report_size_multiple,
    shape_text,
)
from mobile_sr.tiling import MAX_WHOLE_IMAGE_PIXELS, Tiling


class TFLiteUpscaler:
    """Callable ``uint8 LR RGB -> uint8 SR RGB`` backed by a .tflite SR model.

    Whole images run by resizing the input tensor (exact: the same arithmetic as a full-size
    model), reflect-padded to a multiple of ``size_multiple`` (a model that unshuffles its input;
    by default from the JSON report next to the model, else from the graph) and cropped back.
    Images of more than ``max_pixels`` LR pixels run in square tiles (:class:`~mobile_sr.tiling.Tiling`;
    not a model that pools over the whole image), so that memory stays bounded; with ``tile`` set,
    every image runs in tiles of the model's input size (a dynamic-size model: those square tiles). Tiles overlap by the model's receptive radius
    read from the graph (a quarter of the tile's side where that does not fit) and only their
    centres are kept, so the result equals a whole-image run. ``log`` gets the progress of long
    tiled images. ``runtime`` runs the model (one of :data:`~mobile_sr.runtimes.RUNTIMES`).
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, tile: bool = False,
                 max_pixels: int = MAX_WHOLE_IMAGE_PIXELS, size_multiple: int | None = None,
                 runtime: str = DEFAULT_RUNTIME, log: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.runtime = load_runtime(path, runtime=runtime, threads=threads)
        SR_TASK.check_graph(self.runtime, shape_text)
        self.size_multiple = report_size_multiple(self.path) if size_multiple is None else int(size_multiple)
        self.input, self.output = self.runtime.inputs[0], self.runtime.outputs[0]
        if is_dynamic(self.input):  # the output's size is known only once the graph has run
            in_height = in_width = probe_side(self.size_multiple)
            probe = np.zeros((1, in_height, in_width, 3), self.input["dtype"])
            out_height, out_width = (int(v) for v in run_graph(self.runtime, [(self.input, probe)],
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
        self.tile = tile
        self.tiling = Tiling(size_multiple=self.size_multiple, radius=graph_receptive_radius(self.path),
                             max_pixels=max_pixels, log=log, name=self.path.name)
        if tile and self.tile_shape is not None and self.tiling.radius != 0 and self.tiling.margin(min(self.tile_shape)) == 0:
            raise TFLiteError(f"{path}: its fixed {in_height}x{in_width} input is too small to run in overlapping tiles; "
                              "run it without --tile, or export the model with a larger --input-size")

    def _run(self, lr: np.ndarray) -> np.ndarray:
        height, width = lr.shape[:2]
        lr = pad_to_multiple(lr, self.size_multiple)
        output = run_graph(self.runtime, [(self.input, quantize(lr[None], self.input))], self.size_multiple)[0]
        return dequantize(output[: height * self.scale, : width * self.scale], self.output)

    def _upscale(self, lr: np.ndarray, finish: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        if self.tile and self.tile_shape is not None:
            # an image smaller than the fixed input is zero-padded up to it, and its output cropped back
            height, width = lr.shape[:2]
            padded = np.pad(lr, [(0, max(side - length, 0)) for side, length in zip(self.tile_shape, (height, width), strict=True)]
                            + [(0, 0)])
            output = self.tiling.run(self._run, [padded], finish=finish, tile_shape=self.tile_shape)
            return output[: height * self.scale, : width * self.scale]
        if self.tile:
            return self.tiling.run(self._run, [lr], finish=finish)
        return self.tiling.apply(self._run, [lr], finish=finish)

    def upscale_float(self, lr: np.ndarray) -> np.ndarray:
        return self._upscale(lr, lambda output: output)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        return self._upscale(lr, to_uint8)

