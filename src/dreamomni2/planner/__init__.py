"""DreamOmni2's instruction planner: a VLM that rewrites the user's instruction into the prompt.

Backends register themselves in :mod:`dreamomni2.planner.registry`: ``none`` (the instruction is the prompt),
``qwen:DIR`` (:class:`QwenPlanner`, the release's fine-tuned Qwen2.5-VL, via transformers), ``openai:URL[#model]``
(:class:`OpenAIPlanner`, an OpenAI-compatible server) and ``mini`` (the mini world's rule-based planner). Build one
from a spec with :func:`make_planner` (:mod:`dreamomni2.planner.factory`, imported on first use, so that backend
modules can import this package without a cycle). Nothing heavy is imported here: transformers loads on first use.
"""

from __future__ import annotations

from typing import Any

from dreamomni2.planner.base import (
    TASK_SUFFIXES,
    NonePlanner,
    PlannedPrompt,
    Planner,
    PlannerError,
    PlanRefused,
    build_user_text,
    normalize_task,
    parse_reply,
    prepare_planner_images,
)
from dreamomni2.planner.openai import OpenAIPlanner
from dreamomni2.planner.qwen import QwenPlanner
from dreamomni2.planner.registry import PlannerBackend, planner_backends, register_planner

__all__ = [
    "TASK_SUFFIXES",
    "NonePlanner",
    "OpenAIPlanner",
    "PlannedPrompt",
    "Planner",
    "PlannerBackend",
    "PlanRefused",
    "PlannerError",
    "QwenPlanner",
    "build_user_text",
    "make_planner",
    "normalize_task",
    "parse_reply",
    "planner_choices",
    "planner_backends",
    "prepare_planner_images",
    "register_planner",
]


def __getattr__(name: str) -> Any:
    """``make_planner`` and ``planner_choices``, imported from the factory on first use (PEP 562)."""
    if name in ("make_planner", "planner_choices"):
        from dreamomni2.planner import factory

        return getattr(factory, name)
    raise AttributeError(f"module 'dreamomni2.planner' has no attribute {name!r}")
