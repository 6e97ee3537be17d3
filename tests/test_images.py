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
    assert im.mode == "RGB" and im.getpixel((1, 1)) == (255, 255, 255)  # fully transparent: white, not (10, 20, 30)


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


def test_a_postscript_file_named_png_is_refused_unread(tmp_path):
    """EPS is not on the allowlist: Pillow would hand it to Ghostscript (an external program)."""
    from dreamomni2.images import ALLOWED_FORMATS

    p = tmp_path / "evil.png"
    p.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    assert "EPS" not in ALLOWED_FORMATS
    with pytest.raises(ImageLoadError, match=r"evil\.png: not an image file in an accepted format \(PNG, JPEG"):
        load_image(p)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((4, 8, 3), dtype=np.uint8)
    arr[:, :4] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=100)
    out = np.asarray(load_image(p))
    assert out.shape == (8, 4, 3)  # width and height swapped
    assert out[:4].mean() > 200 and out[4:].mean() < 50  # the white half is now on top


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(arr).save(p)
    assert Image.open(p).mode.startswith("I")
    out = np.asarray(load_image(p))[0, :, 0]
    assert out.tolist() == [0, 64, 128, 255]


def test_save_image_is_atomic_and_checks_the_suffix(tmp_path):
    from dreamomni2.images import save_image

    p = tmp_path / "o.png"
    p.write_bytes(b"old")
    save_image(Image.fromarray(_pixels(5, 4)), p)
    assert np.array_equal(np.asarray(Image.open(p)), _pixels(5, 4))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.png"]
    with pytest.raises(ValueError, match=r"o\.gif: use a \.png, \.jpg, \.jpeg, \.webp file name"):
        save_image(Image.fromarray(_pixels(5, 4)), tmp_path / "o.gif")


def test_alpha_palette_cmyk_and_gif_convert_to_8_bit_rgb(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 255, 0, 0)  # fully transparent green: white
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black: mid grey
    rgba[1, 1] = (0, 0, 255, 255)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = np.asarray(load_image(tmp_path / "a.png")).astype(int)
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [255, 255, 255]
    assert out[1, 1].tolist() == [0, 0, 255] and abs(out[1, 0] - 127).max() <= 1
    pal = Image.fromarray(_pixels(4, 4)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.save(tmp_path / "p.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "p.png")), np.asarray(pal.convert("RGB")))
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    assert np.abs(np.asarray(load_image(tmp_path / "c.jpg")).astype(int) - [255, 0, 0]).max() <= 3
    frames = [Image.new("RGB", (4, 4), c) for c in ((200, 0, 0), (0, 200, 0))]
    frames[0].save(tmp_path / "g.gif", save_all=True, append_images=frames[1:])
    first = np.asarray(load_image(tmp_path / "g.gif"))
    assert first.shape == (4, 4, 3) and first[0, 0, 0] > 150 and first[0, 0, 1] < 50  # the first frame
