"""The speed and memory knobs (``dreamomni2.knobs``): parsing, errors, and each knob run on the shipped mini model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dreamomni2.cli import main
from dreamomni2.knobs import (
    CACHES,
    QUANTIZERS,
    CacheSpec,
    check_attention,
    check_quantize,
    parse_cache,
    parse_quantize,
)
from dreamomni2.request import Request
from dreamomni2.session import Session
from tests.conftest import random_image

# ------------------------------------------------------------------------------------------- parsing


def test_parse_quantize_values():
    assert parse_quantize(None) == {} and parse_quantize("") == {} and parse_quantize("none") == {}
    assert parse_quantize("int8") == {"transformer": "int8", "text_encoder_2": "int8"}
    assert parse_quantize("NF4") == {"transformer": "nf4", "text_encoder_2": "nf4"}
    assert parse_quantize("gguf:/m/flux-Q4_1.gguf") == {"transformer": "gguf:/m/flux-Q4_1.gguf"}
    assert parse_quantize("transformer=nf4, text_encoder_2=int8") == {"transformer": "nf4", "text_encoder_2": "int8"}
    assert parse_quantize({"transformer": "gguf:a.gguf"}) == {"transformer": "gguf:a.gguf"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("int4", "--quantize int4: unknown quantizer 'int4'; use int8, fp8, nf4, bnb-int8 or gguf:PATH"),
        ("unet=int8", "--quantize unet=int8: unknown component 'unet'; use transformer, text_encoder_2, text_encoder"),
        ("text_encoder_2=gguf:x.gguf", "--quantize text_encoder_2=gguf:x.gguf: gguf files hold the transformer only"),
        ("gguf:", "--quantize gguf:: name the file, gguf:PATH"),
        ("int8,nf4", "--quantize int8,nf4: name each component when giving several"),
        ("transformer=int8,transformer=nf4", "--quantize transformer=nf4: transformer is given twice"),
    ],
)
def test_parse_quantize_errors(spec, message):
    with pytest.raises(ValueError) as e:
        parse_quantize(spec)
    assert str(e.value).startswith(message)


def test_parse_cache_values():
    assert parse_cache(None) is None and parse_cache("off") is None and parse_cache("none") is None
    assert parse_cache("fbcache") == CacheSpec("fbcache", 0.05)
    assert parse_cache("FBCache:0.2") == CacheSpec("fbcache", 0.2)
    assert parse_cache("taylorseer:3") == CacheSpec("taylorseer", 3.0)
    assert str(parse_cache("magcache:0.1")) == "magcache:0.1"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("teacache", "--cache teacache: unknown cache 'teacache'; use one of fbcache, magcache, taylorseer, pab"),
        ("fbcache:abc", "--cache fbcache:abc: 'abc' is not a number"),
        ("fbcache:-1", "--cache fbcache:-1: the value must be >= 0"),
        ("fbcache:nan", "--cache fbcache:nan: the value must be >= 0"),
        ("taylorseer:0", "--cache taylorseer:0: the value must be >= 1"),
        ("pab:1.5", "--cache pab:1.5: '1.5' is not an integer"),
    ],
)
def test_parse_cache_errors(spec, message):
    with pytest.raises(ValueError) as e:
        parse_cache(spec)
    assert str(e.value).startswith(message)


@given(name=st.sampled_from(sorted(CACHES)), value=st.integers(1, 1000))
def test_parse_cache_round_trips(name, value):
    spec = parse_cache(f"{name}:{value}")
    assert spec == CacheSpec(name, float(value))
    assert parse_cache(str(spec)) == spec


@given(st.text(max_size=30))
def test_parse_quantize_never_crashes(text):
    try:
        plan = parse_quantize(text)
    except ValueError as e:
        assert str(e).startswith("--quantize")
    else:
        assert all(m in QUANTIZERS or m.startswith("gguf:") for m in plan.values())


def test_attention_names():
    assert check_attention(None) is None and check_attention("default") is None
    assert check_attention("NATIVE") == "native"
    with pytest.raises(ValueError, match=r"^--attention fast: unknown backend; use one of .*native"):
        check_attention("fast")


@pytest.mark.parametrize(
    "method, message",
    [
        ("nf4", "--quantize nf4: bitsandbytes 4-bit NF4 runs on cuda only, not on cpu"),
        ("bnb-int8", "--quantize bnb-int8: bitsandbytes LLM.int8 runs on cuda only, not on cpu"),
        ("fp8", "--quantize fp8: torchao float8 weight-only (compute capability 8.9+) runs on cuda only, not on cpu"),
    ],
)
def test_cuda_only_quantizers_refuse_the_cpu(method, message):
    with pytest.raises(ValueError) as e:
        check_quantize(parse_quantize(method), "cpu")
    assert str(e.value) == message
    with pytest.raises(ValueError) as e:  # the Session refuses before anything loads
        Session(device="cpu", quantize=method)
    assert str(e.value) == message


def test_missing_backend_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a))
    with pytest.raises(ValueError) as e:
        check_quantize({"transformer": "int8"}, "cpu")
    assert str(e.value) == "--quantize int8: torchao int8 weight-only needs the torchao package " + (
        "(pip install 'dreamomni2[quant]')"
    )


def test_gguf_file_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"^--quantize gguf:.*nothing.gguf: no such file$"):
        check_quantize({"transformer": f"gguf:{tmp_path / 'nothing.gguf'}"}, "cpu")
    (tmp_path / "w.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"not a \.gguf file$"):
        check_quantize({"transformer": f"gguf:{tmp_path / 'w.safetensors'}"}, "cpu")


# ------------------------------------------------------------------------------------------- runs


def _request(steps: int = 8) -> Request:
    images = [random_image(32, 32, seed=1), random_image(32, 32, seed=2)]
    return Request("edit", images, "x", prompt="make object 1 red", seed=3, steps=steps, size=(32, 32))


def _pixels(session: Session, request: Request | None = None) -> np.ndarray:
    return np.asarray(session.run(request or _request()).image, dtype=np.float64)


@pytest.fixture(scope="module")
def baseline() -> np.ndarray:
    torch.manual_seed(0)
    return _pixels(Session(device="cpu", progress=False, planner="none"))


def test_cache_off_or_zero_threshold_is_the_baseline_and_high_threshold_differs(baseline):
    zero = Session(device="cpu", progress=False, planner="none", cache="fbcache:0")
    assert np.array_equal(_pixels(zero), baseline)
    high = Session(device="cpu", progress=False, planner="none", cache="fbcache:5")
    cached = _pixels(high)
    assert np.abs(cached - baseline).mean() > 0.5  # most steps reuse the first step's residual
    assert np.array_equal(_pixels(high), cached)  # the hook state is reset between calls
    assert high.pipe.transformer.is_cache_enabled
    other = Request("edit", [random_image(32, 32, seed=5)], "x", prompt="make it blue", seed=4, steps=8, size=(32, 32))
    high.run(other)  # a different image (and one reference) in between changes nothing either
    assert np.array_equal(_pixels(high), cached)


@pytest.mark.parametrize("spec", ["magcache:0.5", "taylorseer:4", "pab:3"])
def test_each_cache_runs_and_changes_the_image(baseline, spec):
    session = Session(device="cpu", progress=False, planner="none", cache=spec)
    out = _pixels(session)
    assert np.isfinite(out).all() and out.shape == baseline.shape
    assert np.abs(out - baseline).mean() > 0.05
    assert np.array_equal(_pixels(session), out)


def test_magcache_follows_the_step_count():
    session = Session(device="cpu", progress=False, planner="none", cache="magcache:0.06")
    session.run(_request(steps=6))
    assert session.pipe.transformer._cache_config.num_inference_steps == 6
    session.run(_request(steps=9))
    assert session.pipe.transformer._cache_config.num_inference_steps == 9


def test_torchao_int8_is_close_to_the_baseline(baseline):
    def quantized(weight) -> bool:
        return type(weight).__module__.startswith("torchao")

    session = Session(device="cpu", progress=False, planner="none", quantize="int8")  # transformer and T5
    out = _pixels(session)
    assert quantized(session.pipe.transformer.transformer_blocks[0].attn.to_q.weight)
    assert quantized(session.pipe.text_encoder_2.encoder.block[0].layer[0].SelfAttention.q.weight)
    assert not any(quantized(w) for w in session.pipe.text_encoder.parameters())  # CLIP is not quantized
    assert np.isfinite(out).all()
    assert 0 < np.abs(out - baseline).mean() < 3.0  # of 255


def _write_gguf(path, state_dict) -> int:
    """A GGUF file of ``state_dict`` (diffusers key names): Q8_0 for the 2-D weights whose rows split into blocks."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="flux")
    quantized = 0
    for name, tensor in state_dict.items():
        array = tensor.float().numpy()
        if array.ndim == 2 and array.shape[-1] % 32 == 0:
            q = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            quantized += 1
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return quantized


def test_gguf_transformer_loads_and_runs(tmp_path, baseline):
    from diffusers.quantizers.gguf.utils import GGUFLinear
    from safetensors.torch import load_file

    from dreamomni2.mini import default_model_path

    weights = load_file(default_model_path() / "transformer" / "diffusion_pytorch_model.safetensors")
    assert _write_gguf(tmp_path / "mini-Q8_0.gguf", weights) > 20
    session = Session(device="cpu", progress=False, planner="none", quantize=f"gguf:{tmp_path / 'mini-Q8_0.gguf'}")
    out = _pixels(session)
    assert isinstance(session.pipe.transformer.transformer_blocks[0].attn.to_q, GGUFLinear)
    assert np.isfinite(out).all()
    assert 0 < np.abs(out - baseline).mean() < 3.0


def test_a_bad_gguf_file_is_named(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF not really")
    session = Session(device="cpu", progress=False, planner="none", quantize=f"gguf:{bad}")
    with pytest.raises(ValueError, match=r"^--quantize gguf:.*broken.gguf: cannot load it as this model's transformer"):
        session.load()


def test_attention_backend_is_set(baseline):
    session = Session(device="cpu", progress=False, planner="none", attention="_native_math")
    assert np.abs(_pixels(session) - baseline).max() <= 1.0  # the same maths, another kernel
    assert session.pipe.transformer.transformer_blocks[0].attn.processor._attention_backend == "_native_math"


# ------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--quantize", "int4"], "--quantize int4: unknown quantizer 'int4'"),
        (["--quantize", "nf4"], "--quantize nf4: bitsandbytes 4-bit NF4 runs on cuda only, not on cpu"),
        (["--cache", "fbcache:abc"], "--cache fbcache:abc: 'abc' is not a number"),
        (["--attention", "fast"], "--attention fast: unknown backend"),
    ],
)
def test_cli_bad_knobs_exit_2_with_one_line(flags, message, tmp_path, capsys):
    img = tmp_path / "a.png"
    random_image(32, 32).save(img)
    rc = main(["edit", str(img), "-i", "x", "-o", str(tmp_path / "o.png"), "--device", "cpu", "--quiet", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_cli_cache_flag_runs(tmp_path, capsys):
    img = tmp_path / "a.png"
    random_image(32, 32).save(img)
    out = tmp_path / "o.png"
    rc = main(["edit", str(img), "-i", "make it red", "-o", str(out), "--device", "cpu", "--quiet", "--steps", "4",
               "--planner", "none", "--cache", "fbcache:0.1", "--quantize", "transformer=int8"])  # fmt: skip
    assert rc == 0 and out.is_file()
