"""Decoding odd images (grey, RGBA, palette, 16-bit, EXIF, huge, corrupt) and stimulus sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from metamers.errors import StimulusError
from metamers.stimuli import fit_image, load_image, resolve_stimuli


@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    rgba = np.dstack([rgb, np.full((40, 60), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.gif")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    return tmp_path


@pytest.mark.parametrize(
    "name,channels",
    [("rgb.png", 3), ("grey.png", 1), ("rgba.png", 3), ("palette.gif", 3), ("deep.png", 1)],
)
def test_odd_modes_decode_to_unit_range(image_dir, name, channels):
    image = load_image(image_dir / name)
    assert image.dtype == torch.float32 and image.shape == (channels, 40, 60)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_16bit_keeps_full_precision(image_dir):
    deep = load_image(image_dir / "deep.png")
    grey = load_image(image_dir / "grey.png")
    torch.testing.assert_close(deep, grey, atol=1e-6, rtol=0)


def test_rgba_composited_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    torch.testing.assert_close(load_image(tmp_path / "clear.png"), torch.ones(3, 4, 4))


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (30, 10), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").shape == (3, 30, 10)


def test_huge_image_is_reduced(tmp_path):
    Image.new("RGB", (9000, 3000), (10, 20, 30)).save(tmp_path / "huge.png")
    image = load_image(tmp_path / "huge.png")
    assert max(image.shape[1:]) <= 4096


def test_corrupt_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(StimulusError, match="broken.png"):
        load_image(bad)


def test_skip_bad_warns_and_continues(tmp_path, image_dir):
    (image_dir / "broken.jpg").write_bytes(b"garbage")
    strict = resolve_stimuli(str(image_dir))
    with pytest.raises(StimulusError, match="broken.jpg"):
        list(strict.batches((3, 16, 16), 8))
    lenient = resolve_stimuli(str(image_dir), skip_bad=True)
    with pytest.warns(UserWarning, match="skipping broken"):
        batches = list(lenient.batches((3, 16, 16), 8))
    assert sum(len(ids) for ids, _ in batches) == 5


def test_fit_image_square_crop_then_resize():
    image = torch.zeros(1, 20, 40)
    image[:, :, 10:30] = 1.0  # the centred square is all ones
    fitted = fit_image(image, (3, 8, 8))
    assert fitted.shape == (3, 8, 8)
    torch.testing.assert_close(fitted, torch.ones(3, 8, 8))


def test_folder_with_class_subfolders(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / label / "a.png")
    stimuli = resolve_stimuli(str(tmp_path))
    assert stimuli.ids == ["cat/a", "dog/a"] and [s.target for s in stimuli] == [0, 1]
    assert stimuli.label_space == "folders"


def test_bundled_photos_have_labels(photos):
    assert len(photos) >= 15
    coffee = photos.select(["coffee"])[0]
    assert coffee.label == "espresso" and coffee.target == 967
    assert photos.load(coffee, (3, 64, 64)).shape == (3, 64, 64)


def test_bad_specs():
    with pytest.raises(StimulusError, match="unknown bundled"):
        resolve_stimuli("bundled:nope")
    with pytest.raises(StimulusError, match="not found"):
        resolve_stimuli("/no/such/file.png")


def test_empty_folder(tmp_path):
    with pytest.raises(StimulusError, match="empty"):
        resolve_stimuli(str(tmp_path))
