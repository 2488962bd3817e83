"""The SR training cache: images decoded once, read on demand, prepared resumably."""

import numpy as np
import pytest

from mobile_sr.core import images
from mobile_sr.core.errors import OutputError
from mobile_sr.data.stored import StoredImage
from mobile_sr.tasks.sr import data
from mobile_sr.tasks.sr.data import load_sr_pairs, stored_sr_pairs
from mobile_sr.tasks.sr.resize import bicubic_downscale, modcrop
from mobile_sr.tasks.sr.task import SR_TASK
from tests.helpers import run_cli, textured_image


def _same_pairs(stored, loaded):
    assert [pair.name for pair in stored] == [pair.name for pair in loaded]
    for stored_pair, pair in zip(stored, loaded, strict=True):
        assert isinstance(stored_pair.lr, StoredImage) and isinstance(stored_pair.hr, StoredImage)
        np.testing.assert_array_equal(np.asarray(stored_pair.lr), pair.lr)
        np.testing.assert_array_equal(np.asarray(stored_pair.hr), pair.hr)


def test_stored_pairs_are_the_loaded_pairs_read_on_demand(hr_folder, isolated_cache):
    lines = []
    name, pairs = stored_sr_pairs(hr_folder, 3, log=lines.append)
    assert name == "hr" and "preparing 4 images of hr at x3" in lines[0] and lines[-1].startswith("prepared: 4/4")
    _same_pairs(pairs, load_sr_pairs(hr_folder, 3)[1])
    assert len(list((isolated_cache / "stored").glob("*.npy"))) == 8  # HR and LR of each


def test_a_prepared_folder_is_not_decoded_again(hr_folder, monkeypatch):
    stored_sr_pairs(hr_folder, 2, log=lambda _: None)
    monkeypatch.setattr(data, "load_rgb", lambda path: pytest.fail(f"decoded {path} again"))
    lines = []
    _, pairs = stored_sr_pairs(hr_folder, 2, log=lines.append)
    assert lines == [] and len(pairs) == 4


def test_another_scale_reuses_the_stored_hr_images(hr_folder, isolated_cache):
    stored_sr_pairs(hr_folder, 2, log=lambda _: None)
    stored_sr_pairs(hr_folder, 3, log=lambda _: None)
    assert len(list((isolated_cache / "stored").glob("*.npy"))) == 4 + 2 * 4


def test_div2k_layout_is_stored_with_its_own_lr_images(tmp_path):
    root = tmp_path / "DIV2K"
    hr = textured_image(50, 61)
    images.save_png(root / "DIV2K_train_HR/0001.png", hr)
    images.save_png(root / "DIV2K_train_LR_bicubic/X3/0001x3.png", bicubic_downscale(modcrop(hr, 3), 3))
    name, pairs = stored_sr_pairs(root, 3, log=lambda _: None)
    assert name == "DIV2K-train"
    _same_pairs(pairs, load_sr_pairs(root, 3)[1])


def test_an_interrupted_preparation_resumes_and_never_reads_a_half_written_file(hr_folder, isolated_cache, monkeypatch):
    real_store = data.store_image
    calls = []

    def store_then_crash(path, pixels):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_store(path, pixels)

    monkeypatch.setattr(data, "PREPARE_THREADS", 1)
    monkeypatch.setattr(data, "store_image", store_then_crash)
    with pytest.raises(KeyboardInterrupt):
        stored_sr_pairs(hr_folder, 2, log=lambda _: None)
    monkeypatch.setattr(data, "store_image", real_store)
    stored = sorted((isolated_cache / "stored").iterdir())
    assert calls[0] in stored and len(stored) < 8
    for path in stored:  # whole files only, no temporary one left
        StoredImage(path)
    calls[0].write_bytes(calls[0].read_bytes()[:-1])  # damaged, as by a disk error
    lines = []
    _, pairs = stored_sr_pairs(hr_folder, 2, log=lines.append)
    assert lines[0].startswith("preparing")  # what is missing or damaged, and only that
    assert len(list((isolated_cache / "stored").iterdir())) == 8
    _same_pairs(pairs, load_sr_pairs(hr_folder, 2)[1])


def test_a_cache_on_a_too_full_disk_is_refused_before_decoding(hr_folder, monkeypatch):
    monkeypatch.setattr(data, "free_bytes", lambda _path: 1000)
    with pytest.raises(OutputError, match="takes about .* GB, but its disk has .* free; .*MOBILE_SR_CACHE"):
        stored_sr_pairs(hr_folder, 2, log=lambda _: None)


def test_training_data_is_read_on_demand_and_validation_one_image_at_a_time(hr_folder):
    from mobile_sr.models import make_config

    loaded = SR_TASK.load_data(str(hr_folder), None, seed=0, model_config=make_config("scsrn", scale=2),
                               log=lambda _: None)
    assert all(isinstance(pair.hr, StoredImage) for pair in loaded.train + loaded.val)
    assert SR_TASK.describe(loaded.train).endswith("MP of HR (in the training cache, read as needed)")
    assert SR_TASK.baseline_score(loaded.val, val_name="held out", model_config=make_config("scsrn", scale=2)) > 20


def test_prepare_command_then_training_logs_padded_images(tmp_path):
    for index in range(3):
        images.save_png(tmp_path / "data" / f"{index}.png", textured_image(80, 96, seed=index))
    images.save_png(tmp_path / "data" / "small.png", textured_image(24, 40))  # LR 12x20 at x2
    result = run_cli("prepare", "--data", tmp_path / "data", "--scale", "2,3")
    assert result.exit_code == 0, result.output
    assert "preparing 4 images of data at x2" in result.output and "preparing 4 images of data at x3" in result.output
    result = run_cli("train", "--data", tmp_path / "data", "--scale", "2", "--steps", "1", "--patch-size", "16",
                     "--batch-size", "2", "--channels", "4", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "preparing" not in result.output
    assert "1 of 3 LR images are smaller than a 16x16 patch: they are used" in result.output
