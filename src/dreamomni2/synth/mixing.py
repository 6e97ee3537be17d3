r"""Feature mixing: source and target denoised as one batch, the target attending to the source's image tokens.

DreamOmni2 (paper section 2, stage 1, Eq. 1) makes image pairs that share an object or an attribute without a
diptych: two branches are denoised together; in each *mixing* attention layer the target branch's keys and values
are its own tokens (text and image) followed by the source branch's **image** tokens of the same layer, while the
source branch attends only to itself (its text tokens are never shared):

.. math::

    \mathrm{Attn}_{tgt} = \mathrm{softmax}\big(Q_{tgt} [K_{tgt}; K^{img}_{src}]^\top / \sqrt{d}\big)
    [V_{tgt}; V^{img}_{src}], \qquad \mathrm{Attn}_{src} = \mathrm{softmax}(Q_{src} K_{src}^\top / \sqrt{d}) V_{src}.

Both branches run at full resolution (no half-width diptych, no seam). The idea of sharing keys/values across the
members of a batch comes from MasaCtrl's mutual self-attention and ConsiStory's subject-driven shared attention;
this is a re-implementation on diffusers' FLUX attention, written here, not copied.

Design:

* **Batch layout.** Rows come in pairs: row ``2k`` is the source of pair ``k``, row ``2k + 1`` its target (a batch
  of one pair is ``[source, target]``). True CFG's ``[cond; uncond]`` stacking keeps the pairing, since each half
  has an even number of rows.
* **Processor.** :class:`MixingAttnProcessor` is installed on every attention layer with the public
  ``transformer.set_attn_processor``. In a layer that does not mix (or at a step that does not) it runs diffusers'
  ``FluxAttnProcessor.__call__`` unchanged, so "mixing off" is bit-for-bit diffusers' attention. In a mixing layer
  it builds Q/K/V as that processor does (its projection helper ``_get_qkv_projections``, the same RMS norms),
  applies RoPE with diffusers' ``apply_rotary_emb``, and calls ``dispatch_attention_fn`` twice: sources on their
  own tokens, targets on their tokens plus the paired source's image tokens. Double-stream blocks pass text as
  ``encoder_hidden_states``; single-stream blocks pass ``[text; image]`` as one sequence, so the text length is
  read by the controller.
* **Controller.** :class:`MixingController` holds the configuration and the per-forward state. A forward pre-hook
  on the transformer (``register_forward_pre_hook``) records the text length, the RoPE of the source placement
  and the current step. The step is counted from the transformer's ``timestep`` (sigma), which strictly
  decreases along a FLUX schedule: a new, lower sigma is the next step, an equal one the same step (an unbatched
  CFG call), a higher one the start of a new pipeline call (the count restarts at 0). So the pipeline needs no
  callback and no change.
* **Which layers and steps mix.** ``blocks`` (:func:`parse_blocks`): ``both`` (default), ``double``, ``single``,
  ``none``, or a comma list of ``double:A-B`` / ``single:A-B`` / ``double:I`` (0-based, inclusive). ``steps``
  (:func:`parse_steps`): ``all`` (default), ``none``, step indices ``A-B`` / ``I`` (0-based, inclusive), or
  fractions of the schedule ``F-G`` (with a ``.``; step ``i`` of ``N`` mixes when ``F <= i / N < G``).
* **RoPE placement of the source's tokens** (``rope``):

  - ``same``: the source's image keys keep their own positions, which are the target's grid (index 0, same rows
    and columns): source token ``(r, c)`` sits exactly on target token ``(r, c)``, a strong spatial prior for
    aligned layouts.
  - ``shifted``: placed like a reference image — RoPE index 1 (as the first reference of
    :mod:`dreamomni2.ids`' ``dreamomni2`` policy) and columns offset by the target's packed width, i.e. to the
    right of the target, where a diptych would put it — so the target reads the source as another image rather
    than as its own layout. On the mini world (``docs/results.md``) it transfers shape and size as well as
    ``same`` does and, unlike ``same``, never carries the source's background over.

Use :func:`feature_mixing` (a context manager that installs and then restores the processors) around a pipeline
or Session call whose batch is ``[source, target, ...]``; :mod:`dreamomni2.synth.pairs` does this for prompt files.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch/diffusers load where the processor is built, so parsing stays light
    import torch

__all__ = [
    "BLOCK_KINDS",
    "ROPE_MODES",
    "MixingAttnProcessor",
    "MixingConfig",
    "MixingController",
    "block_counts",
    "feature_mixing",
    "install_mixing",
    "parse_blocks",
    "parse_steps",
    "shifted_source_ids",
]

#: The transformer's two kinds of blocks: double-stream (``transformer_blocks``), single-stream.
BLOCK_KINDS: dict[str, str] = {"double": "transformer_blocks", "single": "single_transformer_blocks"}
#: Where the source's image tokens sit in RoPE space (see the module docstring).
ROPE_MODES: tuple[str, ...] = ("same", "shifted")

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_FRACTION = re.compile(r"^(\d*\.?\d+)-(\d*\.?\d+)$")


@dataclass(frozen=True)
class MixingConfig:
    """What mixes: blocks, steps, RoPE placement (specs as in the module docstring).

    Attributes:
        blocks: ``both``, ``double``, ``single``, ``none`` or a list like ``double:0-1,single:2-3``.
        steps: ``all``, ``none``, ``A-B`` / ``I`` step indices, or ``F-G`` fractions of the schedule.
        rope: ``same`` or ``shifted``.
        enabled: ``False`` turns mixing off whatever the other fields say (the plain pipeline, batched).
    """

    blocks: str = "both"
    steps: str = "all"
    rope: str = "same"
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.rope not in ROPE_MODES:
            raise ValueError(f"rope must be one of {', '.join(ROPE_MODES)}, got {self.rope!r}")
        parse_blocks(self.blocks, None, None)  # the syntax, before any model is loaded
        parse_steps(self.steps, None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (recorded with every pair)."""
        return asdict(self)


def _ranges(items: str, count: int | None, what: str, spec: str) -> set[int]:
    """``A-B`` or ``I`` (inclusive, 0-based) within ``range(count)`` (``None``: only the syntax is checked)."""
    m = _RANGE.match(items.strip())
    if not m:
        raise ValueError(f"{what} {spec!r}: expected I or A-B (0-based, inclusive), got {items!r}")
    lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
    if hi < lo:
        raise ValueError(f"{what} {spec!r}: range {items!r} is empty (end before start)")
    if count is None:
        return set()
    if hi >= count:
        raise ValueError(f"{what} {spec!r}: index {hi} is out of range (there are {count})")
    return set(range(lo, hi + 1))


def parse_blocks(spec: str, n_double: int | None, n_single: int | None) -> frozenset[tuple[str, int]]:
    """The ``(kind, index)`` of every attention layer that mixes.

    Args:
        spec: ``both``, ``double``, ``single``, ``none``, or a comma list of ``KIND`` / ``KIND:I`` / ``KIND:A-B``.
        n_double, n_single: the transformer's double- and single-stream block counts (``None``: check the syntax
            only, return nothing).

    Raises:
        ValueError: a bad spec or an index past the model's blocks (the message names the spec).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"mix blocks {spec!r}: expected both, double, single, none or e.g. double:0-1,single:3")
    counts = {"double": n_double, "single": n_single}
    words = {"both": ("double", "single"), "double": ("double",), "single": ("single",), "none": ()}
    text = spec.strip().lower()
    if text in words:
        return frozenset((k, i) for k in words[text] for i in range(counts[k] or 0))
    out: set[tuple[str, int]] = set()
    for part in text.split(","):
        kind, _, items = part.strip().partition(":")
        if kind not in counts:
            raise ValueError(f"mix blocks {spec!r}: unknown block kind {kind!r} (use double or single)")
        idx = _ranges(items, counts[kind], "mix blocks", spec) if items else set(range(counts[kind] or 0))
        out.update((kind, i) for i in idx)
    return frozenset(out)


def parse_steps(spec: str, n_steps: int | None) -> frozenset[int]:
    """The 0-based denoising steps that mix, out of ``n_steps``.

    Args:
        spec: ``all``, ``none``, ``I``, ``A-B`` (indices, inclusive), ``F-G`` (fractions: ``F <= i/N < G``), or a
            comma list of these.
        n_steps: the schedule's length (``None``: check the syntax only, return nothing).

    Raises:
        ValueError: a bad spec (the message names it).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"mix steps {spec!r}: expected all, none, I, A-B or fractions like 0.0-0.5")
    text = spec.strip().lower()
    if text in ("all", "none"):
        return frozenset(range(n_steps or 0)) if text == "all" else frozenset()
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if "." in part:
            m = _FRACTION.match(part)
            lo, hi = (float(m.group(1)), float(m.group(2))) if m else (-1.0, -1.0)
            if not m or not 0 <= lo < hi <= 1:
                raise ValueError(f"mix steps {spec!r}: fractions {part!r} must be F-G with 0 <= F < G <= 1")
            out.update(i for i in range(n_steps or 0) if lo <= i / n_steps < hi)
        else:
            out.update(_ranges(part, n_steps, "mix steps", spec))
    return frozenset(out)


class MixingController:
    """The configuration resolved against one transformer and schedule, and the state of the current forward.

    Args:
        config: what mixes.
        n_double, n_single: the transformer's block counts.
        num_steps: the schedule's length (to resolve ``config.steps``).
    """

    def __init__(self, config: MixingConfig, n_double: int, n_single: int, num_steps: int) -> None:
        self.config = config
        self.blocks = parse_blocks(config.blocks, n_double, n_single) if config.enabled else frozenset()
        self.steps = parse_steps(config.steps, num_steps) if config.enabled else frozenset()
        self.num_steps = num_steps
        self.step = 0
        self.text_len: int | None = None
        self.source_rope: tuple[torch.Tensor, torch.Tensor] | None = None
        self._last_sigma: float | None = None

    def mixes(self, kind: str, index: int) -> bool:
        """Whether block ``(kind, index)`` mixes at the current step."""
        return self.step in self.steps and (kind, index) in self.blocks

    def observe(self, transformer: Any, kwargs: dict[str, Any]) -> None:
        """Read one transformer call's inputs: the step (from ``timestep``), text length, source RoPE."""
        missing = [k for k in ("timestep", "encoder_hidden_states", "img_ids") if k not in kwargs]
        if missing:
            raise TypeError(f"feature mixing: call the transformer with keyword arguments (missing {missing})")
        sigma = float(kwargs["timestep"].reshape(-1)[0])
        if self._last_sigma is None or sigma > self._last_sigma:
            self.step = 0
        elif sigma < self._last_sigma:
            self.step += 1
        self._last_sigma = sigma
        self.text_len = int(kwargs["encoder_hidden_states"].shape[1])
        self.source_rope = None
        if self.config.rope == "shifted" and self.steps and self.blocks:
            self.source_rope = transformer.pos_embed(shifted_source_ids(kwargs["img_ids"]))


def shifted_source_ids(img_ids: torch.Tensor) -> torch.Tensor:
    """The ``shifted`` placement: index + 1, columns + the grid's width (to the right of the target)."""
    ids = img_ids.reshape(-1, img_ids.shape[-1]).clone()
    ids[:, 0] += 1
    ids[:, 2] += ids[:, 2].max() + 1 - ids[:, 2].min()
    return ids


def _joint_qkv(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None):
    """Q, K, V ``[B, S, H, D]`` before RoPE, text first, as ``FluxAttnProcessor`` builds them."""
    import torch
    from diffusers.models.transformers.transformer_flux import _get_qkv_projections

    q, k, v, eq, ek, ev = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
    q, k, v = (t.unflatten(-1, (-1, attn.head_dim)) for t in (q, k, v))
    q, k = attn.norm_q(q), attn.norm_k(k)
    if encoder_hidden_states is not None and attn.added_kv_proj_dim is not None:
        eq, ek, ev = (t.unflatten(-1, (-1, attn.head_dim)) for t in (eq, ek, ev))
        eq, ek = attn.norm_added_q(eq), attn.norm_added_k(ek)
        q, k, v = torch.cat([eq, q], dim=1), torch.cat([ek, k], dim=1), torch.cat([ev, v], dim=1)
    return q, k, v


def _finish(attn: Any, out: torch.Tensor, encoder_hidden_states: torch.Tensor | None, dtype: torch.dtype):
    """Split text/image and project out, as ``FluxAttnProcessor`` does."""
    out = out.flatten(2, 3).to(dtype)
    if encoder_hidden_states is None:
        return out
    n_text = encoder_hidden_states.shape[1]
    text, image = out.split_with_sizes([n_text, out.shape[1] - n_text], dim=1)
    image = attn.to_out[1](attn.to_out[0](image.contiguous()))
    return image, attn.to_add_out(text.contiguous())


def _mixed_attention(backend: Any, q, k, v, rope, text_len: int, source_rope) -> torch.Tensor:
    """Sources attend to themselves; targets to themselves plus their source's image tokens (Eq. 1)."""
    import torch
    from diffusers.models.attention_dispatch import dispatch_attention_fn
    from diffusers.models.embeddings import apply_rotary_emb

    if q.shape[0] % 2:
        raise ValueError(f"feature mixing needs [source, target] row pairs; got a batch of {q.shape[0]}")
    qr, kr = (
        (q, k)
        if rope is None
        else (apply_rotary_emb(q, rope, sequence_dim=1), apply_rotary_emb(k, rope, sequence_dim=1))
    )
    src_k = kr[0::2, text_len:]
    if source_rope is not None:
        src_k = apply_rotary_emb(k[0::2, text_len:], source_rope, sequence_dim=1)
    out_src = dispatch_attention_fn(qr[0::2], kr[0::2], v[0::2], backend=backend)
    k_tgt = torch.cat([kr[1::2], src_k], dim=1)
    v_tgt = torch.cat([v[1::2], v[0::2, text_len:]], dim=1)
    out_tgt = dispatch_attention_fn(qr[1::2], k_tgt, v_tgt, backend=backend)
    return torch.stack([out_src, out_tgt], dim=1).flatten(0, 1)  # back to source, target, source, target ...


class MixingAttnProcessor:
    """diffusers' ``FluxAttnProcessor`` for one attention layer, mixing the source's image tokens in (Eq. 1).

    Outside the controller's mixing layers and steps it runs ``FluxAttnProcessor.__call__`` itself (so "mixing
    off" is diffusers' attention); in them, :func:`_mixed_attention`. It has the attributes diffusers sets on
    processors (``_attention_backend``, ``_parallel_config``), so ``set_attention_backend`` works on it.

    Args:
        controller: the shared :class:`MixingController`.
        kind: ``double`` or ``single``.
        index: the block's position among blocks of its kind.
    """

    _attention_backend = None
    _parallel_config = None

    def __init__(self, controller: MixingController, kind: str, index: int) -> None:
        if kind not in BLOCK_KINDS:
            raise ValueError(f"kind must be one of {', '.join(BLOCK_KINDS)}, got {kind!r}")
        self.controller, self.kind, self.index = controller, kind, index

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, image_rotary_emb: Any = None) -> Any:  # fmt: skip
        ctl = self.controller
        if not ctl.mixes(self.kind, self.index):
            from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

            return FluxAttnProcessor.__call__(self, attn, hidden_states, encoder_hidden_states, attention_mask,
                                              image_rotary_emb)  # fmt: skip
        if attention_mask is not None:
            raise ValueError("feature mixing does not support an attention mask")
        q, k, v = _joint_qkv(attn, hidden_states, encoder_hidden_states)
        text_len = encoder_hidden_states.shape[1] if encoder_hidden_states is not None else ctl.text_len
        if text_len is None:
            raise RuntimeError("feature mixing: the text length is unknown (install it with install_mixing)")
        out = _mixed_attention(self._attention_backend, q, k, v, image_rotary_emb, text_len, ctl.source_rope)
        return _finish(attn, out, encoder_hidden_states, q.dtype)


def block_counts(transformer: Any) -> tuple[int, int]:
    """``(double-stream, single-stream)`` block counts of a FLUX transformer."""
    return len(transformer.transformer_blocks), len(transformer.single_transformer_blocks)


def install_mixing(transformer: Any, config: MixingConfig, num_steps: int) -> tuple[MixingController, Any]:
    """Put a mixing processor on every attention layer and the step/text pre-hook on ``transformer``.

    Args:
        transformer: a diffusers ``FluxTransformer2DModel``.
        config: what mixes.
        num_steps: the schedule's length.

    Returns:
        ``(controller, undo)``: call ``undo()`` to restore the previous processors and remove the hook.
    """
    n_double, n_single = block_counts(transformer)
    controller = MixingController(config, n_double, n_single, num_steps)
    previous = dict(transformer.attn_processors)
    kinds = {prefix: kind for kind, prefix in BLOCK_KINDS.items()}
    processors = dict(previous)  # layers outside the two block lists (none in FLUX) keep their processor
    for name in previous:
        prefix, index = name.split(".")[:2]
        if prefix in kinds:
            proc = MixingAttnProcessor(controller, kinds[prefix], int(index))
            proc._attention_backend = getattr(previous[name], "_attention_backend", None)  # e.g. --attention flash
            processors[name] = proc
    transformer.set_attn_processor(processors)

    def pre_hook(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        controller.observe(module, kwargs)

    handle = transformer.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def undo() -> None:
        handle.remove()
        transformer.set_attn_processor(previous)

    return controller, undo


@contextlib.contextmanager
def feature_mixing(transformer: Any, config: MixingConfig, num_steps: int) -> Iterator[MixingController]:
    """Mix while the block runs: ``with feature_mixing(pipe.transformer, cfg, steps): pipe(prompt=[src, tgt]...)``.

    Yields:
        the :class:`MixingController` (its ``step`` follows the denoising loop).
    """
    controller, undo = install_mixing(transformer, config, num_steps)
    try:
        yield controller
    finally:
        undo()
