"""Task names, their aliases and the request limits: the one place every surface reads them from.

The pipeline, the planners, the CLI, the Session, the trainer's manifest check and the bench all import
:data:`TASKS`, :func:`normalize_task` and :data:`MAX_IMAGES` from here.
"""

from __future__ import annotations

__all__ = ["MAX_IMAGES", "TASKS", "TASK_ALIASES", "normalize_task"]

#: The canonical task names, in order.
TASKS: tuple[str, ...] = ("edit", "generate")
#: Accepted spellings (lower case) -> canonical task name.
TASK_ALIASES: dict[str, str] = {"edit": "edit", "editing": "edit", "generate": "generate", "generation": "generate"}
#: Most input images a request may carry (the release's benchmark uses up to 5).
MAX_IMAGES: int = 5


def normalize_task(task: str) -> str:
    """Canonical task name: ``"edit"`` or ``"generate"`` (``"editing"``/``"generation"``, any case, accepted).

    Raises:
        ValueError: for anything else, naming the accepted names.
    """
    if not isinstance(task, str) or task.lower() not in TASK_ALIASES:
        raise ValueError(f"Unknown task {task!r}; use 'edit' or 'generate'.")
    return TASK_ALIASES[task.lower()]
