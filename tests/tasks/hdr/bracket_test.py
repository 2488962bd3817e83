"""Real brackets: response curves and their estimate, EXIF exposures in any order, alignment, the
synthetic camera, exposure stacks and brackets without a reference as evaluation data."""

import json

import numpy as np
import pytest
from PIL import Image

from mobile_sr.core.errors import ConfigError, DatasetError, ImageError
from mobile_sr.core.images import save_png
from mobile_sr.tasks.hdr.bracket import Bracket, align_to_reference, exif_exposure, prepare_bracket, read_bracket
from mobile_sr.tasks.hdr.camera import HELD_OUT_CAMERA, ISSUE5_CAMERA, REAL_CAMERA, CameraModel, synthetic_scenes
from mobile_sr.tasks.hdr.data import bracket_folder_scene, load_hdr_scenes, stack_scenes
from mobile_sr.tasks.hdr.response import (
    FilmicResponse,
    PowerResponse,
    SRGBResponse,
    TableResponse,
    estimate_response,
    response_from_spec,
    to_network_domain,
)
from tests.helpers import bomb_png, run_cli, textured_image


def _radiance(height=96, width=128, seed=0) -> np.ndarray:
    """A smooth scene spanning about 8 stops."""
    return (np.exp2(textured_image(height, width, seed).astype(np.float32) / 255.0 * 8.0) / 256.0).astype(np.float32)


def _bracket(response, exposures=(1.0, 4.0, 16.0), shift=(0, 0), seed=0) -> list[np.ndarray]:
    radiance = _radiance(seed=seed)
    images = []
    for index, exposure in enumerate(exposures):
        scene = np.roll(radiance, shift, axis=(0, 1)) if index != 1 else radiance
        images.append(np.round(response.apply(np.clip(scene * exposure, 0, 1)) * 255).astype(np.uint8))
    return images


@pytest.mark.parametrize("response", [PowerResponse(2.6), FilmicResponse(2.0, 0.8), SRGBResponse(),
                                      TableResponse(np.linspace(0, 1, 256) ** 2.4)])
def test_responses_invert(response):
    exposure = np.linspace(0, 1, 101)[:, None, None].repeat(3, axis=2)
    np.testing.assert_allclose(response.linearize(response.apply(exposure)), exposure, atol=2e-3)


@pytest.mark.parametrize("gamma", [1.8, 2.2, 2.6])
def test_the_estimate_finds_a_power_curve(gamma):
    estimate = estimate_response(_bracket(PowerResponse(gamma)), [1.0, 4.0, 16.0])
    assert estimate.gamma == pytest.approx(gamma, abs=0.1)


def test_without_shared_values_the_estimate_is_gamma_2_2():
    flat = [np.full((32, 32, 3), value, np.uint8) for value in (30, 120, 240)]
    assert estimate_response(flat, [1.0, 4.0, 16.0]) == PowerResponse(2.2)


def test_mapping_into_the_network_domain_undoes_the_response():
    response = FilmicResponse(2.4, 1.0)
    exposure = np.linspace(0, 1, 50)[:, None, None].repeat(3, axis=2).astype(np.float32)
    (mapped,) = to_network_domain([response.apply(exposure)], response)
    np.testing.assert_allclose(mapped ** 2.2, exposure, atol=1e-4)


def test_given_responses(tmp_path):
    assert response_from_spec("estimate") is None
    assert response_from_spec("gamma") == PowerResponse(2.2) and response_from_spec("GAMMA:2.4") == PowerResponse(2.4)
    assert isinstance(response_from_spec("srgb"), SRGBResponse)
    np.save(tmp_path / "curve.npy", np.linspace(0, 2, 256) ** 2)
    np.savetxt(tmp_path / "curve.csv", np.stack([np.linspace(0, 1, 256) ** g for g in (2.0, 2.2, 2.4)], axis=1), delimiter=",")
    assert response_from_spec(str(tmp_path / "curve.npy")).table[-1] == 1.0
    assert response_from_spec(str(tmp_path / "curve.csv")).table.shape == (256, 3)
    (tmp_path / "bumpy.txt").write_text("\n".join(map(str, [0, 0.5, 0.4, 1] * 8)))
    for spec, message in (("gamma:9", "from 1.0 to 3.5"), ("nonsense", "neither a known curve nor a file"),
                          (str(tmp_path / "bumpy.txt"), "increase from dark to bright")):
        with pytest.raises(ConfigError, match=message):
            response_from_spec(spec)


def _jpeg_with_exif(path, image: np.ndarray, seconds: float, f_number: float = 4.0, iso: int = 100) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({33434: seconds, 33437: f_number, 34855: iso})
    Image.fromarray(image).save(path, exif=exif.tobytes(), quality=95)


def test_exif_exposures_in_any_order(tmp_path):
    images = _bracket(PowerResponse(2.2))
    for name, image, seconds in zip(("b", "c", "a"), images, (1 / 400, 1 / 100, 1 / 25), strict=True):
        _jpeg_with_exif(tmp_path / f"{name}.jpg", image, seconds)
    assert exif_exposure(tmp_path / "a.jpg").seconds == pytest.approx(1 / 25)
    bracket = read_bracket([tmp_path / "a.jpg", tmp_path / "c.jpg", tmp_path / "b.jpg"])  # long, middle, short
    assert bracket.names == ("b", "c", "a") and bracket.exposures == pytest.approx((1.0, 4.0, 16.0))
    assert bracket.shortest_seconds == pytest.approx(1 / 400)
    assert prepare_bracket(bracket).radiance_factor == pytest.approx(400)
    # ISO and aperture count: the shortest shutter at ISO 1600 exposes as 16 times the shutter
    _jpeg_with_exif(tmp_path / "iso.jpg", images[2], 1 / 400, iso=1600)
    bracket = read_bracket([tmp_path / "iso.jpg", tmp_path / "c.jpg", tmp_path / "b.jpg"])
    assert bracket.names == ("b", "c", "iso") and bracket.exposures == pytest.approx((1.0, 4.0, 16.0))


def test_bracket_errors(tmp_path):
    for index in range(3):
        save_png(tmp_path / f"{index}.png", np.full((8, 8, 3), 50 * index, np.uint8))
    paths = [tmp_path / f"{index}.png" for index in range(3)]
    with pytest.raises(ImageError, match=r"0.png, 1.png, 2.png: no EXIF exposure time; give .* --exposures"):
        read_bracket(paths)
    with pytest.raises(ImageError, match="equally long"):
        read_bracket(paths, stops=[0, 2, 2])
    assert read_bracket(paths, stops=[2, 0, -2]).names == ("2", "1", "0")
    save_png(tmp_path / "big.png", np.zeros((9, 8, 3), np.uint8))
    with pytest.raises(ImageError, match="differ in size"):
        read_bracket(paths[:2] + [tmp_path / "big.png"], stops=[0, 2, 4])
    bomb = bomb_png(tmp_path / "bomb.png")
    assert exif_exposure(bomb) is None  # its EXIF is looked for without decoding it
    with pytest.raises(ImageError, match="bomb.png: declares 40000x40000.*MOBILE_SR_MAX_IMAGE_PIXELS"):
        read_bracket(paths[:2] + [bomb], stops=[0, 2, 4])


def test_alignment_undoes_a_shift_and_keeps_the_reference():
    images = [image.astype(np.float32) / 255 for image in _bracket(PowerResponse(2.2), shift=(3, -5))]
    aligned = align_to_reference(images)
    assert aligned[1] is images[1]
    inner = (slice(8, -8), slice(8, -8))
    for index in (0, 2):
        expected = np.roll(images[index], (-3, 5), axis=(0, 1))
        assert np.abs(aligned[index][inner] - expected[inner]).max() < 1e-6


def test_the_issue5_camera_is_the_fixed_one_and_the_real_camera_varies():
    photos = [("a", textured_image(64, 96)), ("b", textured_image(64, 96, seed=1))]
    fixed = synthetic_scenes(photos, count=2, size=None, seed=3, camera=ISSUE5_CAMERA)
    assert all(scene.exposure_times == (1.0, 4.0, 16.0) for scene in fixed)
    varied = synthetic_scenes(photos, count=6, size=None, seed=3, camera=REAL_CAMERA)
    gaps = [np.log2(scene.exposure_times[1]) for scene in varied]
    assert all(1.0 <= gap <= 3.0 for gap in gaps) and len(set(np.round(gaps, 3))) == len(gaps)
    radiance = [(name, np.exp2(image.astype(np.float32) / 32.0)) for name, image in photos]  # real maps are float
    scene = synthetic_scenes(radiance, count=1, size=(48, 64), seed=0, camera=HELD_OUT_CAMERA)[0]
    assert scene.hdr.shape == (48, 64, 3) and np.isfinite(scene.hdr).all()
    with pytest.raises(DatasetError, match="response must be one of"):
        CameraModel(response="log")
    with pytest.raises(DatasetError, match="ev_gaps"):
        CameraModel(ev_gaps=(3.0, 1.0))


def _write_stack(folder, seconds=(1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)):
    folder.mkdir()
    radiance = _radiance(64, 96)
    for index, time in enumerate(seconds):
        image = np.round(np.clip(radiance * time * 16, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
        save_png(folder / f"frame{index:02d}.png", image)
    (folder / "shutter_times.txt").write_text("\n".join(f"1/{round(1 / t)}" if t < 1 else "1" for t in seconds))
    return folder


def test_an_exposure_stack_is_scored_at_each_gap(tmp_path):
    scenes = stack_scenes(_write_stack(tmp_path / "stack"))
    assert [scene.name for scene in scenes] == ["stack-1stop", "stack-2stop", "stack-3stop"]
    assert scenes[2].exposure_times == pytest.approx((1.0, 8.0, 64.0)) and all(s.hdr is not None for s in scenes)
    name, loaded = load_hdr_scenes(tmp_path / "stack", "val")
    assert name == "stack" and len(loaded) == 3
    with pytest.raises(DatasetError, match="no reference to train on"):
        load_hdr_scenes(tmp_path / "stack", "train")


def test_a_bracket_without_reference_gives_a_figure_only(tmp_path):
    folder = tmp_path / "bracket"
    folder.mkdir()
    for name, image, seconds in zip("abc", _bracket(PowerResponse(2.2)), (1 / 400, 1 / 100, 1 / 25), strict=True):
        _jpeg_with_exif(folder / f"{name}.jpg", image, seconds)
    scene = bracket_folder_scene(folder)
    assert scene.hdr is None and scene.exposure_times == pytest.approx((1.0, 4.0, 16.0))
    result = run_cli("eval", "--model", "debevec", "--data", folder)
    assert result.exit_code == 2 and "no reference radiance to score against: give --json" in result.output
    result = run_cli("eval", "--model", "debevec", "--data", folder, "--json", tmp_path / "look.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "look.json").read_text())
    assert report["scored"] is False and (tmp_path / report["figures"][0]).is_file()


def test_memorial_gaps_and_the_estimated_response(shared_datasets):
    """The estimated response beats an assumed gamma 2.2 for Debevec's merge on Memorial's 3-EV
    bracket (measured: 31.3 against 25.0 dB PSNR-mu)."""
    from mobile_sr.tasks.hdr.evaluation import evaluate_scenes, opencv_merger

    estimated = stack_scenes(shared_datasets / "hdr/memorial", gaps=(3,))
    assumed = stack_scenes(shared_datasets / "hdr/memorial", gaps=(3,), response=PowerResponse(2.2))
    scores = [evaluate_scenes(opencv_merger("debevec"), scenes, model="d", dataset="m").mean("psnr_mu")
              for scenes in (estimated, assumed)]
    assert estimated[0].exposure_times == pytest.approx((1.0, 8.0, 64.0)) and scores[0] > scores[1] + 3


def test_merge_reads_exif_and_writes_absolute_radiance(tmp_path, tiny_hdr):
    from mobile_sr.export import export_run
    from mobile_sr.tasks.hdr.radiance import read_radiance

    model = export_run(run_dir=tiny_hdr.float_run, mode="float", input_size=(32, 48), out_path=tmp_path / "m.tflite",
                       log=lambda _: None).path
    images = _bracket(PowerResponse(2.4))
    for name, image, seconds in zip(("s", "m", "l"), images, (1 / 400, 1 / 100, 1 / 25), strict=True):
        _jpeg_with_exif(tmp_path / f"{name}.jpg", image, seconds)
    result = run_cli("merge", "--tflite", model, tmp_path / "l.jpg", tmp_path / "s.jpg", tmp_path / "m.jpg",
                     tmp_path / "out.exr")
    assert result.exit_code == 0, result.output
    assert "exposures x1, x4, x16 (EXIF); response gamma 2.4" in result.output and "aligned to m" in result.output
    relative = run_cli("merge", "--tflite", model, tmp_path / "s.jpg", tmp_path / "m.jpg", tmp_path / "l.jpg",
                       tmp_path / "rel.pfm", "--exposures", "0,2,4", "--response", "gamma:2.4", "--no-preview")
    assert relative.exit_code == 0, relative.output
    # within what the estimated response (2.4 to two decimals) and the EXR's half floats leave
    np.testing.assert_allclose(read_radiance(tmp_path / "out.exr"), read_radiance(tmp_path / "rel.pfm") * 400, rtol=5e-3)


def test_a_bracket_maps_into_the_network_domain():
    bracket = Bracket(("a", "b", "c"), tuple(image.astype(np.float32) / 255 for image in _bracket(PowerResponse(2.6))),
                      (1.0, 4.0, 16.0))
    prepared = prepare_bracket(bracket, align="none")
    assert prepared.response.gamma == pytest.approx(2.6, abs=0.1) and prepared.radiance_factor == 1.0
    np.testing.assert_allclose(prepared.scene.ldrs[1] ** 2.2, bracket.images[1] ** prepared.response.gamma, atol=1e-4)
