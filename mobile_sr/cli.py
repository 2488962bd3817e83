"""The ``mobile-sr`` command: a thin click group. Each command checks its options, then hands off
to a library entry point (train, finetune, export_run, evaluate, run_benchmark, upscale_path,
merge_exposures) with keyword arguments; choices come from the registries.

Library errors (:class:`MobileSRError`) become a one-line ``Error: ...`` and exit code 1 (130 for
an interrupted training run, as for Ctrl-C); usage errors, and options that do not fit the model
they came with (:class:`OptionError`), exit with 2 (click's convention). TensorFlow is imported
only inside the commands that need it, so ``--help`` answers at once.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from mobile_sr import __version__
from mobile_sr.benchmark.android import DEFAULT_FRAME, DELEGATES
from mobile_sr.core.errors import MobileSRError, OptionError
from mobile_sr.export import IO_TYPES
from mobile_sr.runs import LR_SCHEDULES, PRECISIONS, QAT_ROUNDINGS
from mobile_sr.runtimes import DEFAULT_RUNTIME, OPENVINO_INSTALL, RUNTIMES
from mobile_sr.tasks import baseline_names
from mobile_sr.tasks.hdr.bracket import ALIGNMENTS
from mobile_sr.tasks.hdr.response import RESPONSE_CHOICES
from mobile_sr.tasks.sr.protocol import SCALES, scales_text
from mobile_sr.tiling import MAX_WHOLE_IMAGE_PIXELS, TILE_PIXELS
from mobile_sr.training.precision import AUTO

ROUNDING_CHOICES = [rounding.replace("_", "-") for rounding in QAT_ROUNDINGS]  # data-aware, nearest


class _Command(click.Command):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OptionError as exc:
            raise click.UsageError(str(exc), ctx) from None


class _Group(click.Group):
    command_class = _Command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MobileSRError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(getattr(exc, "exit_code", 1))
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)


def _echo(message: str) -> None:
    click.echo(message)


def _parse_scales(_ctx, _param, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        scales = list(dict.fromkeys(int(part) for part in value.split(",") if part.strip()))  # 2,2 scores once
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers, e.g. 2,3,4") from None
    if not scales or any(s not in SCALES for s in scales):
        raise click.BadParameter(f"scales must be {scales_text()}, got '{value}'")
    return scales


def _cap_threads(_ctx, _param, value: int | None) -> int | None:
    """Refuse a --threads above MAX_THREADS (imported here: mobile_sr.tflite imports numpy)."""
    from mobile_sr.tflite import MAX_THREADS

    if value is not None and value > MAX_THREADS:
        raise click.BadParameter(f"{value} is more than {MAX_THREADS} threads, the most mobile-sr takes (4 per core, at "
                                 "least 256): more only contend for the cores, and tens of thousands crash LiteRT")
    return value


def _set_threads(threads: int | None) -> None:
    if threads:
        from mobile_sr.core.backend import tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _check_output(path: Path | None) -> None:
    """Fail before any expensive work if an output file could not be written at ``path``."""
    if path is not None:
        from mobile_sr.core.files import check_output_path

        check_output_path(path)


def _check_json_option(path: Path | None) -> None:
    if path is not None and path.suffix.lower() != ".json":
        raise click.BadParameter(f"'{path}' must end in .json (the other files are written next to it)", param_hint="--json")


def _check_outputs(outputs: list[Path | None], *, inputs: dict[Path, str]) -> None:
    """Fail before any expensive work if an output would replace an input (``{path: what it is}``) or
    could not be written."""
    inputs = {Path(path).resolve(): what for path, what in inputs.items()}
    for path in filter(None, outputs):
        if path.resolve() in inputs:
            raise click.BadParameter(f"writing {path} would replace {inputs[path.resolve()]}; choose another --json path",
                                     param_hint="--json")
        _check_output(path)


def _check_default_report(path: Path) -> None:
    from mobile_sr.core.errors import OutputError

    try:
        _check_output(path)
    except OutputError as exc:
        raise OutputError(f"{exc} (the default report location: --json chooses another place)") from None


def _model_files(models) -> dict[Path, str]:
    """The .tflite models and the export reports next to them, for :func:`_check_outputs`."""
    files = {}
    for model in map(Path, models):
        files.update({model: f"the model {model}", model.with_suffix(".json"): f"the export report of {model}"})
    return files


def _given_options(ctx: click.Context, names) -> list[str]:
    """The flags (e.g. ``--seed``) of the parameters in ``names`` that the user set explicitly."""
    from click.core import ParameterSource

    return [param.opts[0] for param in ctx.command.params if param.name in names
            and ctx.get_parameter_source(param.name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)]


def _refuse_settings_on_resume(ctx: click.Context, allowed: set[str]) -> None:
    """--resume continues a run with the settings stored in its folder: refuse options, other than
    ``allowed``, that the user gave and that would silently go unused."""
    given = _given_options(ctx, {param.name for param in ctx.command.params} - allowed)
    if given:
        raise click.UsageError(f"--resume continues the run with the settings stored in it; drop {', '.join(given)} "
                               "(a resumed run takes only --steps, --minutes, --threads and --checkpoint-minutes)")


def _parse_model_options(pairs: tuple[str, ...]) -> dict:
    """``("attention=channel", "channels=16", "deconvolution=true")`` -> typed config values."""
    options = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--option")
        lowered = text.lower()
        if lowered in ("true", "false"):
            options[key] = lowered == "true"
            continue
        for kind in (int, float):
            try:
                options[key] = kind(text)
                break
            except ValueError:
                continue
        else:
            options[key] = text
    return options


def _objectives(high_frequency_weight: float, structure_texture: bool) -> dict[str, float]:
    """The objectives --hf-loss and --structure-texture name; none given: the model's default."""
    if not (high_frequency_weight or structure_texture):
        return {}
    return {"structure_texture" if structure_texture else "pixel": 1.0,
            **({"high_frequency": high_frequency_weight} if high_frequency_weight else {})}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mobile-sr")
def main() -> None:
    """Train, quantize, evaluate and benchmark mobile super-resolution networks."""


@main.command()
def models() -> None:
    """List the registered models (task, summary, default config) and the model-free baselines."""
    from mobile_sr.models import get_model_spec, model_names
    from mobile_sr.tasks import task_of_baseline, task_of_model

    descriptions = {"bicubic": "MATLAB-compatible bicubic upscaling",
                    "debevec": "OpenCV's Debevec radiance merge with the camera response (known or calibrated)",
                    "robertson": "OpenCV's Robertson radiance merge with the camera response (known or calibrated)"}
    registered, baselines = model_names(), baseline_names()
    tasks = {**{name: task_of_model(name).name for name in registered},
             **{name: task_of_baseline(name).name for name in baselines}}
    name_width = max(map(len, ["model", "baseline", *tasks]))
    task_width = max(map(len, ["task", *tasks.values()]))

    def row(name: str, task: str, text: str) -> str:
        return f"{name:<{name_width}}  {task:<{task_width}}  {text}"

    click.echo(row("model", "task", "summary"))
    for name in registered:
        spec = get_model_spec(name)
        click.echo(row(name, tasks[name], spec.summary))
        click.echo(row("", "", f"defaults: {spec.config_class().to_dict()}"))
    click.echo("\n" + row("baseline", "task", "model-free, in 'mobile-sr eval --model NAME'"))
    for name in baselines:
        click.echo(row(name, tasks[name], descriptions.get(name, "model-free baseline")))


@main.command()
@click.option("--model", "model_name", default="scsrn", show_default=True, help="Registered model name (see 'mobile-sr models'): SR or HDR.")
@click.option("--data", default="default", show_default=True,
              help="SR: a folder of HR images (searched recursively), a DIV2K root, a named set (train291, t91, bsd200) or 'default' (photos inside "
                   "scikit-image). HDR: a Kalantari root, a folder of photos or .hdr/.exr radiance maps (synthetic exposures), or 'default' "
                   "(synthetic exposures of the scikit-image photos).")
@click.option("--val-data", default=None, help="Validation data (folder or name); default: the default's val photos, or a few images held out of --data.")
@click.option("--scale", type=click.IntRange(min(SCALES), max(SCALES)), default=3, show_default=True, help="SR scale.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Step budget.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None, help="Training-time budget (default 8 when --steps is not given either).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size [SR: 16, HDR: 8].")
@click.option("--patch-size", type=click.IntRange(min=8), default=None, help="Patch side in pixels (SR: of the LR image) [SR: 64, HDR: 128].")
@click.option("--lr", "learning_rate", type=float, default=None, help="Peak Adam learning rate [SR: 1e-3, HDR: 5e-4].")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default="step", show_default=True)
@click.option("--l2-finetune", "l2_finetune_fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Fraction of the budget, at the end, trained with L2 instead of L1.")
@click.option("--ema", "ema_decay", type=click.FloatRange(0, 1, max_open=True), default=0.999, show_default=True, help="Weight EMA decay (0: off).")
@click.option("--channels", type=click.IntRange(min=1), default=None, help="Override the model's channel count.")
@click.option("--option", "model_options", multiple=True, metavar="KEY=VALUE",
              help="Set a model config field (see 'mobile-sr models'), e.g. --option attention=channel --option deconvolution=true; repeatable.")
@click.option("--hf-loss", "high_frequency_weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of RT4KSR's high-frequency L1 added to the loss (0: off).")
@click.option("--structure-texture", is_flag=True,
              help="attention_sr: train the structure and texture branches on the TV decomposition of the HR patch, balanced by GradNorm.")
@click.option("--symmetry", "symmetry_strength", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Strength of the symmetric-weight regularizer, from the first step (0: off; the SCSRN paper's scratch stage).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seeds the weight initialisation and the patch sampling.")
@click.option("--precision", type=click.Choice([AUTO, *PRECISIONS]), default=AUTO, show_default=True,
              help="What the layers compute in; the weights, their EMA and the saved model stay float32. auto: mixed_bfloat16 "
                   "on CPUs with AMX-BF16 (faster at the same PSNR, see README), else float32; the run's config records the choice.")
@click.option("--threads", type=click.IntRange(min=1), callback=_cap_threads, default=None, help="CPU threads for TensorFlow (default: all cores).")
@click.option("--checkpoint-minutes", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="Minutes between checkpoints (the first comes at the first validation).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default runs/<model>-x<scale>, HDR runs/<model>; numbered -2, -3, ... when it holds a run).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in --out.")
def train(model_name, data, val_data, scale, steps, minutes, batch_size, patch_size, learning_rate, lr_schedule,
          l2_finetune_fraction, ema_decay, channels, model_options, high_frequency_weight, structure_texture, symmetry_strength,
          seed, precision, threads, checkpoint_minutes, run_dir, resume, overwrite) -> None:
    """Train a model in float and write a run folder (config, checkpoints, weights, curves)."""
    from mobile_sr.data.locations import stored_dataset_argument
    from mobile_sr.tasks import task_of_model
    from mobile_sr.training import TrainConfig
    from mobile_sr.training import train as run_training
    from mobile_sr.training.precision import resolve_precision

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite contradict each other; pick one")
    if resume:  # without --out, --model and --scale pick the run folder
        _refuse_settings_on_resume(click.get_current_context(), {"steps", "minutes", "threads", "checkpoint_minutes", "run_dir", "resume"}
                                   | (set() if run_dir else {"model_name", "scale"}))
    _set_threads(threads)
    options = {**task_of_model(model_name).model_options(scale=scale), **_parse_model_options(model_options)}
    if channels is not None:
        options["channels"] = channels
    config = TrainConfig.for_model(
        model_name, model_options=options, objectives=_objectives(high_frequency_weight, structure_texture),
        data=stored_dataset_argument(data), val_data=stored_dataset_argument(val_data), steps=steps, minutes=minutes,
        batch_size=batch_size, patch_size=patch_size, learning_rate=learning_rate, lr_schedule=lr_schedule,
        l2_finetune_fraction=l2_finetune_fraction, ema_decay=ema_decay, symmetry_strength=symmetry_strength, seed=seed,
        checkpoint_seconds=60 * checkpoint_minutes, precision=resolve_precision(precision),
    )
    run_training(config, run_dir=run_dir, resume=resume, overwrite=overwrite, log=_echo)


@main.command()
@click.option("--data", required=True,
              help="SR training data: a folder of HR images (searched recursively), a DIV2K root or a named set (train291, t91, bsd200).")
@click.option("--scale", "scales", default="3", show_default=True, callback=_parse_scales, help="SR scale(s), e.g. 2,3,4.")
def prepare(data, scales) -> None:
    """Decode SR training data once into the training cache, which 'train' reads patches from.

    'train' does this itself on first use; run it ahead, e.g. before several workers start. It
    resumes where an interrupted run stopped. HDR training needs no preparation (its scenes are
    made in memory)."""
    from mobile_sr.tasks.sr.data import describe_pairs, stored_sr_pairs

    for scale in scales:
        name, pairs = stored_sr_pairs(data, scale, log=_echo)
        _echo(f"{name} x{scale}: {describe_pairs(pairs)}")


@main.command()
@click.option("--run", "float_run", type=click.Path(path_type=Path), required=True, help="Float run folder to fine-tune.")
@click.option("--data", default=None, help="Training data (default: the float run's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Step budget.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None, help="Time budget (default 8 when --steps is not given either).")
@click.option("--lr", "learning_rate", type=float, default=None, help="Peak Adam learning rate [SR: 1e-5, HDR: 1e-4].")
@click.option("--clip", "clip_threshold", default="mse", show_default=True,
              help="Weight clipping per conv output channel: 'mse' (threshold of least int8 error) or K (K times the channel's RMS weight).")
@click.option("--symmetry", "symmetry_strength", type=click.FloatRange(min=0), default=1e-2, show_default=True,
              help="Strength of the symmetric-weight regularizer.")
@click.option("--plain", is_flag=True, help="Plain QAT: no weight clipping, no regularizer.")
@click.option("--rounding", type=click.Choice(ROUNDING_CHOICES), default=ROUNDING_CHOICES[0], show_default=True,
              help="Start from conv weights rounded onto the int8 grid to fit the data, or to the nearest level (plain tfmot QAT).")
@click.option("--l2-fraction", "l2_fraction", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Fraction of the budget trained with L2 (the rest L1); fine-tuning for PSNR wants L2.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Seeds the calibration batch and the patch sampling (default: the float run's).")
@click.option("--threads", type=click.IntRange(min=1), callback=_cap_threads, default=None, help="CPU threads for TensorFlow.")
@click.option("--checkpoint-minutes", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="Minutes between checkpoints (the first comes at the first validation).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="QAT run folder (default <float run>-qat).")
@click.option("--resume", is_flag=True, help="Continue the QAT run in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in --out.")
def qat(float_run, data, steps, minutes, learning_rate, clip_threshold, symmetry_strength, plain, rounding, l2_fraction,
        seed, threads, checkpoint_minutes, run_dir, resume, overwrite) -> None:
    """Quantization-aware fine-tuning of a float run, with weight clipping and the symmetric regularizer."""
    if clip_threshold != "mse":
        try:
            clip_threshold = float(clip_threshold)
        except ValueError:
            raise click.BadParameter(f"'{clip_threshold}' is neither 'mse' nor a number", param_hint="--clip") from None
        if not 0 < clip_threshold < float("inf"):  # nan fails both
            raise click.BadParameter(f"{clip_threshold:g} is not a positive, finite number of RMS; give e.g. 3, or 'mse'",
                                     param_hint="--clip")
    shaping_given = _given_options(click.get_current_context(), {"clip_threshold", "symmetry_strength"})
    if plain and shaping_given:
        raise click.UsageError(f"--plain turns weight clipping and the regularizer off; drop {', '.join(shaping_given)} "
                               "or --plain")
    from mobile_sr.training import finetune

    if resume:  # --run, and without --out --plain, pick the run folder
        _refuse_settings_on_resume(click.get_current_context(), {"float_run", "steps", "minutes", "threads", "checkpoint_minutes", "run_dir", "resume"}
                                   | (set() if run_dir else {"plain"}))
    _set_threads(threads)
    finetune(float_run, data=data, steps=steps, minutes=minutes, learning_rate=learning_rate,
             clip_threshold=clip_threshold, symmetry_strength=symmetry_strength, plain=plain,
             rounding=rounding.replace("-", "_"), l2_fraction=l2_fraction, seed=seed,
             checkpoint_seconds=60 * checkpoint_minutes, run_dir=run_dir, resume=resume, overwrite=overwrite, log=_echo)


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None, help="Run folder (default: the most recent under runs/).")
@click.option("--int8", "int8", is_flag=True, help="Full-integer int8 (QAT run, or post-training quantization of a float run).")
@click.option("--int16x8", "int16x8", is_flag=True,
              help="int16 activations, int8 weights, float32 I/O: a quality fallback, CPU only (post-training quantization "
                   "of a float run).")
@click.option("--float", "float32", is_flag=True, help="Float32.")
@click.option("--fp16", "fp16", is_flag=True, help="Float16 weights.")
@click.option("--input-size", default=None, help="Input HxW, or 'dynamic' [SR: 360x640 LR, HDR: 1000x1500].")
@click.option("--io-type", type=click.Choice(IO_TYPES), default=None, help="With --int8: the model's input/output type [default: uint8].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output .tflite (default export/<run>_<mode>_<size>.tflite); a JSON report goes next to it.")
def export(run_dir, int8, int16x8, float32, fp16, input_size, io_type, out_path) -> None:
    """Export a trained run to .tflite and verify it in the LiteRT interpreter."""
    from mobile_sr.export import TASK_FRAME, export_run, parse_input_size
    from mobile_sr.runs import latest_run

    modes = [mode for mode, chosen in (("int8", int8), ("int16x8", int16x8), ("float", float32), ("fp16", fp16)) if chosen]
    if len(modes) != 1:
        raise click.UsageError("choose exactly one of --int8, --int16x8, --float or --fp16")
    mode = modes[0]
    if io_type is not None and mode != "int8":
        raise click.UsageError(f"--io-type sets an int8 model's input/output type; a --{mode} model takes and gives "
                               "float32: drop --io-type")
    if out_path is not None and out_path.suffix.lower() != ".tflite":
        raise click.BadParameter(f"'{out_path}' must end in .tflite (the JSON report is written next to it, "
                                 "with .json)", param_hint="--out")
    run_dir = run_dir or latest_run()
    try:
        # TASK_FRAME: export_run picks the task's frame and says it is the default
        size = TASK_FRAME if input_size is None else parse_input_size(input_size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--input-size") from None
    export_run(run_dir=run_dir, mode=mode, input_size=size, io_type=io_type or IO_TYPES[0], out_path=out_path, log=_echo)


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report to this .json file.")
def check(model, json_path) -> None:
    """Accelerator readiness of a .tflite: the ops each delegate (GPU, NNAPI, Hexagon, XNNPACK) would
    take, and why it would leave the others on the CPU."""
    from mobile_sr.core.files import write_json
    from mobile_sr.readiness import check_model, summary_lines

    _check_json_option(json_path)
    _check_outputs([json_path], inputs=_model_files([model]))
    report = check_model(model)
    for line in summary_lines(report, limit=None):
        click.echo(line)
    if json_path is not None:
        write_json(json_path, report)
        click.echo(f"wrote {json_path}")


@main.command()
@click.option("--tflite", "tflite_path", type=click.Path(path_type=Path), required=True, help="Exported .tflite HDR model.")
@click.argument("exposures", nargs=3, type=click.Path(path_type=Path))
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--exposures", "stops", default=None,
              help="The exposures' EV stops, one per file in the order given, e.g. 0,2,4 or -2,0,2 (default: from EXIF).")
@click.option("--response", default="estimate", show_default=True,
              help=f"The camera's response: {RESPONSE_CHOICES}.")
@click.option("--align", type=click.Choice(ALIGNMENTS), default=ALIGNMENTS[0], show_default=True,
              help="Align a handheld bracket to its middle exposure (median threshold bitmaps), or not.")
@click.option("--no-preview", is_flag=True, help="Do not write the tonemapped PNG next to the HDR file.")
@click.option("--threads", type=click.IntRange(min=1), callback=_cap_threads, default=None)
def merge(tflite_path, exposures, destination, stops, response, align, no_preview, threads) -> None:
    """Merge three exposures of a scene, in any order, into DESTINATION (.hdr, .exr or .pfm)."""
    from mobile_sr.tasks.hdr.merge import merge_exposures
    from mobile_sr.tasks.hdr.response import response_from_spec

    _check_output(destination)
    values = None
    if stops is not None:
        try:
            values = [float(v) for v in stops.split(",")]
        except ValueError:
            raise click.BadParameter(f"'{stops}' is not a comma-separated list of EV stops, e.g. 0,2,4",
                                     param_hint="--exposures") from None
        if len(values) != len(exposures):
            raise click.BadParameter(f"'{stops}' gives {len(values)} EV stops; give one per exposure ({len(exposures)}), "
                                     "e.g. 0,2,4", param_hint="--exposures")
    for path in merge_exposures(tflite_path=tflite_path, exposures=list(exposures), stops=values, destination=destination,
                                response=response_from_spec(response), align=align, preview=not no_preview,
                                threads=threads, log=_echo):
        click.echo(f"wrote {path}")


@main.command()
@click.option("--tflite", "tflite_path", type=click.Path(path_type=Path), required=True, help="Exported .tflite SR model.")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--tile", is_flag=True, help="Run every image in tiles of the model's input size, or of "
                                           f"{math.isqrt(TILE_PIXELS)}x{math.isqrt(TILE_PIXELS)} for a dynamic-size model "
                                           f"(default: only images above {MAX_WHOLE_IMAGE_PIXELS / 1e6:.0f} MP, in such tiles).")
@click.option("--threads", type=click.IntRange(min=1), callback=_cap_threads, default=None)
def upscale(tflite_path, source, destination, tile, threads) -> None:
    """Upscale an image (or every image of a folder into a folder) with a .tflite model."""
    from mobile_sr.tasks.sr.upscale import upscale_path

    _check_output(destination if destination.suffix and not destination.is_dir() else destination / "upscaled.png")

    for written in upscale_path(tflite_path=tflite_path, source=source, destination=destination, tile=tile, threads=threads,
                                log=_echo):
        click.echo(f"wrote {written}")


@main.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--threads", default="1,2", show_default=True, help="Thread counts, e.g. 1,2,all.")
@click.option("--runs", type=click.IntRange(min=1), default=30, show_default=True, help="Timed runs per configuration.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None, help="Time budget per configuration instead of --runs (host).")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--xnnpack", type=click.Choice(["on", "off", "both"]), default="on", show_default=True, help="Host: LiteRT's XNNPACK delegate.")
@click.option("--runtime", "runtime", type=click.Choice([*RUNTIMES, "both"]), default=DEFAULT_RUNTIME, show_default=True,
              help="Host: LiteRT (what phones run), OpenVINO (reads the .tflite itself; optional extra: "
                   f"{OPENVINO_INSTALL}), or both side by side, with how far OpenVINO's output is from LiteRT's.")
@click.option("--android", is_flag=True, help="Run on a phone over adb with TFLite's benchmark_model.")
@click.option("--serial", default=None, help="Android device serial (adb devices), several comma-separated, or 'all'.")
@click.option("--delegate", type=click.Choice(DELEGATES), default="xnnpack", show_default=True, help="Android delegate.")
@click.option("--benchmark-binary", type=click.Path(path_type=Path), default=None, help="benchmark_model for the phone's ABI (or $MOBILE_SR_BENCHMARK_MODEL).")
@click.option("--apk", is_flag=True, help="Use the TFLite benchmark APK instead of the binary.")
@click.option("--nnapi-accelerator", default=None, help="NNAPI accelerator name.")
@click.option("--profile", is_flag=True, help="Android: op profiling (per node type, also as <json>_ops.csv).")
@click.option("--check-output", "check_output", default=None, metavar="IMAGE|default",
              help="Android: also run this frame (resized to each model's input; 'default': a scikit-image photo) "
                   "through each model on the phone and compare the output with the host's LiteRT output.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the results (a list) to this .json file, and a CSV next to it.")
@click.option("--compare", "eval_jsons", multiple=True, type=click.Path(path_type=Path),
              help="Eval report(s) of the same models ('mobile-sr eval --tflite --json'): write a Markdown table and a PSNR-vs-latency PNG next to --json.")
def bench(models, threads, runs, seconds, warmup, xnnpack, runtime, android, serial, delegate, benchmark_binary, apk,
          nnapi_accelerator, profile, check_output, json_path, eval_jsons) -> None:
    """Per-frame latency of .tflite models on this host (LiteRT, OpenVINO) or on an Android phone (adb)."""
    from mobile_sr.benchmark import DEFAULT_REPORT, run_benchmark
    from mobile_sr.benchmark.host import parse_threads
    from mobile_sr.benchmark.schema import op_profile_csv_path

    _check_json_option(json_path)
    try:
        thread_counts = parse_threads(threads)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--threads") from None
    ctx = click.get_current_context()
    if len(_given_options(ctx, {"runs", "seconds"})) == 2:
        raise click.UsageError("--seconds times each configuration for that long instead of a number of --runs: "
                               "give one of them")
    host_only = _given_options(ctx, {"seconds", "xnnpack", "runtime"})
    android_only = _given_options(ctx, {"serial", "delegate", "benchmark_binary", "apk", "nnapi_accelerator", "profile",
                                        "check_output"})
    if android and host_only:
        raise click.UsageError(f"{' and '.join(host_only)} {'are' if len(host_only) > 1 else 'is'} for the host "
                               "benchmark only; with --android use --runs, --warmup, --threads, --delegate (e.g. "
                               "xnnpack), --serial, --benchmark-binary, --apk, --nnapi-accelerator, --profile and "
                               "--check-output")
    if not android and android_only:
        raise click.UsageError(f"{', '.join(android_only)} {'are' if len(android_only) > 1 else 'is'} for a phone: "
                               "add --android, or drop them to time the model on this host")
    if runtime == "openvino" and _given_options(ctx, {"xnnpack"}):
        raise click.UsageError("--xnnpack sets LiteRT's delegate, and --runtime openvino times OpenVINO only: drop "
                               "--xnnpack, or time both runtimes with --runtime both")
    outputs = [] if json_path is None else [json_path, json_path.with_suffix(".csv")]
    if json_path is not None and android and profile:
        outputs.append(op_profile_csv_path(json_path))
    base = json_path or DEFAULT_REPORT
    if eval_jsons:
        outputs += [base.with_suffix(".md"), base.with_suffix(".png")]
    inputs = {**{path: f"the --compare report {path}" for path in eval_jsons}, **_model_files(models)}
    if check_output not in (None, DEFAULT_FRAME):
        inputs[Path(check_output)] = f"the --check-output frame {check_output}"
    if json_path is None and eval_jsons:
        for path in outputs:
            _check_default_report(path)
    _check_outputs(outputs, inputs=inputs)
    xnnpack_modes = {"on": (True,), "off": (False,), "both": (True, False)}[xnnpack]
    run_benchmark(list(models), android=android, threads=thread_counts, runs=runs, warmup=warmup, seconds=seconds,
                  xnnpack=xnnpack_modes, runtimes=RUNTIMES if runtime == "both" else (runtime,), serial=serial, delegate=delegate, benchmark_binary=benchmark_binary, use_apk=apk,
                  nnapi_accelerator=nnapi_accelerator, op_profiling=profile, check_frame=check_output, json_path=json_path,
                  compare=list(eval_jsons), log=_echo)


@main.command("eval")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None, help="Run folder of a trained model.")
@click.option("--tflite", "tflite_path", type=click.Path(path_type=Path), default=None,
              help="A .tflite model, run in LiteRT (or --runtime).")
@click.option("--model", "model_name", type=click.Choice(baseline_names()), default=None,
              help="A model-free baseline: bicubic (SR), OpenCV's Debevec or Robertson merge (HDR).")
@click.option("--data", required=True, help="SR: folder of HR images, or a named set (set5, set14, default). "
                                            "HDR: a Kalantari root, a folder of photos or radiance maps, or default (synthetic).")
@click.option("--scale", "scales", callback=_parse_scales, default=None, help="Scale(s), e.g. 3 or 2,3,4 (default: the run's scale).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report (a list when several scales) to this .json file, and the figures next to it "
                   "(default: --run: RUN_DIR/eval/DATASET[_xSCALE].json; --tflite: FILE_eval_DATASET[_xSCALE].json "
                   "next to it; --model: none).")
@click.option("--quiet", is_flag=True, help="Only print the mean of each scale.")
@click.option("--tile", is_flag=True, help="With --tflite: run in tiles of the model's input size.")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=DEFAULT_RUNTIME, show_default=True,
              help=f"With --tflite: the runtime that runs it (openvino: optional extra, {OPENVINO_INSTALL}).")
def eval_command(run_dir, tflite_path, model_name, data, scales, json_path, quiet, tile, runtime) -> None:
    """SR: PSNR/SSIM on Y (BT.601, scale pixels shaved) of a run, a .tflite or bicubic on HR images.
    HDR: PSNR-mu/PSNR-l/SSIM-mu of a run or an OpenCV merge, next to the OpenCV merges."""
    from mobile_sr.evaluation import default_report_location, load_subject
    from mobile_sr.tasks import EvalOptions

    if sum(v is not None for v in (run_dir, tflite_path, model_name)) != 1:
        raise click.UsageError(f"give exactly one of --run RUN_DIR, --tflite FILE or --model {'|'.join(baseline_names())}")
    if tile and tflite_path is None:
        raise click.UsageError("--tile runs a --tflite model in tiles; --run and --model evaluate whole images: drop --tile")
    if tflite_path is None and _given_options(click.get_current_context(), {"runtime"}):
        raise click.UsageError("--runtime chooses what runs a --tflite model; --run evaluates in TensorFlow and --model "
                               "needs no runtime: drop --runtime")
    _check_json_option(json_path)
    if tflite_path is not None:
        _check_outputs([json_path], inputs=_model_files([tflite_path]))
    elif run_dir is None:
        _check_output(json_path)
    task, subject = load_subject(run_dir=run_dir, tflite_path=tflite_path, baseline=model_name, log=_echo)
    if run_dir is not None:
        from mobile_sr.runs import CONFIG_FILE, SUMMARY_FILE

        _check_outputs([json_path], inputs={Path(run_dir) / name: f"the run's {name}" for name in (CONFIG_FILE, SUMMARY_FILE)})
    # without --json, a report per dataset (and scale), checked before scoring, when the data names it
    task.evaluate(subject, EvalOptions(data, scales=scales, tile=tile, json_path=json_path, quiet=quiet, log=_echo,
                                       runtime=runtime, **default_report_location(subject, runtime)))


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True, help="Float run folder to quantize and diagnose.")
@click.option("--data", default=None, help="Data the cost of each layer is scored on, as eval takes it (e.g. set5); "
                                           "default: the run's validation data.")
@click.option("--rounding", "roundings", type=click.Choice(ROUNDING_CHOICES), multiple=True,
              help="Rounding of the conv kernels to diagnose, repeatable [default: both].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this .json file and its PNG next to it (default: RUN_DIR/diagnose/DATASET.json).")
@click.option("--threads", type=click.IntRange(min=1), callback=_cap_threads, default=None)
def diagnose(run_dir, data, roundings, json_path, threads) -> None:
    """Per-layer int8 report of a float run: each layer's activation error (RMSE, SNR) and the cost of quantizing it alone."""
    from mobile_sr.diagnose import diagnose_run
    from mobile_sr.runs import CONFIG_FILE, SUMMARY_FILE

    _check_json_option(json_path)
    _check_outputs([] if json_path is None else [json_path, json_path.with_suffix(".png")],
                   inputs={Path(run_dir) / name: f"the run's {name}" for name in (CONFIG_FILE, SUMMARY_FILE)})
    _set_threads(threads)
    diagnose_run(run_dir=run_dir, data=data, roundings=tuple(dict.fromkeys(r.replace("-", "_") for r in roundings)) or QAT_ROUNDINGS,
                 json_path=json_path, threads=threads, log=_echo)
