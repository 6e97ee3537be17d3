"""dreamomni2.images.load_image: formats, modes, and the refusals (with their messages)."""

import io
import re

import numpy as np
import pytest
from PIL import Image

from dreamomni2.images import DEFAULT_MAX_PIXELS, ImageLoadError, load_image


def _pixels(width, height, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_png_loads_exactly(tmp_path):
    arr = _pixels(7, 5)
    p = tmp_path / "a.png"
    Image.fromarray(arr).save(p)
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (7, 5)
    assert np.array_equal(np.asarray(im), arr)


def test_jpeg_loads_close(tmp_path):
    arr = np.full((16, 24, 3), (200, 100, 50), dtype=np.uint8)  # flat colour: JPEG keeps it almost exactly
    p = tmp_path / "a.jpg"
    Image.fromarray(arr).save(p, quality=95)
    im = load_image(str(p))  # str paths too
    assert im.mode == "RGB" and im.size == (24, 16)
    assert np.abs(np.asarray(im).astype(int) - arr).max() <= 3


def test_other_modes_become_rgb(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("L", (3, 2), 77).save(grey)
    assert np.asarray(load_image(grey)).tolist() == [[[77, 77, 77]] * 3] * 2
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (2, 2), (10, 20, 30, 0)).save(rgba)
    im = load_image(rgba)
    assert im.mode == "RGB" and im.getpixel((1, 1)) == (10, 20, 30)


def test_missing_file_and_folder(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(ImageLoadError, match=re.escape(f"{missing}: no such file")):
        load_image(missing)
    with pytest.raises(ImageLoadError, match=re.escape(f"{tmp_path}: not a file")):
        load_image(tmp_path)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello, not a picture")
    with pytest.raises(ImageLoadError) as e:
        load_image(p)
    # one line naming the file and saying it is not an (accepted) image
    assert str(e.value).startswith(f"{p}: not an image")
    assert "\n" not in str(e.value) and isinstance(e.value, ValueError)


def test_too_many_pixels(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (20, 10)).save(p)
    with pytest.raises(ImageLoadError) as e:
        load_image(p, max_pixels=199)
    assert str(e.value) == f"{p}: 20x10 px is above the limit of 199 pixels"
    assert load_image(p, max_pixels=200).size == (20, 10)  # the limit itself is allowed
    assert DEFAULT_MAX_PIXELS == 64 * 1024 * 1024


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    # a PNG cut right after its header: decoding would fail, but the size check comes first
    buf = io.BytesIO()
    Image.fromarray(_pixels(64, 64)).save(buf, format="PNG")
    p = tmp_path / "cut.png"
    p.write_bytes(buf.getvalue()[:60])
    with pytest.raises(ImageLoadError, match=re.escape(f"{p}: 64x64 px is above the limit of 100 pixels")):
        load_image(p, max_pixels=100)
    with pytest.raises(ImageLoadError, match=re.escape(f"{p}: cannot read image (")):
        load_image(p)
