"""The planner backend registry: each backend module registers its name, spec parser and help text here.

A backend is selected by a spec string ``NAME`` or ``NAME:ARG`` (``none``, ``mini``, ``qwen:DIR``,
``openai:URL#model``). :func:`dreamomni2.planner.factory.make_planner` parses specs against this registry;
the CLI's help, the bench, the release loader and the Session read it too, so a new backend is one
:func:`register_planner` call in its own module (plus one import line in the factory).

This module imports nothing else from the package, so every backend can import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PlannerBackend", "planner_backend", "planner_backends", "register_planner"]


@dataclass(frozen=True)
class PlannerBackend:
    """One planner backend.

    Attributes:
        name: the spec's name part (lower case), e.g. ``"qwen"``.
        usage: the spec form shown in help texts, e.g. ``"qwen:DIR"``.
        help: one line on what the backend is.
        build: ``build(arg, **options) -> Planner``; ``arg`` is the text after ``NAME:`` (``None`` without one).
            Raises ``ValueError`` (naming the spec) on a malformed argument.
        options: the keyword options ``build`` accepts (others are dropped, see ``make_planner``).
        takes_arg: whether the spec needs ``NAME:ARG`` (``True``) or is the bare name (``False``).
        network: whether the backend sends the request to a network endpoint (only ever one the user named).
    """

    name: str
    usage: str
    help: str
    build: Callable[..., Any]
    options: tuple[str, ...] = ()
    takes_arg: bool = False
    network: bool = False


_BACKENDS: dict[str, PlannerBackend] = {}


def register_planner(backend: PlannerBackend) -> PlannerBackend:
    """Add a backend (idempotent for the same object; another backend of the same name is an error).

    Returns:
        ``backend``, so modules can keep a reference.
    """
    name = backend.name.lower()
    if name != backend.name or not name.isidentifier():
        raise ValueError(f"planner backend name {backend.name!r} must be a lower-case identifier")
    if name in _BACKENDS and _BACKENDS[name] != backend:
        raise ValueError(f"planner backend {name!r} is already registered")
    _BACKENDS[name] = backend
    return backend


def planner_backend(name: str) -> PlannerBackend | None:
    """The registered backend called ``name`` (any case), or ``None``."""
    return _BACKENDS.get(name.lower())


def planner_backends() -> dict[str, PlannerBackend]:
    """All registered backends, by name, in registration order."""
    return dict(_BACKENDS)
