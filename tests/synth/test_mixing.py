"""Feature mixing on the tiny random model: off == plain pipeline, the target reads the source, never the reverse."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dreamomni2.synth.mixing import (
    MixingAttnProcessor,
    MixingConfig,
    MixingController,
    feature_mixing,
    parse_blocks,
    parse_steps,
    shifted_source_ids,
)

STEPS = 3
KW = dict(
    task="generate",
    height=32,
    width=32,
    num_inference_steps=STEPS,
    output_type="latent",
    max_sequence_length=8,
    max_area=1024,
)
SRC, TGT = ("a red circle", 0), ("a blue square", 1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _pairs(pipe, pairs, config):
    """Latents ``[2P, N, D]`` of ``pairs`` ((source prompt, seed), (target prompt, seed)) drawn as one batch."""
    prompts = [p for pair in pairs for p, _ in pair]
    gens = [_gen(s) for pair in pairs for _, s in pair]
    with feature_mixing(pipe.transformer, config, STEPS):
        return pipe(prompt=prompts, generator=gens, **KW).images


def _pair(pipe, src=SRC, tgt=TGT, **config):
    return _pairs(pipe, [(src, tgt)], MixingConfig(**config))


def _plain(pipe, prompt_seed):
    prompt, seed = prompt_seed
    return pipe(prompt=prompt, generator=_gen(seed), **KW).images[0]


@pytest.fixture(scope="module")
def mixed(tiny_pipe):
    """The default setting (all blocks, all steps, same RoPE) on the default pair."""
    return _pair(tiny_pipe)


def _diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("config", [{"enabled": False}, {"steps": "none"}, {"blocks": "none"}])
def test_mixing_off_is_the_plain_pipeline(tiny_pipe, config):
    out = _pair(tiny_pipe, **config)
    torch.testing.assert_close(out[1], _plain(tiny_pipe, TGT), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0], _plain(tiny_pipe, SRC), atol=1e-5, rtol=0)


def test_target_depends_on_the_source(tiny_pipe, mixed):
    assert _diff(mixed[1], _plain(tiny_pipe, TGT)) > 1e-3
    assert _diff(_pair(tiny_pipe, src=("a green cross", 0))[1], mixed[1]) > 1e-4  # other source prompt
    assert _diff(_pair(tiny_pipe, src=(SRC[0], 5))[1], mixed[1]) > 1e-4  # other source seed


def test_source_does_not_depend_on_the_target(tiny_pipe, mixed):
    other = _pair(tiny_pipe, tgt=("a yellow diamond", 9))
    assert _diff(other[0], mixed[0]) <= 1e-6
    assert _diff(other[1], mixed[1]) > 1e-4
    torch.testing.assert_close(mixed[0], _plain(tiny_pipe, SRC), atol=1e-5, rtol=0)  # source == no mixing at all


def test_mixing_only_where_configured(tiny_pipe, mixed):
    double, single = _pair(tiny_pipe, blocks="double"), _pair(tiny_pipe, blocks="single")
    plain = _plain(tiny_pipe, TGT)
    assert min(_diff(double[1], plain), _diff(single[1], plain)) > 1e-4
    assert _diff(double[1], single[1]) > 1e-4
    assert _diff(double[1], mixed[1]) > 1e-4 and _diff(single[1], mixed[1]) > 1e-4
    assert _diff(_pair(tiny_pipe, blocks="double:0,single:0")[1], mixed[1]) <= 1e-6  # = both on the tiny model


def test_mix_steps(tiny_pipe, mixed):
    first = _pair(tiny_pipe, steps="0")
    assert _diff(first[1], mixed[1]) > 1e-4 and _diff(first[1], _plain(tiny_pipe, TGT)) > 1e-4
    assert _diff(_pair(tiny_pipe, steps="0-2")[1], mixed[1]) <= 1e-6
    assert _diff(_pair(tiny_pipe, steps="0.0-1.0")[1], mixed[1]) <= 1e-6


def test_rope_setting_changes_the_target(tiny_pipe, mixed):
    shifted = _pair(tiny_pipe, rope="shifted")
    assert _diff(shifted[1], mixed[1]) > 1e-4
    assert _diff(shifted[0], mixed[0]) <= 1e-6


def test_a_batch_of_pairs_equals_each_pair_alone(tiny_pipe, mixed):
    second = (("a cyan triangle", 3), ("an orange cross", 4))
    both = _pairs(tiny_pipe, [(SRC, TGT), second], MixingConfig())
    torch.testing.assert_close(both[:2], mixed, atol=1e-5, rtol=0)
    torch.testing.assert_close(both[2:], _pair(tiny_pipe, *second), atol=1e-5, rtol=0)


def test_processors_restored_and_steps_counted(tiny_pipe):
    before = {k: type(v) for k, v in tiny_pipe.transformer.attn_processors.items()}
    with feature_mixing(tiny_pipe.transformer, MixingConfig(), STEPS) as ctl:
        assert {type(p) for p in tiny_pipe.transformer.attn_processors.values()} == {MixingAttnProcessor}
        tiny_pipe(prompt=[SRC[0], TGT[0]], generator=[_gen(0), _gen(1)], **KW)
        assert ctl.step == STEPS - 1 and ctl.text_len == 8
        tiny_pipe(prompt=[SRC[0], TGT[0]], generator=[_gen(0), _gen(1)], **{**KW, "num_inference_steps": 2})
        assert ctl.step == 1  # a new call restarts the count
    assert {k: type(v) for k, v in tiny_pipe.transformer.attn_processors.items()} == before


def test_attention_backend_is_kept(tiny_pipe):
    name = "single_transformer_blocks.0.attn.processor"
    proc = tiny_pipe.transformer.attn_processors[name]
    proc._attention_backend = "native"
    try:
        with feature_mixing(tiny_pipe.transformer, MixingConfig(), STEPS):
            assert tiny_pipe.transformer.attn_processors[name]._attention_backend == "native"
    finally:
        del proc._attention_backend
    assert tiny_pipe.transformer.attn_processors[name] is proc


def test_odd_batch_is_refused(tiny_pipe):
    with feature_mixing(tiny_pipe.transformer, MixingConfig(), STEPS), pytest.raises(ValueError, match="row pairs"):
        tiny_pipe(prompt="x", generator=_gen(0), **KW)


def test_shifted_ids_sit_right_of_the_grid():
    from dreamomni2.ids import target_ids

    ids = shifted_source_ids(target_ids(2, 3))
    assert ids[:, 0].tolist() == [1.0] * 6
    assert ids[:, 2].tolist() == [3.0, 4.0, 5.0] * 2 and ids[:, 1].tolist() == [0.0] * 3 + [1.0] * 3


def test_parse_blocks():
    assert parse_blocks("both", 2, 3) == {("double", 0), ("double", 1), ("single", 0), ("single", 1), ("single", 2)}
    assert parse_blocks("single", 2, 3) == {("single", 0), ("single", 1), ("single", 2)}
    assert parse_blocks("none", 2, 3) == frozenset()
    assert parse_blocks("double:1,single:0-1", 2, 3) == {("double", 1), ("single", 0), ("single", 1)}
    for bad, message in [("double:2", "index 2 is out of range"), ("triple", "unknown block kind"),
                         ("single:2-1", "empty"), ("", "expected"), ("double:x", "expected I or A-B")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_blocks(bad, 2, 3)


def test_parse_steps():
    assert parse_steps("all", 4) == {0, 1, 2, 3} and parse_steps("none", 4) == frozenset()
    assert parse_steps("0.0-0.5", 10) == {0, 1, 2, 3, 4}
    assert parse_steps("1,3", 4) == {1, 3}
    for bad in ("4", "0.5-0.2", "half", "0.0-1.5"):
        with pytest.raises(ValueError, match="mix steps"):
            parse_steps(bad, 4)


@given(st.integers(1, 60), st.data())
def test_parse_steps_ranges_property(n, data):
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(a, n - 1))
    assert parse_steps(f"{a}-{b}", n) == set(range(a, b + 1))
    lo, hi = sorted(data.draw(st.lists(st.integers(0, 100), min_size=2, max_size=2, unique=True)))
    frac = parse_steps(f"{lo / 100:.2f}-{hi / 100:.2f}", n)
    assert frac == {i for i in range(n) if lo / 100 <= i / n < hi / 100}


def test_config_checks_syntax_and_rope():
    with pytest.raises(ValueError, match="rope must be one of same, shifted"):
        MixingConfig(rope="diagonal")
    with pytest.raises(ValueError, match="mix blocks"):
        MixingConfig(blocks="double:a")
    assert MixingConfig().to_dict() == {"blocks": "both", "steps": "all", "rope": "same", "enabled": True}
    ctl = MixingController(MixingConfig(enabled=False), 2, 2, 4)
    assert not ctl.mixes("double", 0)
