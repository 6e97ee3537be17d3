"""Build a planner from a spec string, through the backend registry.

Importing this module imports every built-in backend module, which registers itself
(:mod:`dreamomni2.planner.base`: ``none``; :mod:`~dreamomni2.planner.qwen`: ``qwen:DIR``;
:mod:`~dreamomni2.planner.openai`: ``openai:URL[#model]``; :mod:`dreamomni2.mini.planner`: ``mini``).
No backend imports this module, so there is no import cycle.
"""

from __future__ import annotations

from typing import Any

import dreamomni2.mini.planner  # noqa: F401  (registers "mini")
import dreamomni2.planner.openai  # noqa: F401  (registers "openai")
import dreamomni2.planner.qwen  # noqa: F401  (registers "qwen")
from dreamomni2.planner.base import Planner
from dreamomni2.planner.registry import PlannerBackend, planner_backend, planner_backends

__all__ = ["make_planner", "planner_choices", "resolve_spec"]


def planner_choices() -> str:
    """The spec forms of every backend, e.g. ``"none | mini | qwen:DIR | openai:URL[#model]"`` (for help texts)."""
    return " | ".join(b.usage for b in planner_backends().values())


def _spec_help() -> str:
    return f"use one of: {planner_choices()}"


def resolve_spec(spec: str) -> tuple[PlannerBackend, str | None]:
    """Split ``NAME[:ARG]`` and find its backend.

    Returns:
        ``(backend, arg)``; ``arg`` is ``None`` for a bare name.

    Raises:
        ValueError: an empty spec, an unknown name, or a name with/without the argument it needs.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"Empty planner spec {spec!r}; {_spec_help()}.")
    spec = spec.strip()
    name, sep, rest = spec.partition(":")
    backend = planner_backend(name)
    if backend is None or backend.takes_arg != bool(sep):
        raise ValueError(f"Bad planner spec {spec!r}; {_spec_help()}.")
    if backend.takes_arg and not rest:
        raise ValueError(f"Planner spec {spec!r} has nothing after ':'; {_spec_help()}.")
    return backend, (rest if sep else None)


def make_planner(spec: str, **options: Any) -> Planner:
    """Build a planner from a spec string.

    Options that only apply to other backends are dropped (callers may pass one set of options for every backend);
    an option no backend knows raises ``TypeError``.

    Args:
        spec: ``"none"``, ``"mini"``, ``"qwen:DIR"``, ``"openai:URL"`` or ``"openai:URL#model"`` -- any registered
            backend (:func:`dreamomni2.planner.registry.planner_backends`).
        **options: backend options: ``device``, ``dtype``, ``max_new_tokens``, ``max_area`` (qwen); ``model``,
            ``api_key``, ``timeout``, ``max_tokens`` (``max_new_tokens`` stands in), ``max_area`` (openai).

    Returns:
        The planner (a Qwen planner loads its model lazily, on first use).

    Raises:
        ValueError: a malformed spec. FileNotFoundError: a missing qwen folder or config. TypeError: an unknown option.
    """
    known = {o for b in planner_backends().values() for o in b.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"Unknown planner option(s) {unknown}; known: {sorted(known)}.")
    backend, arg = resolve_spec(spec)
    accepted = {k: v for k, v in options.items() if k in backend.options}
    return backend.build(arg, **accepted) if backend.takes_arg else backend.build(**accepted)
