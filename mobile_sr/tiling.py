"""Running a model on a large image in overlapping tiles, so that memory stays bounded by one
tile's activations instead of the whole image's. Each tile carries a margin of the model's
receptive radius (read from its graph, :func:`mobile_sr.tflite.graph_receptive_radius`) and only
its centre is kept, so the tiles equal one whole-image run; the output is assembled straight into
its final dtype (uint8 for SR), never as a float copy of the whole image.

A model without a receptive radius (one that pools over the whole image) would give other results
in tiles: it runs whole unless tiles are asked for, and a note says which."""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mobile_sr.core.progress import format_duration
from mobile_sr.tflite import graph_receptive_radius, graph_size_multiple

# Images of more input pixels than this run in tiles (every standard SR test set runs whole): a
# whole 2000x2000 LR image took 2.4 GB in an int8 SCSRN x2 (3.3 GB in float), a 1024x1024 one 0.65 GB.
MAX_WHOLE_IMAGE_PIXELS = 1024 * 1024
# The tiles' size, margins included: 512x512 tiles took 0.16 GB in that SCSRN (0.22 GB in float)
# and ran as fast as larger ones.
TILE_PIXELS = 512 * 512
# The margin of a model without a receptive radius (it pools over the whole image) in tiles asked
# for: they then differ slightly from a whole-image run.
UNBOUNDED_MODEL_MARGIN = 16
# A tiled run that takes longer logs a progress line this often.
PROGRESS_SECONDS = 10.0


def tile_spans(length: int, tile: int, margin: int, multiple: int = 1) -> list[tuple[int, int, int, int]]:
    """``(start, stop, kept start, kept stop)`` of tiles of at most ``tile`` pixels along ``length``.
    The kept parts partition ``[0, length)``, each at least ``margin`` from its tile's inner edges
    when ``tile >= 2 * margin + multiple``. Tiles start at multiples of ``multiple``, so a model that
    unshuffles its input sees the whole image's grid; the last ends at ``length``, shorter than
    ``tile`` by less than ``multiple`` (reflect-padding it back to a multiple pads it as the whole
    image would be)."""
    if length <= tile:
        return [(0, length, 0, length)]
    step = max((tile - 2 * margin) // multiple, 1) * multiple
    last = -(-(length - tile) // multiple) * multiple
    starts = [*range(0, last, step), last]
    bounds = [0, *((start + tile + following) // 2 for start, following in itertools.pairwise(starts)), length]
    return [(start, min(start + tile, length), bounds[index], bounds[index + 1]) for index, start in enumerate(starts)]


class Tiling:
    """How a model runs images of more than ``max_pixels`` input pixels: in tiles of about
    ``min(max_pixels, TILE_PIXELS)`` whose margins cover its receptive ``radius`` (None: it has
    none, and runs whole unless tiles are asked for), aligned to its ``size_multiple``, with
    progress lines and notes through ``log``; ``name`` names the model in them."""

    def __init__(self, *, size_multiple: int, radius: int | None, max_pixels: int = MAX_WHOLE_IMAGE_PIXELS,
                 log: Callable[[str], None] | None = None, name: str = "the model"):
        if not (isinstance(max_pixels, int) and max_pixels >= 1):
            raise ValueError(f"max_pixels must be a whole number of 1 or more, got {max_pixels!r}")
        self.size_multiple, self.radius, self.max_pixels, self.log, self.name = size_multiple, radius, max_pixels, log, name
        self._noted = False

    def applies(self, image: np.ndarray) -> bool:
        """Whether ``image`` (H x W x C) runs in tiles: it has more than ``max_pixels`` pixels and
        the model a receptive radius (else it runs whole, as a note says)."""
        if image.shape[0] * image.shape[1] <= self.max_pixels:
            return False
        if self.radius is None:
            self._note(f"note: {self.name} pools over the whole image, so it runs on whole images however large "
                       "(tiles would change its output)")
        return self.radius is not None

    def margin(self, tile: int) -> int:
        """The margin of tiles of ``tile`` pixels: the receptive radius, but at most what leaves
        each tile a centre (a quarter of it)."""
        wanted = UNBOUNDED_MODEL_MARGIN if self.radius is None else self.radius
        return wanted if 2 * wanted + self.size_multiple <= tile else tile // 4

    def _square_side(self) -> int:
        """The side of square tiles of about ``min(max_pixels, TILE_PIXELS)``: a multiple, at least
        two margins and one multiple wide."""
        multiple, wanted = self.size_multiple, UNBOUNDED_MODEL_MARGIN if self.radius is None else self.radius
        side = math.isqrt(min(self.max_pixels, TILE_PIXELS))
        return max(side // multiple, -(-(2 * wanted + multiple) // multiple)) * multiple

    def _note(self, note: str) -> None:
        """Log ``note``, the first time only."""
        if not self._noted and self.log is not None:
            self.log(note)
            self._noted = True

    def apply(self, run: Callable[..., np.ndarray], inputs: list[np.ndarray], *,
              finish: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``finish(run(*inputs))``, in tiles where :meth:`applies` (see :meth:`run`)."""
        return self.run(run, inputs, finish=finish) if self.applies(inputs[0]) else finish(run(*inputs))

    def run(self, run: Callable[..., np.ndarray], inputs: list[np.ndarray], *, finish: Callable[[np.ndarray], np.ndarray],
            tile_shape: tuple[int, int] | None = None) -> np.ndarray:
        """``finish(run(*inputs))`` tile by tile: ``inputs`` are the model's H x W x C inputs,
        ``run`` returns a tile's output (``scale`` times its size, any channels), ``finish`` turns a
        kept part into the final dtype. Tiles of ``tile_shape`` (default: squares of about
        ``min(max_pixels, TILE_PIXELS)``)."""
        height, width = inputs[0].shape[:2]
        if tile_shape is None:
            tile_shape = (self._square_side(),) * 2
        margins = [self.margin(tile) for tile in tile_shape]
        if self.radius is None:
            self._note(f"note: {self.name} pools over the whole image, so its tiles differ slightly from one "
                       "whole-image run")
        elif min(margins) < self.radius:
            self._note(f"note: {self.name}'s {tile_shape[0]}x{tile_shape[1]} tiles overlap by {min(margins)} pixels, "
                       f"less than its receptive radius of {self.radius}: their seams may show; export the model "
                       "with a larger --input-size")
        rows, columns = (tile_spans(length, tile, margin, self.size_multiple)
                         for length, tile, margin in zip((height, width), tile_shape, margins, strict=True))
        count, output = len(rows) * len(columns), None
        started = last_line = time.monotonic()
        for done, ((top, bottom, y0, y1), (left, right, x0, x1)) in enumerate(itertools.product(rows, columns), 1):
            result = run(*(x[top:bottom, left:right] for x in inputs))
            scale = result.shape[0] // (bottom - top)
            kept = finish(result[(y0 - top) * scale : (y1 - top) * scale, (x0 - left) * scale : (x1 - left) * scale])
            if output is None:  # the channels and dtype are those of the model's output, finished
                output = np.empty((height * scale, width * scale, *kept.shape[2:]), kept.dtype)
            output[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = kept
            now = time.monotonic()
            # core.progress.Progress would also log the end of every tiled image, however quick
            if self.log is not None and done < count and now - last_line >= PROGRESS_SECONDS:
                self.log(f"  {self.name}: tile {done}/{count} of {height}x{width}, "
                         f"ETA {format_duration((now - started) * (count - done) / done)}")
                last_line = now
        return output


def keras_tiling(model, *, max_pixels: int = MAX_WHOLE_IMAGE_PIXELS,
                 log: Callable[[str], None] | None = None) -> Callable[..., np.ndarray]:
    """:meth:`Tiling.apply` for a Keras model: ``apply(run, inputs, finish=...)``. The model's size
    multiple and receptive radius are read from its float TFLite graph, which takes a conversion
    (seconds): on its first input of more than ``max_pixels`` pixels."""
    tiling = None

    def apply(run: Callable[..., np.ndarray], inputs: list[np.ndarray], *,
              finish: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        nonlocal tiling
        if tiling is None and inputs[0].shape[0] * inputs[0].shape[1] > max_pixels:
            from mobile_sr.export import convert

            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.tflite"
                path.write_bytes(convert(model, mode="float", input_size=None))
                tiling = Tiling(size_multiple=graph_size_multiple(path), radius=graph_receptive_radius(path),
                                max_pixels=max_pixels, log=log, name=model.name)
        return finish(run(*inputs)) if tiling is None else tiling.apply(run, inputs, finish=finish)

    return apply
