"""Multi-exposure HDR pieces: Haar DWT/IWT, selective kernel merging, radiance files, the Kalantari
loader, the synthetic generator, the HDR metrics and the OpenCV merges."""

import math

import cv2
import numpy as np
import pytest

from mobile_sr.core.backend import keras
from mobile_sr.core.errors import DatasetError, ImageError, MetricInputError, OutputError
from mobile_sr.data.locations import shared_datasets_dir
from mobile_sr.metrics import inverse_mu_tonemap, mu_tonemap, psnr_l, psnr_mu, ssim_mu
from mobile_sr.models import build_model, get_model_spec, make_config
from mobile_sr.models.layers import GroupSoftmax, HaarDWT, HaarIWT, SumGroups
from mobile_sr.tasks.hdr.baselines import merge_radiance, mertens_fusion
from mobile_sr.tasks.hdr.camera import CameraModel, synthetic_scenes
from mobile_sr.tasks.hdr.data import load_exposure_stack, load_hdr_scenes, load_kalantari, load_kalantari_scene
from mobile_sr.tasks.hdr.radiance import read_radiance, write_radiance
from mobile_sr.tasks.hdr.scene import HDRScene, hdr_domain, network_inputs


def _photo(height=64, width=96, seed=0):
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (height, width, 3)), (0, 0), 4)
    return np.clip(0.5 * gradient + smooth, 0, 255).astype(np.uint8)


def test_haar_dwt_matches_the_paper_filters_and_round_trips_exactly():
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 10, 5)).astype(np.float32)
    bands = HaarDWT()(x).numpy()
    assert bands.shape == (2, 4, 5, 20)
    a, b, c, d = x[0, 0, 0, 0], x[0, 0, 1, 0], x[0, 1, 0, 0], x[0, 1, 1, 0]  # block [[a, b], [c, d]]
    np.testing.assert_allclose(bands[0, 0, 0, [0, 5, 10, 15]],
                               [(a + b + c + d) / 2, (-a - b + c + d) / 2, (-a + b - c + d) / 2, (a - b - c + d) / 2])
    np.testing.assert_array_equal(HaarIWT()(bands).numpy(), x)
    smooth = np.random.default_rng(1).normal(size=(1, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(HaarIWT()(HaarDWT()(smooth)).numpy(), smooth, atol=1e-6)


def test_selective_kernel_merge_weights_sum_to_one():
    model = build_model("hdr_unet", make_config("hdr_unet", **get_model_spec("hdr_unet").tiny_config))
    softmax_layers = [layer for layer in model.layers if isinstance(layer, GroupSoftmax)]
    assert len(softmax_layers) == 2  # one SKM per stage
    probe = keras.Model(model.inputs, [layer.output for layer in softmax_layers])
    rng = np.random.default_rng(0)
    for layer, weights in zip(softmax_layers, probe([rng.uniform(0, 1, (2, 8, 12, 6)).astype(np.float32) for _ in range(3)]), strict=True):
        per_exposure = np.stack(np.split(weights.numpy(), 3, axis=-1))
        assert per_exposure.min() > 0, layer.name
        np.testing.assert_allclose(per_exposure.sum(axis=0), 1.0, atol=1e-6)


def test_group_softmax_and_sum():
    logits = np.random.default_rng(0).normal(size=(1, 1, 1, 6)).astype(np.float32)
    weights = GroupSoftmax(3)(logits).numpy()[0, 0, 0]
    for channel in range(2):
        expected = np.exp(logits[0, 0, 0, channel::2]) / np.exp(logits[0, 0, 0, channel::2]).sum()
        np.testing.assert_allclose(weights[channel::2], expected, rtol=1e-5)
    np.testing.assert_allclose(SumGroups(3)(logits).numpy()[0, 0, 0], logits[0, 0, 0].reshape(3, 2).sum(axis=0), rtol=1e-6)


def test_hdr_unet_starts_as_the_reference_exposure():
    model = build_model("hdr_unet")
    inputs = [np.random.default_rng(i).uniform(0, 1, (1, 16, 16, 6)).astype(np.float32) for i in range(3)]
    np.testing.assert_allclose(model(inputs).numpy(), inputs[1][..., 3:], atol=1e-6)  # its tonemapped radiance


@pytest.mark.parametrize("suffix, mantissa_steps", [(".hdr", 256), (".exr", None)])
def test_radiance_round_trip(tmp_path, suffix, mantissa_steps):
    radiance = np.random.default_rng(0).uniform(0.01, 4.0, (5, 7, 3)).astype(np.float32)
    path = tmp_path / f"scene{suffix}"
    write_radiance(path, radiance)
    if mantissa_steps is None:
        np.testing.assert_array_equal(read_radiance(path), radiance)
    else:  # RGBE: 8-bit mantissas under one exponent per pixel, set by its brightest channel
        error = np.abs(read_radiance(path) - radiance)
        assert (error <= 2 * radiance.max(axis=2, keepdims=True) / mantissa_steps).all()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial files left


def test_radiance_errors(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_radiance(tmp_path / "missing.hdr")
    (tmp_path / "broken.hdr").write_bytes(b"#?RADIANCE\nnot really")
    with pytest.raises(ImageError, match="not a readable Radiance"):
        read_radiance(tmp_path / "broken.hdr")
    with pytest.raises(ImageError, match=".hdr or .exr"):
        write_radiance(tmp_path / "scene.png", np.ones((2, 2, 3), np.float32))
    with pytest.raises(ImageError, match="non-negative"):
        write_radiance(tmp_path / "scene.hdr", -np.ones((2, 2, 3), np.float32))
    for suffix in (".hdr", ".exr"):
        (tmp_path / f"empty{suffix}").write_bytes(b"")
        with pytest.raises(ImageError, match=f"empty{suffix}: empty file"):
            read_radiance(tmp_path / f"empty{suffix}")
        with pytest.raises(OutputError, match="cannot create the folder"):
            write_radiance(tmp_path / "broken.hdr" / "sub" / f"scene{suffix}", np.ones((2, 2, 3), np.float32))


def test_kalantari_scene_with_an_empty_file_is_named(tmp_path):
    for name in ("262A0001.tif", "HDRImg.hdr"):
        folder = _write_kalantari_scene(tmp_path / name)
        (folder / name).write_bytes(b"")
        with pytest.raises(ImageError, match=f"{name}: empty file"):
            load_kalantari_scene(folder)


def test_missing_reference_says_how_to_merge_without_one(tmp_path):
    folder = _write_kalantari_scene(tmp_path / "scene", reference=False)
    with pytest.raises(DatasetError, match=r"HDRImg.hdr.*'mobile-sr merge'"):
        load_kalantari_scene(folder)


def test_empty_dataset_path_is_refused():
    with pytest.raises(DatasetError, match="empty"):
        load_hdr_scenes("", "val")


def _write_kalantari_scene(folder, stops=("0", "2", "4"), exposures=3, reference=True):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(exposures):
        cv2.imwrite(str(folder / f"262A{index:04d}.tif"), rng.integers(0, 65536, (6, 8, 3), dtype=np.uint16))
    (folder / "exposure.txt").write_text("\n".join(stops) + "\n")
    if reference:
        write_radiance(folder / "HDRImg.hdr", rng.uniform(0, 1, (6, 8, 3)).astype(np.float32))
    return folder


def test_kalantari_layout(tmp_path):
    _write_kalantari_scene(tmp_path / "Training" / "001", stops=("-2.0", "1.0", "4.0"))
    _write_kalantari_scene(tmp_path / "Training" / "002")
    scenes = load_kalantari(tmp_path)
    assert [s.name for s in scenes] == ["001", "002"]
    assert scenes[0].exposure_times == (1.0, 8.0, 64.0)
    assert scenes[0].ldrs[0].dtype == np.float32 and scenes[0].ldrs[0].max() <= 1.0
    assert (np.round(scenes[0].ldrs[0] * 65535) % 257 != 0).any()  # 16-bit precision kept
    inputs = network_inputs(scenes[0].ldrs, scenes[0].exposure_times)
    assert [x.shape for x in inputs] == [(6, 8, 6)] * 3
    np.testing.assert_allclose(inputs[2][..., 3:], mu_tonemap(scenes[0].ldrs[2] ** 2.2 / 64.0), rtol=1e-5)


@pytest.mark.parametrize("breakage, message", [
    ({"exposures": 2}, "expected 3 exposure images"),
    ({"stops": ("0", "two", "4")}, "exposure values"),
    ({"stops": ("0", "2")}, "found 2"),
    ({"reference": False}, "no HDRImg.hdr"),
    ({"stops": ("0", "2", "inf")}, "must be finite"),
    ({"stops": ("0", "nan", "4")}, "must be finite"),
    ({"stops": ("0", "2", "2000")}, "at most 20 apart"),
])
def test_malformed_kalantari_scene(tmp_path, breakage, message):
    folder = _write_kalantari_scene(tmp_path / "scene", **breakage)
    with pytest.raises(DatasetError, match=message):
        load_kalantari_scene(folder)


def test_kalantari_errors(tmp_path):
    with pytest.raises(DatasetError, match="no Kalantari scenes"):
        load_kalantari(tmp_path)
    (tmp_path / "scene").mkdir()
    with pytest.raises(DatasetError, match="no exposure.txt"):
        load_kalantari_scene(tmp_path / "scene")
    folder = _write_kalantari_scene(tmp_path / "no_reference", reference=False)
    assert load_kalantari_scene(folder, require_reference=False).hdr is None


def test_scene_checks_its_exposures():
    ldr = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(DatasetError, match="short to long"):
        HDRScene("s", (ldr, ldr, ldr), (4.0, 1.0, 16.0))
    with pytest.raises(DatasetError, match="one H x W x 3 size"):
        HDRScene("s", (ldr, ldr, np.zeros((4, 5, 3), np.float32)), (1.0, 4.0, 16.0))
    for times in ((1.0, 4.0, math.inf), (1.0, math.nan, 16.0)):
        with pytest.raises(DatasetError, match="must be finite"):
            HDRScene("s", (ldr, ldr, ldr), times)


def test_synthetic_scenes_are_deterministic_and_ghost_only_off_reference():
    photos = [("a", _photo()), ("b", _photo(seed=1))]
    first = synthetic_scenes(photos, count=3, size=(48, 64), seed=7)
    again = synthetic_scenes(photos, count=3, size=(48, 64), seed=7)
    for one, two in zip(first, again, strict=True):
        for x, y in zip(one.ldrs, two.ldrs, strict=True):
            np.testing.assert_array_equal(x, y)
    scene = first[0]
    assert scene.exposure_times == (1.0, 4.0, 16.0) and scene.hdr.shape == (48, 64, 3) and scene.hdr.max() == 1.0
    for ldr in scene.ldrs:
        np.testing.assert_array_equal(np.round(ldr * 255), ldr * 255)  # 8-bit quantised

    quiet = CameraModel(read_noise=0, shot_noise=0, max_shift=0, max_rotation=0, moving_objects=0)
    static = synthetic_scenes(photos, count=1, size=None, seed=7, camera=quiet)[0]
    unsaturated = (static.ldrs[0] > 0.1) & (static.ldrs[2] < 0.95)
    for index in range(3):  # a static, noiseless capture: every exposure agrees with the radiance
        recovered = hdr_domain(static.ldrs[index], static.exposure_times[index])
        np.testing.assert_allclose(recovered[unsaturated], static.hdr[unsaturated], rtol=0.05)
    moving = synthetic_scenes(photos, count=1, size=None, seed=7, camera=CameraModel(read_noise=0, shot_noise=0))[0]
    np.testing.assert_array_equal(moving.ldrs[1], static.ldrs[1])  # the reference does not move
    assert np.abs(moving.ldrs[0] - static.ldrs[0]).mean() > 0.005


def test_camera_settings_are_checked():
    with pytest.raises(DatasetError, match="increasing EV"):
        CameraModel(stops=(0.0, 4.0, 2.0))
    with pytest.raises(DatasetError, match="increasing EV"):
        CameraModel(stops=(0.0, 2.0, math.inf))
    with pytest.raises(DatasetError, match="non-negative"):
        CameraModel(read_noise=-1.0)


def test_hdr_metrics_known_values():
    reference = np.full((16, 16, 3), 0.25)
    assert psnr_mu(reference, reference) == math.inf and ssim_mu(reference, reference) == pytest.approx(1.0)
    assert psnr_l(reference + 0.01, reference) == pytest.approx(40.0)
    assert mu_tonemap(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]
    assert mu_tonemap(np.array(0.1)) == pytest.approx(math.log(501) / math.log(5001))
    values = np.linspace(0, 1, 11)
    np.testing.assert_allclose(inverse_mu_tonemap(mu_tonemap(values)), values, atol=1e-12)
    # The tonemap weights dark errors: the same absolute error costs more PSNR-mu in the shadows.
    assert psnr_mu(np.full((4, 4, 3), 0.011), np.full((4, 4, 3), 0.01)) < psnr_mu(np.full((4, 4, 3), 0.901), np.full((4, 4, 3), 0.9))


def test_hdr_metrics_check_their_input():
    good = np.zeros((16, 16, 3))
    with pytest.raises(MetricInputError, match="float"):
        psnr_mu(good.astype(np.uint8), good)
    with pytest.raises(MetricInputError, match="negative"):
        psnr_l(good - 1, good)
    with pytest.raises(MetricInputError, match="shapes differ"):
        psnr_mu(good[:8], good)
    with pytest.raises(MetricInputError, match="H x W x 3"):
        ssim_mu(good[..., 0], good[..., 0])


def test_opencv_merges_recover_a_static_scene():
    quiet = CameraModel(read_noise=0, shot_noise=0, max_shift=0, max_rotation=0, moving_objects=0)
    scene = synthetic_scenes([("a", _photo(96, 128))], count=1, size=None, seed=0, camera=quiet)[0]
    reference_only = np.clip(hdr_domain(scene.ldrs[1], scene.exposure_times[1]), 0, 1)
    for method in ("debevec", "robertson"):
        merged = np.clip(merge_radiance(scene.ldrs, scene.exposure_times, method=method), 0, 1)
        assert psnr_mu(merged, scene.hdr) > psnr_mu(reference_only, scene.hdr) + 3, method
    assert merge_radiance(scene.ldrs, scene.exposure_times, response="calibrated").shape == scene.hdr.shape
    fused = mertens_fusion(scene.ldrs)
    assert fused.shape == scene.hdr.shape and 0 <= fused.min() and fused.max() <= 1


def test_memorial_stack():
    root = shared_datasets_dir()
    if root is None or not (root / "hdr/memorial").is_dir():
        pytest.skip("shared datasets not found: set MOBILE_SR_DATA or place them at ../shared/datasets")
    images, times = load_exposure_stack(root / "hdr/memorial")
    assert len(images) == 16 and times[0] == 32.0 and times[-1] == 1 / 1024
    assert images[0].shape == (768, 512, 3)
