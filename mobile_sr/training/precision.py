"""Mixed-precision float training: which precision a run trains in, and the model it trains.

Under ``mixed_bfloat16`` or ``mixed_float16`` (Keras' mixed-precision policies) the layers compute
in 16 bits while every variable stays float32: the optimizer updates float32 weights, the EMA copy
is a float32 model, and the run's weights, QAT and export are those of the float32 model. The
output layers, and the weightless layers between them and the last weighted layers (SCSRN's
depth-to-space and clip), run in float32, so the output and the loss are float32.

QAT stays float32: tfmot's fake-quantization ops have float32 kernels only, and QAT simulates the
int8 rounding that 16-bit activations would blur.
"""

from __future__ import annotations

from pathlib import Path

from mobile_sr.core.errors import ConfigError
from mobile_sr.runs import PRECISIONS

AUTO = "auto"  # the CLI's default: resolved by resolve_precision before the run's config is made
# bfloat16 hardware on which mixed_bfloat16 measured faster than float32 with no PSNR loss, so
# that "auto" picks it there (README, Training, "Precision"). Measured on the 2-core development
# machine (Xeon with AMX-BF16), SCSRN x3, batch 16 of 64x64, 1 thread, while other jobs kept the
# 1-minute load average at 4-19:
# - speed: `taskset -c 1 benchmarks/float_training.py --parts throughput --threads 1` (interleaved
#   in one process, load 1.2-2.9): float32 6.36 steps/s, mixed_bfloat16 18.92 (x2.97); with XLA
#   3.96 and 4.07 (slower, so XLA stays off); at load 13.8-15.2 (`--rounds 3 --throughput-steps
#   10`): 0.75 and 1.85 (x2.47), with XLA 0.60 and 0.51;
# - quality at equal steps: `mobile-sr train --data train291 --val-data set5 --steps 2000 --seed 0
#   --threads 1 --precision P`, started together on their own cores, scored on Set5 / Set14 in float and
#   as int8 (post-training-quantized export, LiteRT): float32 32.497 / 29.218 float, 32.488 / 29.207
#   int8; mixed_bfloat16 32.500 / 29.216 float, 32.491 / 29.207 int8 (all within 0.003 dB);
# - at equal time (float32 for 2000 / 2.47 = 810 steps): float32 32.151 / 29.005 float, 32.141 /
#   28.991 int8, 0.35 / 0.21 dB below mixed_bfloat16's 2000 steps.
# One seed and one budget; AVX512-BF16 without AMX and GPUs were not measured, so "auto" keeps
# float32 there.
AUTO_BF16_HARDWARE = ("amx",)
CPU_INFO = Path("/proc/cpuinfo")


def bf16_hardware() -> str | None:
    """What computes bfloat16 natively where training runs: "gpu" (a visible GPU of compute
    capability 8.0 or more), "amx" (a CPU with AMX-BF16 tiles), "avx512" (a CPU with AVX512-BF16
    dot products), or None (bfloat16 is emulated, or there is no such GPU)."""
    from mobile_sr.core.backend import tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:  # training runs on the GPU
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return "gpu" if capability >= (8, 0) else None
    try:
        flags = set(CPU_INFO.read_text().split())
    except OSError:  # not Linux
        return None
    return "amx" if "amx_bf16" in flags else "avx512" if "avx512_bf16" in flags else None


def resolve_precision(precision: str) -> str:
    """``precision``, or for "auto" the one measured fastest without loss here: mixed_bfloat16 on
    :data:`AUTO_BF16_HARDWARE`, float32 elsewhere."""
    if precision != AUTO:
        return precision
    return "mixed_bfloat16" if bf16_hardware() in AUTO_BF16_HARDWARE else "float32"


def check_precision_runs_here(precision: str) -> None:
    """Refuse mixed_float16 without a GPU: CPUs emulate float16 compute, hundreds of times slower."""
    from mobile_sr.core.backend import tf

    if precision == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        hint = "mixed_bfloat16 (this CPU computes bfloat16 natively)" if bf16_hardware() else "float32"
        raise ConfigError(f"mixed_float16 runs fast only on NVIDIA GPUs, and this machine has none (its CPU emulates "
                          f"float16, hundreds of times slower); train with precision {hint}")


def float32_layers(model) -> set[str]:
    """Names of the layers that compute in float32 under a mixed policy: the output layers, the
    weightless layers between them and the last weighted layers, and layers that declare
    ``needs_float32`` (e.g. network deconvolution's whitening)."""
    from mobile_sr.core.backend import keras, tf

    chosen = {layer.name for layer in model.layers if getattr(layer, "needs_float32", False)}
    outputs = [model.get_layer(name) for name in model.output_names]
    pending = list(outputs)
    while pending:
        layer = pending.pop()
        weightless = not layer.weights
        if layer.name in chosen or isinstance(layer, keras.layers.InputLayer) or not (weightless or layer in outputs):
            continue
        chosen.add(layer.name)
        if weightless:  # the float32 cast moves up to the last weighted layers
            pending += [parent for node in layer.inbound_nodes for parent in tf.nest.flatten(node.inbound_layers)]
    return chosen


def with_precision(model, precision: str):
    """``model`` computing in ``precision`` (one of :data:`~mobile_sr.runs.PRECISIONS`): itself for
    float32, else a clone under the mixed policy (layers of :func:`float32_layers` in float32)
    holding the same float32 weights, layer names and checkpoint structure."""
    from mobile_sr.core.backend import keras

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return model
    keep_float32 = float32_layers(model)

    def clone(layer):
        policy = "float32" if layer.name in keep_float32 else precision
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

    mixed = keras.models.clone_model(model, clone_function=clone)
    mixed.set_weights(model.get_weights())
    return mixed


def optimizer_for(optimizer, precision: str):
    """``optimizer``, wrapped in dynamic loss scaling for float16, whose gradients underflow."""
    from mobile_sr.core.backend import keras

    return keras.mixed_precision.LossScaleOptimizer(optimizer) if precision == "mixed_float16" else optimizer
