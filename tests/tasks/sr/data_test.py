import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

from mobile_sr.core.errors import DatasetError, ImageError
from mobile_sr.core.images import save_png
from mobile_sr.data import locations
from mobile_sr.data.pipeline import patch_dataset
from mobile_sr.data.split import split_train_val
from mobile_sr.tasks.sr.data import SRPair, load_default_photos, load_sr_pairs
from mobile_sr.tasks.sr.patches import PatchSampler
from mobile_sr.tasks.sr.resize import bicubic_downscale, modcrop
from tests.helpers import bomb_png, run_cli, textured_image


def test_hr_folder_is_searched_recursively_and_degraded_with_bicubic(hr_folder, isolated_cache):
    name, pairs = load_sr_pairs(hr_folder, 3)
    assert name == "hr" and len(pairs) == 4
    assert "nested/img3" in [pair.name for pair in pairs]
    for pair in pairs:
        assert pair.hr.shape == (96, 120, 3) and pair.lr.shape == (32, 40, 3)
        np.testing.assert_array_equal(pair.lr, bicubic_downscale(pair.hr, 3))
    assert len(list(isolated_cache.rglob("*.png"))) == 4


def test_cached_lr_is_reused(hr_folder, isolated_cache):
    load_sr_pairs(hr_folder, 2)
    cached = next(isolated_cache.rglob("*.png"))
    save_png(cached, np.zeros((48, 60, 3), np.uint8))  # poison the cache to prove it is read
    _, pairs = load_sr_pairs(hr_folder, 2)
    assert any((pair.lr == 0).all() for pair in pairs)


def test_modcrop_of_odd_sizes(tmp_path):
    save_png(tmp_path / "odd.png", textured_image(101, 98))
    _, (pair,) = load_sr_pairs(tmp_path, 4)
    assert pair.hr.shape == (100, 96, 3) and pair.lr.shape == (25, 24, 3)


def test_div2k_layout(tmp_path):
    root = tmp_path / "DIV2K"
    hr = textured_image(48, 60)
    save_png(root / "DIV2K_train_HR/0001.png", hr)
    lr = bicubic_downscale(modcrop(hr, 3), 3)
    save_png(root / "DIV2K_train_LR_bicubic/X3/0001x3.png", lr)
    name, (pair,) = load_sr_pairs(root, 3)
    assert name == "DIV2K-train"
    np.testing.assert_array_equal(pair.lr, lr)


def test_div2k_without_lr_folder_says_what_to_do(tmp_path):
    save_png(tmp_path / "DIV2K_train_HR/0001.png", textured_image(48, 60))
    with pytest.raises(DatasetError, match="X3 is missing"):
        load_sr_pairs(tmp_path, 3)


def test_wrong_layouts(tmp_path):
    with pytest.raises(DatasetError, match="no images found"):
        load_sr_pairs(tmp_path, 3)
    with pytest.raises(DatasetError, match="no such folder"):
        load_sr_pairs(tmp_path / "missing", 3)
    (tmp_path / "DIV2K_train_LR_bicubic").mkdir()
    with pytest.raises(DatasetError, match="DIV2K root"):
        load_sr_pairs(tmp_path / "DIV2K_train_LR_bicubic", 3)


def test_a_bad_image_in_a_folder_is_named(hr_folder):
    (hr_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageError, match="broken.png"):
        load_sr_pairs(hr_folder, 3)


def test_default_photos_are_embedded():
    train, val = load_default_photos(3, "train"), load_default_photos(3, "val")
    assert len(train) >= 4 and len(val) >= 2
    assert not {p.name for p in train} & {p.name for p in val}


def test_split_is_deterministic_and_disjoint(hr_folder):
    _, pairs = load_sr_pairs(hr_folder, 2)
    train, val = split_train_val(pairs)
    assert len(val) == 1 and len(train) == 3
    assert [p.name for p in split_train_val(pairs)[1]] == [p.name for p in val]


def _nearest_pair(seed: int, size: int, scale: int) -> SRPair:
    lr = textured_image(size, size + 5, seed=seed)
    return SRPair(name=str(seed), lr=lr, hr=lr.repeat(scale, 0).repeat(scale, 1), scale=scale)


def test_patches_stay_aligned_under_augmentation():
    sampler = PatchSampler([_nearest_pair(0, 40, 3)], patch_size=12, batch_size=32, seed=1)
    lr, hr = sampler.sample()
    assert lr.shape == (32, 12, 12, 3) and hr.shape == (32, 36, 36, 3)
    np.testing.assert_array_equal(hr, lr.repeat(3, 1).repeat(3, 2))


def test_images_smaller_than_a_patch_are_mirror_padded_and_stay_aligned():
    pairs = [_nearest_pair(0, 40, 2), _nearest_pair(1, 10, 2)]  # LR 40x45 and 10x15
    sampler = PatchSampler(pairs, patch_size=16, batch_size=64, seed=0)
    assert sampler.padded == 1 and sampler.padding_note.startswith("1 of 2 LR images are smaller than a 16x16 patch")
    lr, hr = sampler.patch(1, 0, 0)
    np.testing.assert_array_equal(lr, np.pad(pairs[1].lr, ((0, 6), (0, 1), (0, 0)), mode="symmetric"))
    np.testing.assert_array_equal(hr, lr.repeat(2, 0).repeat(2, 1))
    lr, hr = sampler.sample()
    np.testing.assert_array_equal(hr, lr.repeat(2, 1).repeat(2, 2))
    with pytest.raises(DatasetError, match="--patch-size 10"):  # no image holds a whole patch
        PatchSampler(pairs[1:], patch_size=16, batch_size=2, seed=0)


def test_patch_dataset_yields_float_batches():
    sampler = PatchSampler([_nearest_pair(0, 30, 2)], patch_size=8, batch_size=4, seed=0)
    lr, hr = next(iter(patch_dataset(sampler)))
    assert lr.dtype.name == "float32" and tuple(hr.shape) == (4, 16, 16, 3)


@pytest.mark.parametrize("scale,minimum", [(2, 16), (3, 18), (4, 20)])
def test_images_too_small_to_evaluate_are_named(tmp_path, scale, minimum):
    save_png(tmp_path / "data" / "ok.png", textured_image(minimum, minimum))
    load_sr_pairs(tmp_path / "data", scale)
    save_png(tmp_path / "data" / "tiny.png", textured_image(minimum - 1, 40))
    with pytest.raises(ImageError, match=f"tiny.png: .* at least {minimum}x{minimum}"):
        load_sr_pairs(tmp_path / "data", scale)


def test_unwritable_cache_only_costs_the_resize(hr_folder, tmp_path):
    (tmp_path / "cache_file").write_text("not a folder")
    _, pairs = load_sr_pairs(hr_folder, 2, cache_dir=tmp_path / "cache_file")
    assert len(pairs) == 4


def test_div2k_without_the_split_says_what_to_do(tmp_path):
    save_png(tmp_path / "DIV2K_train_HR/0001.png", textured_image(48, 60))
    with pytest.raises(DatasetError, match="without DIV2K_valid_HR.* pass .*DIV2K_train_HR itself"):
        load_sr_pairs(tmp_path, 3, split="val")


def test_div2k_lr_that_does_not_match_names_both_files(tmp_path):
    save_png(tmp_path / "DIV2K_train_HR/0001.png", textured_image(48, 60))
    save_png(tmp_path / "DIV2K_train_LR_bicubic/X2/0001x2.png", textured_image(30, 30))
    with pytest.raises(DatasetError, match="X2/0001x2.png: .*DIV2K_train_HR/0001.png"):
        load_sr_pairs(tmp_path, 2)


def test_empty_dataset_path_is_refused(tmp_path, monkeypatch):
    save_png(tmp_path / "data" / "a.png", textured_image(48, 60))
    monkeypatch.chdir(tmp_path / "data")
    with pytest.raises(DatasetError, match="empty"):
        load_sr_pairs("", 2)


def test_empty_cache_variable_counts_as_unset(tmp_path, monkeypatch):
    from mobile_sr.tasks.sr.data import default_cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MOBILE_SR_CACHE", "")
    assert default_cache_dir() == tmp_path / ".cache" / "mobile-sr"


def _eval_json(folder, json_path) -> dict:
    result = run_cli("eval", "--model", "bicubic", "--data", folder, "--scale", 2, "--json", json_path)
    assert result.exit_code == 0, result.output
    return json.loads(json_path.read_text())


def test_rotated_photo_is_trained_and_evaluated_upright(tmp_path):
    stored = textured_image(43, 64)  # odd height: modcrop drops a different row once it is upright
    exif = Image.Exif()
    exif[274] = 6  # turn clockwise to view, as phones store portrait photos
    (tmp_path / "rotated").mkdir()
    Image.fromarray(stored).save(tmp_path / "rotated" / "photo.png", exif=exif.tobytes())
    save_png(tmp_path / "upright" / "photo.png", np.ascontiguousarray(np.rot90(stored, -1)))
    save_png(tmp_path / "stored" / "photo.png", stored)
    _, (pair,) = load_sr_pairs(tmp_path / "rotated", 2)
    assert pair.hr.shape == (64, 42, 3)
    np.testing.assert_array_equal(pair.hr, np.rot90(stored, -1)[:, :42])
    rotated, upright, unturned = (_eval_json(tmp_path / name, tmp_path / f"{name}.json")["images"]
                                  for name in ("rotated", "upright", "stored"))
    assert rotated == upright and rotated != unturned


def test_lr_cached_before_exif_orientation_counted_is_not_reused(tmp_path, isolated_cache):
    exif = Image.Exif()
    exif[274] = 3  # upside down: the same shape either way
    path = tmp_path / "data" / "photo.png"
    path.parent.mkdir()
    Image.fromarray(textured_image(48, 60)).save(path, exif=exif.tobytes())
    stat = path.stat()
    old_key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    stale = bicubic_downscale(textured_image(48, 60), 2)  # what earlier versions cached: not upright
    save_png(isolated_cache / "bicubic" / "x2" / f"{old_key}.png", stale)
    _, (pair,) = load_sr_pairs(tmp_path / "data", 2)
    np.testing.assert_array_equal(pair.lr, bicubic_downscale(pair.hr, 2))


def test_file_name_that_is_not_utf8_is_read_cached_and_reported(tmp_path, isolated_cache):
    folder = tmp_path / "data"
    path = folder / os.fsdecode(b"caf\xe9.png")
    try:
        save_png(path, textured_image(48, 60))
    except OSError:
        pytest.skip("this file system only takes UTF-8 file names")
    _, (pair,) = load_sr_pairs(folder, 2)
    assert pair.name == "caf\\xe9"  # printable, and distinct from other such names
    assert len(list(isolated_cache.rglob("*.png"))) == 1
    _, (again,) = load_sr_pairs(folder, 2)
    np.testing.assert_array_equal(again.lr, pair.lr)
    result = run_cli("eval", "--model", "bicubic", "--data", folder, "--scale", 2, "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert "caf\\xe9" in result.output
    report = json.loads((tmp_path / "out.json").read_text())
    assert [image["name"] for image in report["images"]] == ["caf\\xe9"]
    json.dumps(report, ensure_ascii=False).encode()  # no surrogates left to trip a UTF-8 writer


def test_decompression_bomb_in_a_folder_is_one_error_line(tmp_path):
    save_png(tmp_path / "data" / "ok.png", textured_image(48, 60))

    bomb_png(tmp_path / "data" / "bomb.png")
    result = run_cli("eval", "--model", "bicubic", "--data", tmp_path / "data", "--scale", 2)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert "bomb.png: declares 40000x40000 = 1,600,000,000 pixels" in result.output
    assert "MOBILE_SR_MAX_IMAGE_PIXELS" in result.output


def test_named_set_not_found_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILE_SR_DATA", str(tmp_path / "datasets"))
    (tmp_path / "datasets").mkdir()
    with pytest.raises(DatasetError) as found_root:
        load_sr_pairs("set5", 2)
    assert f"{tmp_path / 'datasets'} (MOBILE_SR_DATA) has no sr/test/Set5" in str(found_root.value)
    monkeypatch.setenv("MOBILE_SR_DATA", str(tmp_path / "missing"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setattr(locations, "_CHECKOUT_DATASETS", tmp_path / "checkout" / "shared" / "datasets")
    with pytest.raises(DatasetError) as no_root:
        load_sr_pairs("T91", 2)
    message = str(no_root.value)
    assert "\n" not in message
    assert (f"MOBILE_SR_DATA={tmp_path / 'missing'}; {tmp_path / 'shared' / 'datasets'} and "
            f"{tmp_path / 'checkout' / 'shared' / 'datasets'} do not exist") in message
    for expected in ("dataset 'T91' not found", "Set5 and Set14: the standard SR test sets",
                     "BSD200, the BSDS300 train split", "'291' training set", "put a copy at sr/train/T91 below",
                     "pass a folder of HR images instead"):
        assert expected in message
