import json

import pytest
from PIL import Image

from dreamomni2.resize import (
    PREFERRED_KONTEXT_RESOLUTIONS,
    closest_preferred_resolution,
    output_size,
    reference_size,
    resize_image,
)


def test_preferred_list_matches_diffusers():
    from diffusers.pipelines.flux.pipeline_flux_kontext import PREFERRED_KONTEXT_RESOLUTIONS as theirs

    assert list(PREFERRED_KONTEXT_RESOLUTIONS) == list(theirs)
    assert len(PREFERRED_KONTEXT_RESOLUTIONS) == 17
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in PREFERRED_KONTEXT_RESOLUTIONS)


@pytest.mark.parametrize(
    "size, want",
    [
        ((832, 1248), (832, 1248)),
        ((1024, 1024), (1024, 1024)),
        ((534, 356), (1248, 832)),  # 1.5 -> 1248x832
        ((357, 535), (832, 1248)),
        ((347, 466), (880, 1184)),  # 0.745 -> 880/1184 = 0.743
        ((1920, 1080), (1392, 752)),  # 1.778 -> 1.851 is closer than 1.66
        ((100, 1000), (672, 1568)),
        ((5000, 100), (1568, 672)),
    ],
)
def test_closest_preferred(size, want):
    assert closest_preferred_resolution(*size) == want
    assert reference_size(*size) == want


def test_aspect_is_taken_after_flooring_like_the_release():
    assert reference_size(48, 40) == (1248, 832)  # floored to 48x32 = 1.5, not 1.2
    assert closest_preferred_resolution(48, 40) == (1104, 944)


def test_reference_size_without_auto_resize_and_with_cap():
    assert reference_size(537, 301, auto_resize=False) == (528, 288)
    assert reference_size(832, 1248, max_area=64 * 64) == (48, 64)  # 52x78 floored to 16
    assert reference_size(1024, 1024, multiple_of=4, max_area=32 * 32) == (32, 32)
    with pytest.raises(ValueError, match="smaller than one latent patch"):
        reference_size(10, 10, auto_resize=False)
    with pytest.raises(ValueError, match="must be positive"):
        reference_size(0, 10)


def test_output_size_release_rule():
    assert output_size(1024, 1024) == (1024, 1024)
    assert output_size(832, 1248) == (832, 1248)
    assert output_size(512, 512) == (1024, 1024)  # scales up like the release
    assert output_size(1024, 768, max_area=512 * 512) == (576, 432)
    assert output_size(64, 48, max_area=64 * 64) == (64, 48)


def test_resize_image_lanczos_matches_pil():
    im = Image.new("RGB", (30, 20), (10, 20, 30))
    im.putpixel((3, 4), (255, 0, 0))
    out = resize_image(im, (16, 16))
    assert out.size == (16, 16)
    assert out.tobytes() == im.resize((16, 16), Image.Resampling.LANCZOS).tobytes()
    same = resize_image(im, (30, 20))
    assert same is not im and same.tobytes() == im.tobytes()


@pytest.mark.release_examples
def test_release_examples_get_the_release_sizes(release_examples):
    """Each real photo gets the preferred resolution the release's rule gives it."""
    cases = [json.loads(line) for line in (release_examples / "cases.jsonl").read_text().splitlines() if line.strip()]
    assert len(cases) == 10
    for case in cases:
        for rel, size in zip(case["images"], case["sizes"], strict=True):
            with Image.open(release_examples / rel) as im:
                assert list(im.size) == size
                w, h = im.size
            # the release: floor to 16 (get_default_height_width), min over (|aspect - w/h|, w, h)
            w, h = w // 16 * 16, h // 16 * 16
            _, ew, eh = min((abs(w / h - pw / ph), pw, ph) for pw, ph in PREFERRED_KONTEXT_RESOLUTIONS)
            assert reference_size(w, h) == (ew, eh)
