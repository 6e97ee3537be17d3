"""dreamomni2.packing: 2x2 packing of latents into tokens, and the reference tokens with their ids."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dreamomni2.packing import pack_latents, pack_references, packed_size, unpack_latents


def test_packed_size_values_and_odd_sizes():
    assert packed_size(2, 2) == (1, 1)
    assert packed_size(4, 6) == (2, 3)
    assert packed_size(128, 96) == (64, 48)
    with pytest.raises(ValueError, match=r"Latent size 3x4 is not divisible by the 2x2 patch\."):
        packed_size(3, 4)
    with pytest.raises(ValueError, match=r"Latent size 4x5 is not divisible"):
        packed_size(4, 5)


def test_token_order_of_a_known_tensor():
    # one channel, 2x4 latent: two tokens, each a 2x2 patch read row by row
    lat = torch.arange(8.0).view(1, 1, 2, 4)  # [[0 1 2 3], [4 5 6 7]]
    assert pack_latents(lat).tolist() == [[[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0]]]
    # two channels, 2x2 latent: one token, channel outer, the 2x2 patch inner
    lat = torch.arange(8.0).view(1, 2, 2, 2)
    assert pack_latents(lat).tolist() == [[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]]
    # 4x4, one channel: tokens in row-major order of the packed grid
    lat = torch.arange(16.0).view(1, 1, 4, 4)
    assert pack_latents(lat)[0].tolist() == [
        [0.0, 1.0, 4.0, 5.0],
        [2.0, 3.0, 6.0, 7.0],
        [8.0, 9.0, 12.0, 13.0],
        [10.0, 11.0, 14.0, 15.0],
    ]


def test_matches_diffusers_flux_packing():
    from diffusers import FluxPipeline

    lat = torch.randn(2, 4, 6, 10, generator=torch.Generator().manual_seed(0))
    ours = pack_latents(lat)
    theirs = FluxPipeline._pack_latents(lat, 2, 4, 6, 10)
    assert ours.shape == (2, 15, 16)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    # diffusers unpacks from pixel sizes (vae_scale_factor 8: 48x80 px is a 6x10 latent)
    torch.testing.assert_close(unpack_latents(ours, 6, 10), FluxPipeline._unpack_latents(theirs, 48, 80, 8))


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 5),
    ph=st.integers(1, 5),
    pw=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_pack_unpack_round_trip(b, c, ph, pw, seed):
    lat = torch.randn(b, c, 2 * ph, 2 * pw, generator=torch.Generator().manual_seed(seed))
    tokens = pack_latents(lat)
    assert tokens.shape == (b, ph * pw, 4 * c)
    torch.testing.assert_close(unpack_latents(tokens, 2 * ph, 2 * pw), lat, rtol=0, atol=0)
    # every value appears exactly once: packing is a permutation
    assert torch.equal(tokens.flatten().sort().values, lat.flatten().sort().values)


def test_unpack_rejects_a_wrong_grid():
    tokens = torch.zeros(1, 6, 8)
    with pytest.raises(ValueError, match=r"6 tokens do not form a 2x2 packed grid\."):
        unpack_latents(tokens, 4, 4)
    with pytest.raises(ValueError, match="not divisible by the 2x2 patch"):
        unpack_latents(tokens, 3, 4)


def _lat(c, h, w, start=0.0, batch=1):
    return (torch.arange(batch * c * h * w, dtype=torch.float32) + start).view(batch, c, h, w)


def test_no_references_is_none():
    assert pack_references([], 2, "dreamomni2", (2, 2)) is None


def test_one_reference_ids_and_tokens():
    lat = _lat(2, 4, 6)
    refs = pack_references([lat], 1, "dreamomni2", (3, 3))
    assert refs.sizes == [(2, 3)]
    assert refs.tokens.shape == (1, 6, 8)
    torch.testing.assert_close(refs.tokens, pack_latents(lat), rtol=0, atol=0)
    assert refs.ids.dtype == torch.float32
    # index 1, rows 0..1, columns 0..2 (no offset for the first image)
    assert refs.ids.tolist() == [[1, 0, 0], [1, 0, 1], [1, 0, 2], [1, 1, 0], [1, 1, 1], [1, 1, 2]]


def test_three_references_of_mixed_sizes():
    lats = [_lat(1, 2, 4), _lat(1, 2, 2, start=100.0), _lat(1, 4, 2, start=200.0)]  # packed 1x2, 1x1, 2x1
    refs = pack_references(lats, 1, "dreamomni2", (2, 2))
    assert refs.sizes == [(1, 2), (1, 1), (2, 1)]
    assert refs.tokens.shape == (1, 2 + 1 + 2, 4)
    # per image: index i + 1; columns shifted by the packed widths of the images before it (2, then 3)
    assert refs.ids.tolist() == [
        [1, 0, 0],
        [1, 0, 1],
        [2, 0, 2],
        [3, 0, 3],
        [3, 1, 3],
    ]
    # tokens concatenated in image order
    assert refs.tokens[0, :, 0].tolist() == [0.0, 2.0, 100.0, 200.0, 204.0]


def test_two_references_other_policies():
    lats = [_lat(1, 2, 4), _lat(1, 4, 2)]  # packed 1x2, 2x1
    kontext = pack_references(lats, 1, "kontext", (2, 2))
    assert kontext.ids.tolist() == [[1, 0, 0], [1, 0, 1], [1, 0, 0], [1, 1, 0]]
    diagonal = pack_references(lats, 1, "diagonal", (2, 3))
    # index 0; rows and columns start at the target's packed size and accumulate
    assert diagonal.ids.tolist() == [[0, 2, 3], [0, 2, 4], [0, 3, 5], [0, 4, 5]]


def test_batch_one_references_expand_to_the_batch():
    lats = [_lat(1, 2, 2), _lat(1, 2, 4, start=10.0, batch=3)]
    refs = pack_references(lats, 3, "dreamomni2", (1, 1))
    assert refs.tokens.shape == (3, 1 + 2, 4)
    for i in range(3):
        torch.testing.assert_close(refs.tokens[i, :1], pack_latents(lats[0])[0], rtol=0, atol=0)
    torch.testing.assert_close(refs.tokens[:, 1:], pack_latents(lats[1]), rtol=0, atol=0)
    assert refs.ids.shape == (3, 3)  # ids are per token, not per batch row
    with pytest.raises(ValueError, match=r"Cannot expand an image batch of 3 to a batch of 2\."):
        pack_references(lats, 2, "dreamomni2", (1, 1))
    with pytest.raises(ValueError, match="Unsupported id policy 'nope'"):
        pack_references(lats, 3, "nope", (1, 1))
