"""TFLiteUpscaler's tiling and checks, and upscale_path's guards against overwriting, on tiny
untrained float models (dynamic-size and fixed-size)."""

import numpy as np
import pytest
from click.testing import CliRunner

from mobile_sr.cli import main
from mobile_sr.core.errors import ImageError, TFLiteError
from mobile_sr.core.images import load_rgb, save_png
from mobile_sr.export import convert
from mobile_sr.models import build_model, make_config
from mobile_sr.tasks.hdr.runner import TFLiteMerger
from mobile_sr.tasks.sr.runner import TFLiteUpscaler
from mobile_sr.tasks.sr.upscale import upscale_path
from mobile_sr.tflite import MAX_THREADS, graph_size_multiple
from tests.helpers import textured_image


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """x2 SCSRN (receptive radius 3) at a dynamic size, at 16x16 and at 3x3; a x1 and a x1.5 graph."""
    from mobile_sr.core.backend import keras

    root = tmp_path_factory.mktemp("tflite")
    sr = build_model("scsrn", make_config("scsrn", scale=2, channels=8, feature_convs=2))
    paths = {}
    for name, size in (("dynamic", None), ("fixed16", (16, 16)), ("fixed3", (3, 3))):
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(convert(sr, mode="float", input_size=size))
    image = keras.Input((None, None, 3))
    same = keras.Model(image, keras.layers.Conv2D(3, 3, padding="same")(image))
    paths["x1"] = root / "x1.tflite"
    paths["x1"].write_bytes(convert(same, mode="float", input_size=(8, 8)))
    image = keras.Input((None, None, 3))
    odd = keras.Model(image, keras.layers.Cropping2D(((0, 1), (0, 1)))(keras.layers.UpSampling2D(2)(image)))
    paths["odd"] = root / "odd.tflite"
    paths["odd"].write_bytes(convert(odd, mode="float", input_size=(8, 8)))
    return paths


def test_auto_tiles_of_a_dynamic_model_match_the_whole_image(models):
    lr = textured_image(53, 61, seed=3)
    whole = TFLiteUpscaler(models["dynamic"]).upscale_float(lr)
    assert whole.shape == (106, 122, 3) and whole.max() > 0.1
    # a 400-pixel budget: 20x20 tiles overlapping by the model's receptive radius, 3
    np.testing.assert_allclose(TFLiteUpscaler(models["dynamic"], max_pixels=400).upscale_float(lr), whole, atol=1e-4)
    np.testing.assert_allclose(TFLiteUpscaler(models["dynamic"], tile=True, max_pixels=400).upscale_float(lr), whole, atol=1e-4)


def test_small_fixed_model_tiles_with_a_fitting_overlap(models):
    lr = textured_image(53, 61, seed=4)
    whole = TFLiteUpscaler(models["fixed16"]).upscale_float(lr)
    assert whole.max() > 0.1
    tiled = TFLiteUpscaler(models["fixed16"], tile=True)  # 16x16 tiles overlapping by the receptive radius, 3
    np.testing.assert_allclose(tiled.upscale_float(lr), whole, atol=1e-4)
    # over the pixel budget: tiles of the budget's size, not of the model's 16x16
    np.testing.assert_allclose(TFLiteUpscaler(models["fixed16"], max_pixels=900).upscale_float(lr), whole, atol=1e-4)
    with pytest.raises(TFLiteError, match="fixed 3x3 input is too small .* without --tile"):
        TFLiteUpscaler(models["fixed3"], tile=True)


def test_model_checks_name_the_problem_in_plain_shapes(models, tmp_path):
    with pytest.raises(TFLiteError, match="scale is 1 .*1x8x8x3.*not an upscaler"):
        TFLiteUpscaler(models["x1"])
    with pytest.raises(TFLiteError, match=r"output 1x15x15x3 is not an integer multiple of its input 1x8x8x3;"):
        TFLiteUpscaler(models["odd"])
    with pytest.raises(TFLiteError, match="is a folder; give the .tflite file"):
        TFLiteUpscaler(tmp_path)


def test_cli_refuses_a_x1_model_and_a_folder_as_model(models, tmp_path):
    save_png(tmp_path / "hr" / "a.png", textured_image(24, 24))
    runner = CliRunner()
    for command in (["upscale", "--tflite", str(models["x1"]), str(tmp_path / "hr" / "a.png"), str(tmp_path / "up.png")],
                    ["eval", "--tflite", str(models["x1"]), "--data", str(tmp_path / "hr")]):
        result = runner.invoke(main, command)
        assert result.exit_code == 1 and "the model's scale is 1" in result.output, result.output
    result = runner.invoke(main, ["upscale", "--tflite", str(tmp_path), str(tmp_path / "hr"), str(tmp_path / "out")])
    assert result.exit_code == 1 and "is a folder" in result.output
    assert not (tmp_path / "up.png").exists() and not (tmp_path / "out").exists()


def test_cli_tile_with_a_dynamic_model(models, tmp_path):
    save_png(tmp_path / "a.png", textured_image(30, 40))
    result = CliRunner().invoke(main, ["upscale", "--tflite", str(models["dynamic"]), "--tile", str(tmp_path / "a.png"),
                                       str(tmp_path / "up.png")])
    assert result.exit_code == 0, result.output
    assert load_rgb(tmp_path / "up.png").shape == (60, 80, 3)


def _upscale(models, source, destination):
    return list(upscale_path(tflite_path=models["dynamic"], source=source, destination=destination))


def test_upscale_never_overwrites_an_input(models, tmp_path):
    folder = tmp_path / "photos"
    save_png(folder / "a.png", textured_image(12, 12))
    original = (folder / "a.png").read_bytes()
    with pytest.raises(ImageError, match="is the folder being upscaled"):
        _upscale(models, folder, tmp_path / "photos" / ".." / "photos")
    with pytest.raises(ImageError, match="one of the input images"):
        _upscale(models, folder / "a.png", folder)
    with pytest.raises(ImageError, match="one of the input images"):
        _upscale(models, folder / "a.png", folder / "a.png")
    assert (folder / "a.png").read_bytes() == original


def test_upscale_into_a_folder_inside_the_source_twice(models, tmp_path):
    folder = tmp_path / "photos"
    save_png(folder / "a.png", textured_image(12, 12))
    for _ in range(2):  # the first run's output is not an input of the second
        assert _upscale(models, folder, folder / "up") == [folder / "up" / "a.png"]


def test_upscale_refuses_two_inputs_with_one_output_before_writing(models, tmp_path):
    folder = tmp_path / "photos"
    save_png(folder / "a.png", textured_image(12, 12))
    (folder / "a.jpg").write_bytes((folder / "a.png").read_bytes())
    with pytest.raises(ImageError, match="a.jpg and .*a.png would both be written to .*a.png; rename one"):
        _upscale(models, folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_upscale_reads_every_input_before_writing(models, tmp_path):
    folder = tmp_path / "photos"
    save_png(folder / "a.png", textured_image(12, 12))
    (folder / "b.png").write_text("not an image")
    with pytest.raises(ImageError, match="b.png"):
        _upscale(models, folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (folder / "b.png").unlink()
    assert _upscale(models, folder, tmp_path / "out") == [tmp_path / "out" / "a.png"]


@pytest.fixture(scope="module")
def downsampling(tmp_path_factory):
    """Models that unshuffle their input: an x2 RT4KSR at 16x16 (multiple 2) and a dynamic-size
    three-level HDR U-Net (multiple 4), without export reports."""
    root = tmp_path_factory.mktemp("downsampling")
    rt4ksr = build_model("rt4ksr", make_config("rt4ksr", scale=2, channels=12, blocks=1))
    unet = build_model("hdr_unet", make_config("hdr_unet", channels=4, stages=3, convs_per_stage=1, skm_reduction=2))
    paths = {"rt4ksr": root / "rt4ksr.tflite", "hdr": root / "hdr.tflite"}
    paths["rt4ksr"].write_bytes(convert(rt4ksr, mode="float", input_size=(16, 16)))
    paths["hdr"].write_bytes(convert(unet, mode="float", input_size=None))
    return paths


@pytest.mark.large
def test_without_a_report_the_size_multiple_is_read_from_the_graph(downsampling):
    assert graph_size_multiple(downsampling["rt4ksr"]) == 2 and graph_size_multiple(downsampling["hdr"]) == 4
    # odd sizes are padded to the model's multiple, not handed to a graph that cannot unshuffle them
    assert TFLiteUpscaler(downsampling["rt4ksr"])(textured_image(15, 17)).shape == (30, 34, 3)
    # a dynamic-size U-Net loads (at a size its levels accept, not 1x1) and merges any size
    merger = TFLiteMerger(downsampling["hdr"])
    assert merger.size_multiple == 4 and merger.tonemapped([np.zeros((13, 18, 6))] * 3).shape == (13, 18, 3)


@pytest.mark.large
@pytest.mark.parametrize("content", ["garbage", "[1, 2]", '{"size_multiple": 0}', '{"size_multiple": "x"}'])
def test_a_damaged_report_is_named_with_the_fix(downsampling, tmp_path, content):
    model = tmp_path / "m.tflite"
    model.write_bytes(downsampling["rt4ksr"].read_bytes())
    (tmp_path / "m.json").write_text(content)
    with pytest.raises(TFLiteError, match=r"m.json: damaged export report .*re-export the model, or delete the report"):
        TFLiteUpscaler(model)
    save_png(tmp_path / "a.png", textured_image(15, 17))
    result = CliRunner().invoke(main, ["upscale", "--tflite", str(model), str(tmp_path / "a.png"), str(tmp_path / "up.png")])
    assert result.exit_code == 1 and "damaged export report" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "up.png").exists()


@pytest.mark.large
def test_an_interpreter_failure_is_a_one_line_error(downsampling, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(downsampling["rt4ksr"].read_bytes())
    (tmp_path / "m.json").write_text('{"size_multiple": 1}')  # wrong: the graph unshuffles by 2
    with pytest.raises(TFLiteError, match=r"cannot run the model on a 15x17 input .*multiple of 1.*m.json.*re-export"):
        TFLiteUpscaler(model)(textured_image(15, 17))


def test_thread_counts_past_the_maximum_are_refused(models, tmp_path):
    save_png(tmp_path / "a.png", textured_image(12, 12))
    result = CliRunner().invoke(main, ["upscale", "--tflite", str(models["dynamic"]), "--threads", str(MAX_THREADS + 1),
                                       str(tmp_path / "a.png"), str(tmp_path / "up.png")])
    assert result.exit_code == 2 and f"more than {MAX_THREADS} threads" in result.output, result.output
    assert not (tmp_path / "up.png").exists()
    for threads in (0, "2", MAX_THREADS + 1):
        with pytest.raises(ValueError, match=f"threads must be a whole number from 1 to {MAX_THREADS}"):
            TFLiteUpscaler(models["dynamic"], threads=threads)
