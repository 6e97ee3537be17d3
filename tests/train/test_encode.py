"""dreamomni2.train.encode.SampleEncoder: sizes from the headers, and the pipeline's own encodings."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dreamomni2.images import load_image
from dreamomni2.train.cache import TensorCache
from dreamomni2.train.config import DataConfig
from dreamomni2.train.data import read_manifest
from dreamomni2.train.encode import SampleEncoder

SIZES = {"src.png": (48, 32), "ref.png": (40, 24), "tgt.png": (48, 32), "gen.png": (32, 64)}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("enc")
    rng = np.random.default_rng(0)
    for name, (w, h) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    rows = [
        {"task": "edit", "images": ["src.png", "ref.png"], "instruction": "put image 2 in 1", "target": "tgt.png"},
        {"task": "generate", "images": ["ref.png"], "instruction": "a cat like image 1", "target": "gen.png"},
    ]
    (folder / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    found, problems = read_manifest(folder / "m.jsonl")
    assert not problems
    return found


def _tensors(encoded):
    """Every tensor of an EncodedSample, in a fixed order."""
    return [encoded.target, *encoded.references, encoded.prompt_embeds, encoded.pooled]


def _data(**kw):
    base = {"manifest": "m.jsonl", "auto_resize": False, "max_area": 64 * 64, "max_sequence_length": 32}
    return DataConfig(**{**base, **kw})


def test_pixel_sizes_from_the_headers(tiny_pipe, samples):
    enc = SampleEncoder(tiny_pipe, _data())
    assert enc.multiple == 16  # VAE scale factor 8 x the 2x2 packing
    edit, gen = samples
    # references floored to multiples of 16; an edit's target has the first image's aspect at max_area:
    # 48x32 is 3:2 -> sqrt(4096 * 1.5) = 78.4 -> 64, sqrt(4096 / 1.5) = 52.3 -> 48
    assert enc.pixel_sizes(edit) == ((64, 48), [(48, 32), (32, 16)])
    # a generation's target keeps the target file's own aspect (1:2): 45.3 -> 32, 90.5 -> 80
    assert enc.pixel_sizes(gen) == ((32, 80), [(32, 16)])
    assert enc.bucket_key(edit) == ((64, 48), ((48, 32), (32, 16)))


def test_pixel_sizes_with_auto_resize_and_caps(tiny_pipe, samples):
    edit, _ = samples
    # auto resize: 48x32 snaps to 1248x832 (3:2) and 32x16 (40x24 floored, 2:1) to 1456x720; capped at 64^2 px
    enc = SampleEncoder(tiny_pipe, _data(auto_resize=True, reference_max_area=64 * 64))
    tgt, refs = enc.pixel_sizes(edit)
    assert refs == [(64, 48), (80, 32)]  # 1248x832 -> 78x52 -> 64x48; 1456x720 -> 91x45 -> 80x32
    assert tgt == (64, 48)
    # a smaller max_area shrinks the target only
    small = SampleEncoder(tiny_pipe, _data(max_area=32 * 32))
    assert small.pixel_sizes(edit) == ((32, 16), [(48, 32), (32, 16)])


def test_latents_and_text_are_the_pipelines(tiny_pipe, samples):
    edit, _ = samples
    enc = SampleEncoder(tiny_pipe, _data())
    out = enc.encode(edit, "put image 2 in 1")
    assert out.target.shape == (1, 4, 6, 8)  # 64x48 px / 8
    assert [r.shape for r in out.references] == [(1, 4, 4, 6), (1, 4, 2, 4)]
    assert out.prompt_embeds.shape == (1, 32, 32) and out.pooled.shape == (1, 32)
    assert all(t.dtype == torch.float32 for t in (out.target, out.prompt_embeds, out.pooled, *out.references))
    with torch.no_grad():
        expected_sizes = [(edit.target, (64, 48), out.target)]
        expected_sizes += list(zip(edit.images, [(48, 32), (32, 16)], out.references, strict=True))
        for path, size, got in expected_sizes:
            pixels = tiny_pipe.image_to_tensor(load_image(path), size)
            assert pixels.shape == (1, 3, size[1], size[0])
            (want,) = tiny_pipe.encode_images([pixels], "cpu", torch.float32)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        embeds, pooled, _ = tiny_pipe.encode_prompt(
            prompt="put image 2 in 1", prompt_2=None, device="cpu", max_sequence_length=32
        )
    torch.testing.assert_close(out.prompt_embeds, embeds, rtol=0, atol=0)
    torch.testing.assert_close(out.pooled, pooled, rtol=0, atol=0)
    other = enc.encode(edit, "another text")
    assert not torch.equal(other.prompt_embeds, out.prompt_embeds)
    torch.testing.assert_close(other.target, out.target, rtol=0, atol=0)


def test_order_permutes_the_references(tiny_pipe, samples):
    edit, _ = samples
    enc = SampleEncoder(tiny_pipe, _data())
    straight = enc.encode(edit, "x")
    swapped = enc.encode(edit, "x", order=[1, 0])
    assert [r.shape for r in swapped.references] == [(1, 4, 2, 4), (1, 4, 4, 6)]  # each keeps its own size
    torch.testing.assert_close(swapped.references[0], straight.references[1], rtol=0, atol=0)
    torch.testing.assert_close(swapped.references[1], straight.references[0], rtol=0, atol=0)
    torch.testing.assert_close(swapped.target, straight.target, rtol=0, atol=0)


def test_dtype_and_cache_give_the_same_values(tiny_pipe, samples, tmp_path):
    _, gen = samples
    plain = SampleEncoder(tiny_pipe, _data()).encode(gen, "a cat like image 1")
    cached_enc = SampleEncoder(tiny_pipe, _data(), TensorCache(tmp_path))
    first = cached_enc.encode(gen, "a cat like image 1")
    second = cached_enc.encode(gen, "a cat like image 1")
    assert (cached_enc.cache.hits, cached_enc.cache.misses) == (3, 3)
    for a, b, c in zip(_tensors(plain), _tensors(first), _tensors(second), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)
    half = SampleEncoder(tiny_pipe, _data(), TensorCache(tmp_path), dtype=torch.bfloat16).encode(gen, "a cat")
    assert half.target.dtype == torch.bfloat16 and half.prompt_embeds.dtype == torch.bfloat16
    torch.testing.assert_close(half.target.float(), plain.target, rtol=2e-2, atol=2e-2)


def test_an_image_smaller_than_a_patch_is_refused(tiny_pipe, tmp_path):
    Image.new("RGB", (8, 32)).save(tmp_path / "thin.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "t.png")
    row = {"task": "edit", "images": ["thin.png"], "instruction": "x", "target": "t.png"}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    (sample,), _ = read_manifest(tmp_path / "m.jsonl")
    with pytest.raises(ValueError, match=r"Image of 8x32 px is smaller than one latent patch \(16 px\)\."):
        SampleEncoder(tiny_pipe, _data()).pixel_sizes(sample)
