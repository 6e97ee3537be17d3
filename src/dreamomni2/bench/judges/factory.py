"""Build a judge from its spec: ``make_judge("analyzer" | "vlm:qwen:DIR" | "vlm:openai:URL[#model]" | ...)``.

Each judge module is imported only when its spec is built (nothing heavy at import time); no judge module imports
this one, so there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dreamomni2.bench.judges.base import Judge, judge_spec_help

__all__ = ["make_judge"]


@dataclass(frozen=True)
class _Backend:
    usage: str
    build: Callable[..., Judge]
    options: tuple[str, ...]


def _build_analyzer(arg: str | None, **_: Any) -> Judge:
    from dreamomni2.bench.judges.analyzer import AnalyzerJudge

    return AnalyzerJudge()


def _build_vlm(arg: str | None, **options: Any) -> Judge:
    from dreamomni2.bench.judges.vlm import make_vlm_judge

    return make_vlm_judge(arg or "", **options)


def _build_clip(arg: str | None, **options: Any) -> Judge:
    from dreamomni2.bench.judges.embed import ClipJudge

    return ClipJudge(arg or "", **options)


def _build_dino(arg: str | None, **options: Any) -> Judge:
    from dreamomni2.bench.judges.embed import DinoJudge

    return DinoJudge(arg or "", **options)


_VLM_OPTIONS = ("device", "dtype", "timeout", "samples", "temperature", "max_new_tokens", "api_key", "max_area")
_BACKENDS: dict[str, _Backend] = {
    "analyzer": _Backend("analyzer", _build_analyzer, ()),
    "vlm": _Backend("vlm:qwen:DIR | vlm:openai:URL[#model]", _build_vlm, _VLM_OPTIONS),
    "clip": _Backend("clip:DIR", _build_clip, ("device", "dtype")),
    "dino": _Backend("dino:DIR", _build_dino, ("device", "dtype")),
}


def make_judge(spec: str, **options: Any) -> Judge:
    """Build a judge from its spec.

    Options that only apply to other judges are dropped (one set of options serves every spec).

    Args:
        spec: one of :data:`JUDGE_SPECS` (``analyzer``, ``vlm:qwen:DIR``, ``vlm:openai:URL[#model]``, ``clip:DIR``,
            ``dino:DIR``).
        **options: ``device``, ``dtype`` (local models); ``timeout``, ``api_key`` (openai); ``samples``,
            ``temperature``, ``max_new_tokens``, ``max_area`` (VLM judges).

    Returns:
        The judge (models load in :meth:`Judge.prepare` or on first use).

    Raises:
        ValueError: a malformed or unknown spec, naming it. FileNotFoundError: a missing model folder.
        TypeError: an option no judge knows.
    """
    known = {o for b in _BACKENDS.values() for o in b.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown judge option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty judge spec {spec!r}; use one of: {judge_spec_help()}")
    spec = spec.strip()
    name, sep, arg = spec.partition(":")
    backend = _BACKENDS.get(name)
    if backend is None or (name == "analyzer") == bool(sep) or (sep and not arg.strip()):
        raise ValueError(f"bad judge spec {spec!r}; use one of: {judge_spec_help()}")
    accepted = {k: v for k, v in options.items() if k in backend.options and v is not None}
    return backend.build(arg if sep else None, **accepted)
