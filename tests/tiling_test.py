"""Tiled inference of large images (mobile_sr.tiling): the spans, receptive radii read from graphs,
and tiles equal to one whole-image run for .tflite and Keras models, with bounded tiles, uint8
assembly and progress lines."""

import numpy as np
import pytest

from mobile_sr import tiling
from mobile_sr.export import convert, export_run
from mobile_sr.metrics import to_uint8
from mobile_sr.models import build_model, make_config
from mobile_sr.models.layers import DepthToSpace
from mobile_sr.models.registry import get_model_spec
from mobile_sr.runs import load_trained_model
from mobile_sr.tasks.hdr.evaluation import keras_merger
from mobile_sr.tasks.hdr.runner import TFLiteMerger
from mobile_sr.tasks.hdr.scene import HDRScene
from mobile_sr.tasks.sr.evaluation import keras_upscaler
from mobile_sr.tasks.sr.runner import TFLiteUpscaler
from mobile_sr.tflite import graph_receptive_radius
from mobile_sr.tiling import Tiling, tile_spans
from tests.helpers import textured_image


@pytest.mark.parametrize("length,tile,margin,multiple", [(53, 20, 8, 1), (61, 16, 4, 1), (17, 16, 4, 1), (100, 9, 4, 1),
                                                         (5, 20, 8, 1), (40, 4, 1, 1), (61, 20, 3, 4), (97, 24, 9, 2)])
def test_tile_spans_partition_the_image(length, tile, margin, multiple):
    spans = tile_spans(length, tile, margin, multiple)
    assert spans[0][2] == 0 and spans[-1][1] == spans[-1][3] == length
    for (start, stop, begin, end), following in zip(spans, spans[1:] + [None], strict=True):
        assert start % multiple == 0 and start <= begin < end <= stop <= start + tile
        if following is not None:
            assert following[2] == end  # no gap, no overlap between kept parts
            assert end - following[0] >= margin and stop - end >= margin
    assert length <= tile or spans[-1][1] - spans[-1][0] > tile - multiple


def _box_upscale(image: np.ndarray) -> np.ndarray:
    """A model of receptive radius 2: two zero-padded 3x3 box filters, then x2 nearest neighbour."""
    for _ in range(2):
        padded = np.pad(image.astype(np.float32), ((1, 1), (1, 1), (0, 0)))
        image = sum(padded[y : y + image.shape[0], x : x + image.shape[1]] for y in range(3) for x in range(3)) / 9
    return image.repeat(2, axis=0).repeat(2, axis=1)


def test_tiles_of_a_bounded_model_equal_the_whole_image_in_uint8(monkeypatch):
    image = textured_image(50, 70, seed=1)
    tiles, lines = [], []
    monkeypatch.setattr(tiling, "PROGRESS_SECONDS", 0.0)

    def run(tile):
        tiles.append(tile.shape[:2])
        return _box_upscale(tile)

    tiled = Tiling(size_multiple=1, radius=2, max_pixels=256, log=lines.append).run(run, [image], finish=to_uint8)
    assert tiled.dtype == np.uint8
    np.testing.assert_array_equal(tiled, to_uint8(_box_upscale(image)))
    assert max(max(shape) for shape in tiles) == 16  # every tile within the 256-pixel budget
    assert len(lines) == len(tiles) - 1 and lines[0].startswith("  the model: tile 1/") and "ETA 0:00:00" in lines[-1]
    tiles.clear()  # a budget above TILE_PIXELS: tiles of TILE_PIXELS
    Tiling(size_multiple=4, radius=2, max_pixels=10**9).run(run, [textured_image(600, 530)], finish=to_uint8)
    assert max(max(shape) for shape in tiles) ** 2 == tiling.TILE_PIXELS
    # too narrow a margin shows seams: the radius is what makes the tiles exact
    narrow = Tiling(size_multiple=1, radius=1, max_pixels=256).run(_box_upscale, [image], finish=lambda kept: kept)
    assert np.abs(narrow - _box_upscale(image)).max() > 1


def test_a_model_without_a_receptive_radius_is_noted_once():
    lines = []
    unbounded = Tiling(size_multiple=1, radius=None, max_pixels=1024, log=lines.append, name="m.tflite")
    for _ in range(2):
        unbounded.run(_box_upscale, [textured_image(40, 90)], finish=to_uint8)
    assert lines == ["note: m.tflite pools over the whole image, so its tiles differ slightly from one whole-image run"]
    lines.clear()  # without tiles asked for, it runs whole
    automatic = Tiling(size_multiple=1, radius=None, max_pixels=1024, log=lines.append, name="m.tflite")
    assert not automatic.applies(textured_image(40, 90)) and len(lines) == 1 and "runs on whole images" in lines[0]


def test_receptive_radius_is_read_from_the_graph(tmp_path):
    from mobile_sr.core.backend import keras

    image = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, padding="same")(image)  # 1
    # +8: lowered to a VALID conv between SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND, whose reach counts whole
    features = keras.layers.Conv2D(4, 5, padding="same", dilation_rate=2)(features)
    features = keras.layers.Conv2D(12, 1)(features)
    output = keras.layers.Conv2D(3, 3, padding="same")(DepthToSpace(2)(features))  # +1 HR pixel: half an LR pixel
    paths = {"local": keras.Model(image, output)}
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(features)
    paths["pooled"] = keras.Model(image, keras.layers.Multiply()([features, pooled]))
    for name, model in paths.items():
        paths[name] = tmp_path / f"{name}.tflite"
        paths[name].write_bytes(convert(model, mode="float", input_size=None))
    assert graph_receptive_radius(paths["local"]) == 10  # ceil(1 + 8 + 1/2)
    assert graph_receptive_radius(paths["pooled"]) is None


@pytest.fixture(scope="module")
def rt4ksr_dynamic(tmp_path_factory):
    """An untrained tiny x2 RT4KSR at a dynamic size: it unshuffles its input by 2."""
    path = tmp_path_factory.mktemp("rt4ksr") / "rt4ksr.tflite"
    path.write_bytes(convert(build_model("rt4ksr", make_config("rt4ksr", scale=2, channels=12, blocks=1)),
                             mode="float", input_size=None))
    return path


def test_tiles_of_a_model_that_unshuffles_equal_the_whole_image(rt4ksr_dynamic):
    lr = textured_image(61, 75, seed=2)
    whole = TFLiteUpscaler(rt4ksr_dynamic)
    tiled = TFLiteUpscaler(rt4ksr_dynamic, max_pixels=32 * 32)
    assert tiled.tiling.radius > 1 and tiled.size_multiple == 2
    np.testing.assert_allclose(tiled.upscale_float(lr), whole.upscale_float(lr), atol=1e-4)
    np.testing.assert_array_equal(tiled(lr), whole(lr))


def test_tiled_tflite_and_keras_runs_equal_whole_images(tiny_sr, tmp_path):
    """The tiny trained SCSRN, exported int8 (QAT) and float at a dynamic size, and as Keras."""
    lr = textured_image(45, 58, seed=5)
    for run_dir, mode in ((tiny_sr.qat_run, "int8"), (tiny_sr.float_run, "float")):
        path = export_run(run_dir=run_dir, mode=mode, input_size=None, out_path=tmp_path / f"{mode}.tflite",
                          log=lambda _: None).path
        np.testing.assert_array_equal(TFLiteUpscaler(path, max_pixels=400)(lr), TFLiteUpscaler(path)(lr))
    model, _ = load_trained_model(tiny_sr.float_run)
    lines = []
    tiled = keras_upscaler(model, max_pixels=400, log=lines.append)(lr)
    np.testing.assert_array_equal(tiled, keras_upscaler(model)(lr))
    assert lines == []  # a bounded model, a short run: nothing to note


def test_hdr_mergers_tile_a_bounded_model_and_run_a_pooling_one_whole(tiny_hdr, tmp_path):
    """A tiny AHDRNet (dilated convs) .tflite in tiles equals its whole-scene run; the tiny U-Net,
    whose attention pools over the whole image, runs whole, as a note says."""
    ahdrnet = build_model("ahdrnet", make_config("ahdrnet", **get_model_spec("ahdrnet").tiny_config))
    path = tmp_path / "ahdrnet.tflite"
    path.write_bytes(convert(ahdrnet, mode="float", input_size=None))
    rng = np.random.default_rng(4)
    base = textured_image(52, 61, seed=6).astype(np.float32) / 255
    scene = HDRScene("s", tuple(np.clip(base * gain + rng.normal(0, 0.01, base.shape), 0, 1).astype(np.float32)
                                for gain in (0.25, 1.0, 4.0)), (1.0, 4.0, 16.0))
    tiled = TFLiteMerger(path, max_pixels=40 * 40)
    assert tiled.tiling.radius == 15 and tiled.tiling.applies(scene.ldrs[0])
    np.testing.assert_allclose(tiled(scene), TFLiteMerger(path)(scene), rtol=0, atol=1e-5)
    model, run_config = load_trained_model(tiny_hdr.float_run)
    lines = []
    merged = keras_merger(model, size_multiple=run_config.model_config.size_multiple, max_pixels=40 * 40,
                          log=lines.append)(scene)
    np.testing.assert_array_equal(merged, keras_merger(model, size_multiple=run_config.model_config.size_multiple)(scene))
    assert lines == [f"note: {model.name} pools over the whole image, so it runs on whole images however large "
                     "(tiles would change its output)"]
