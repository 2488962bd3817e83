"""Running an exported HDR model in a host runtime (LiteRT or OpenVINO, :mod:`mobile_sr.runtimes`):
three exposures in, linear radiance out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mobile_sr.core.images import pad_to_multiple
from mobile_sr.metrics import inverse_mu_tonemap
from mobile_sr.runtimes import DEFAULT_RUNTIME, load_runtime, run_graph
from mobile_sr.tasks.hdr.scene import network_inputs
from mobile_sr.tasks.hdr.task import HDR_TASK
from mobile_sr.tflite import dequantize, graph_receptive_radius, quantize, report_size_multiple, shape_text
from mobile_sr.tiling import MAX_WHOLE_IMAGE_PIXELS, Tiling


class TFLiteMerger:
    """An HDR ``.tflite`` as a merger: ``scene -> linear HDR`` (see
    :mod:`mobile_sr.tasks.hdr.evaluation`). The exposures enter as their network inputs (LDR and
    L^2.2 / t, quantized with the graph's input scale, 1/255 for int8: the LDR half is then exact
    8-bit); the tonemapped output is mapped back to linear radiance. Whole scenes run by resizing
    the input tensors, reflect-padded to a multiple of ``size_multiple`` (a U-Net's downsampling;
    by default the ``size_multiple`` that ``mobile-sr export`` wrote into the JSON report next to
    the model, else read from the graph). Scenes of more than ``max_pixels`` pixels run in seamless
    tiles (:class:`~mobile_sr.tiling.Tiling`; progress to ``log``), so that memory stays bounded.
    ``runtime`` runs the model (one of :data:`~mobile_sr.runtimes.RUNTIMES`)."""

    def __init__(self, path: str | Path, *, threads: int | None = None, size_multiple: int | None = None,
                 max_pixels: int = MAX_WHOLE_IMAGE_PIXELS, runtime: str = DEFAULT_RUNTIME,
                 log: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.runtime = load_runtime(path, runtime=runtime, threads=threads)
        HDR_TASK.check_graph(self.runtime, shape_text)
        self.size_multiple = report_size_multiple(self.path) if size_multiple is None else int(size_multiple)
        # inputs in exposure order, whatever order the converter gave them
        self.inputs = sorted(self.runtime.inputs, key=lambda d: d["name"])
        self.output = self.runtime.outputs[0]
        self.tiling = Tiling(size_multiple=self.size_multiple, radius=graph_receptive_radius(self.path),
                             max_pixels=max_pixels, log=log, name=self.path.name)

    def tonemapped(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Run three ``H x W x 6`` network inputs; returns the ``H x W x 3`` tonemapped output."""
        height, width = inputs[0].shape[:2]
        padded = [pad_to_multiple(x, self.size_multiple) for x in inputs]
        feeds = [(detail, quantize(x[None], detail)) for detail, x in zip(self.inputs, padded, strict=True)]
        output = run_graph(self.runtime, feeds, self.size_multiple)[0, :height, :width]
        return dequantize(output, self.output)

    def __call__(self, scene) -> np.ndarray:
        # the network inputs are made pixel by pixel from the exposures: tile by tile
        return self.tiling.apply(lambda *ldrs: self.tonemapped(network_inputs(ldrs, scene.exposure_times)),
                                 list(scene.ldrs), finish=lambda tonemapped: inverse_mu_tonemap(tonemapped).astype(np.float32))
