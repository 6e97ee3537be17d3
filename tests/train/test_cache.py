"""dreamomni2.train.cache: stored tensors come back identical; keys follow content, size and encoder."""

import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from dreamomni2.train.cache import TensorCache, file_digest, module_identity
from dreamomni2.train.config import DataConfig
from dreamomni2.train.data import read_manifest
from dreamomni2.train.encode import SampleEncoder


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "latent": torch.randn(1, 4, 3, 5, generator=g),
        "half": torch.randn(2, 7, generator=g).to(torch.bfloat16),
        "ids": torch.arange(6, dtype=torch.int64).view(2, 3),
        "strided": torch.randn(4, 6, generator=g)[:, ::2],  # non-contiguous: stored as a contiguous copy
    }


def test_hit_returns_identical_tensors(tmp_path):
    cache = TensorCache(tmp_path / "c")
    key = TensorCache.key("latent", "vae0", "abc", (64, 48), torch.float32)
    assert cache.get(key) is None and (cache.hits, cache.misses) == (0, 1)
    stored = _tensors()
    cache.put(key, stored)
    got = cache.get(key)
    assert (cache.hits, cache.misses) == (1, 1)
    assert got.keys() == stored.keys()
    for name, t in stored.items():
        assert got[name].dtype == t.dtype and got[name].shape == t.shape and got[name].device.type == "cpu"
        assert torch.equal(got[name], t), name
    # stored as <2 hex chars>/<key>.safetensors, nothing else left beside it
    path = tmp_path / "c" / key[:2] / f"{key}.safetensors"
    assert path.is_file()
    assert sorted(os.listdir(path.parent)) == [path.name]


def test_put_replaces_an_entry(tmp_path):
    cache = TensorCache(tmp_path)
    cache.put("k" * 64, {"a": torch.zeros(2)})
    cache.put("k" * 64, {"a": torch.ones(3)})
    assert cache.get("k" * 64)["a"].tolist() == [1.0, 1.0, 1.0]


def test_damaged_entry_is_a_miss(tmp_path, caplog):
    cache = TensorCache(tmp_path)
    key = TensorCache.key("x")
    cache.put(key, {"a": torch.ones(4)})
    path = tmp_path / key[:2] / f"{key}.safetensors"
    path.write_bytes(path.read_bytes()[:20])  # truncated
    with caplog.at_level(logging.WARNING, logger="dreamomni2.train.cache"):
        assert cache.get(key) is None
    assert (cache.hits, cache.misses) == (0, 1)
    assert "unreadable; recomputing" in caplog.text


def test_failed_put_leaves_no_file(tmp_path):
    cache = TensorCache(tmp_path)
    shared = torch.zeros(4)
    with pytest.raises(RuntimeError):  # safetensors refuses tensors that share memory
        cache.put("f" * 64, {"a": shared, "b": shared})
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert cache.get("f" * 64) is None


def test_key_values():
    k = TensorCache.key("latent", "v", "d", (64, 48), torch.float32)
    assert len(k) == 64 and int(k, 16) >= 0
    assert k == TensorCache.key("latent", "v", "d", (64, 48), torch.float32)  # deterministic
    assert k != TensorCache.key("latent", "v", "d", (48, 64), torch.float32)  # size
    assert k != TensorCache.key("latent", "v", "d", (64, 48), torch.bfloat16)  # dtype
    assert k != TensorCache.key("latent", "w", "d", (64, 48), torch.float32)  # encoder
    assert TensorCache.key("ab", "c") != TensorCache.key("a", "bc")  # parts are separated
    import hashlib

    assert TensorCache.key("a", 1) == hashlib.sha256(b"a\x1f1").hexdigest()


def test_file_digest_follows_content(tmp_path):
    import hashlib

    p = tmp_path / "f.bin"
    p.write_bytes(b"one")
    assert file_digest(p) == hashlib.sha256(b"one").hexdigest()
    p.write_bytes(b"two!")  # new size: the memo does not return the old digest
    assert file_digest(p) == hashlib.sha256(b"two!").hexdigest()
    q = tmp_path / "g.bin"
    q.write_bytes(b"two!")
    assert file_digest(q) == file_digest(p)  # same bytes, same digest, whatever the name


def test_module_identity():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    with torch.no_grad():
        b.load_state_dict(a.state_dict())
    assert module_identity(a) == module_identity(b)
    assert len(module_identity(a)) == 16
    with torch.no_grad():
        b.weight[0, 0] += 0.5
    assert module_identity(a) != module_identity(b)
    assert module_identity(a, b) != module_identity(b, a)  # order of the modules counts


# --- through the trainer's encoder: which inputs invalidate an entry ----------------------------


def _write_manifest(folder, seed=0):
    rng = np.random.default_rng(seed)
    for name, size in (("src.png", (48, 32)), ("ref.png", (32, 32)), ("tgt.png", (48, 32))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    row = {"task": "edit", "images": ["src.png", "ref.png"], "instruction": "put it there", "target": "tgt.png"}
    (folder / "m.jsonl").write_text(json.dumps(row) + "\n")
    samples, problems = read_manifest(folder / "m.jsonl")
    assert not problems
    return samples[0]


def _data(**kw):
    base = {"manifest": "m.jsonl", "auto_resize": False, "max_area": 48 * 32, "max_sequence_length": 32}
    return DataConfig(**{**base, **kw})


def _all_tensors(encoded):
    """Every tensor of an EncodedSample, in a fixed order."""
    return [encoded.target, *encoded.references, encoded.prompt_embeds, encoded.pooled]


def test_encoder_cache_hits_and_invalidation(tiny_pipe, tmp_path):
    sample = _write_manifest(tmp_path)
    cache_dir = tmp_path / "cache"
    first = SampleEncoder(tiny_pipe, _data(), TensorCache(cache_dir))
    a = first.encode(sample, "put it there")
    assert (first.cache.hits, first.cache.misses) == (0, 4)  # 2 references, target, text

    again = SampleEncoder(tiny_pipe, _data(), TensorCache(cache_dir))
    b = again.encode(sample, "put it there")
    assert (again.cache.hits, again.cache.misses) == (4, 0)
    for x, y in zip(_all_tensors(a), _all_tensors(b), strict=True):
        assert torch.equal(x, y)

    # a new text: only the text entry is recomputed
    text = SampleEncoder(tiny_pipe, _data(), TensorCache(cache_dir))
    text.encode(sample, "put it here")
    assert (text.cache.hits, text.cache.misses) == (3, 1)

    # another target size (smaller max_area): only the target latent is recomputed
    size = SampleEncoder(tiny_pipe, _data(max_area=32 * 16), TensorCache(cache_dir))
    assert size.pixel_sizes(sample)[0] != first.pixel_sizes(sample)[0]
    size.encode(sample, "put it there")
    assert (size.cache.hits, size.cache.misses) == (3, 1)

    # new content of one reference: only that entry is recomputed
    Image.new("RGB", (32, 32), (9, 9, 9)).save(sample.images[1])
    content = SampleEncoder(tiny_pipe, _data(), TensorCache(cache_dir))
    c = content.encode(sample, "put it there")
    assert (content.cache.hits, content.cache.misses) == (3, 1)
    assert not torch.equal(c.references[1], a.references[1]) and torch.equal(c.references[0], a.references[0])


def test_another_encoder_misses(tiny_pipe, tmp_path):
    from dreamomni2.testing import build_tiny_pipeline

    sample = _write_manifest(tmp_path)
    SampleEncoder(tiny_pipe, _data(), TensorCache(tmp_path / "cache")).encode(sample, "x")
    other = SampleEncoder(build_tiny_pipeline(seed=1), _data(), TensorCache(tmp_path / "cache"))
    other.encode(sample, "x")
    assert (other.cache.hits, other.cache.misses) == (0, 4)  # other VAE and text encoders: nothing reused
