"""Running an exported HDR model in LiteRT: three exposures in, linear radiance out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobile_sr.core.images import pad_to_multiple
from mobile_sr.metrics import inverse_mu_tonemap
from mobile_sr.tasks.hdr.data import network_inputs
from mobile_sr.tasks.hdr.task import HDR_TASK
from mobile_sr.tflite import dequantize, invoke, load_interpreter, quantize, report_size_multiple, shape_text


class TFLiteMerger:
    """An HDR ``.tflite`` as a merger: ``scene -> linear HDR`` (see
    :mod:`mobile_sr.tasks.hdr.evaluation`). The exposures enter as their network inputs (LDR and
    L^2.2 / t, quantized with the graph's input scale, 1/255 for int8: the LDR half is then exact
    8-bit); the tonemapped output is mapped back to linear radiance. Whole scenes run by resizing
    the input tensors, reflect-padded to a multiple of ``size_multiple`` (a U-Net's downsampling;
    by default the ``size_multiple`` that ``mobile-sr export`` wrote into the JSON report next to
    the model, else read from the graph)."""

    def __init__(self, path: str | Path, *, threads: int | None = None, size_multiple: int | None = None):
        self.path = Path(path)
        self.interpreter = load_interpreter(path, threads=threads)
        HDR_TASK.check_graph(self.interpreter, self.path, shape_text)
        self.size_multiple = report_size_multiple(self.path) if size_multiple is None else int(size_multiple)
        # inputs in exposure order, whatever order the converter gave them
        self.inputs = sorted(self.interpreter.get_input_details(), key=lambda d: d["name"])
        self.output = self.interpreter.get_output_details()[0]

    def tonemapped(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Run three ``H x W x 6`` network inputs; returns the ``H x W x 3`` tonemapped output."""
        height, width = inputs[0].shape[:2]
        padded = [pad_to_multiple(x, self.size_multiple) for x in inputs]
        feeds = [(detail, quantize(x[None], detail)) for detail, x in zip(self.inputs, padded, strict=True)]
        output = invoke(self.interpreter, self.path, feeds, self.size_multiple)[0, :height, :width]
        return dequantize(output, self.output)

    def __call__(self, scene) -> np.ndarray:
        tonemapped = self.tonemapped(network_inputs(scene.ldrs, scene.exposure_times))
        return inverse_mu_tonemap(tonemapped).astype(np.float32)
