"""DreamOmni2's instruction planner: a VLM that rewrites the user's instruction into the prompt.

Backends: :class:`NonePlanner` (the instruction is the prompt), :class:`QwenPlanner` (the release's
fine-tuned Qwen2.5-VL from a local folder, via transformers) and :class:`OpenAIPlanner` (an
OpenAI-compatible server). Build one from a spec with :func:`make_planner`. Nothing heavy is
imported here: transformers loads on first use.
"""

from __future__ import annotations

from dreamomni2.planner.base import (
    TASK_SUFFIXES,
    NonePlanner,
    PlannedPrompt,
    Planner,
    PlannerError,
    build_user_text,
    make_planner,
    normalize_task,
    parse_reply,
    prepare_planner_images,
)
from dreamomni2.planner.openai import OpenAIPlanner
from dreamomni2.planner.qwen import QwenPlanner

__all__ = [
    "TASK_SUFFIXES",
    "NonePlanner",
    "OpenAIPlanner",
    "PlannedPrompt",
    "Planner",
    "PlannerError",
    "QwenPlanner",
    "build_user_text",
    "make_planner",
    "normalize_task",
    "parse_reply",
    "prepare_planner_images",
]
