"""The mini world's groups: the one place its task, category, kind and group names live.

A case belongs to one of four groups ``task/category`` (DreamOmni2's benchmark columns): ``edit/concrete``,
``edit/abstract``, ``generate/concrete`` and ``generate/abstract``, in that order (the order
:func:`dreamomni2.mini.cases.make_cases` cycles through them). Each group has its case kinds (:data:`KINDS`).
The sampler, the bench suites and report, the analyzer's summaries and the recipe's mixes read the names from
here. Only the standard library is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dreamomni2.tasks import TASKS

__all__ = ["CATEGORIES", "GROUPS", "GROUP_NAMES", "KINDS", "TASKS", "group_name", "group_weights"]

#: The categories of a task, in order (concrete: an object is taken from an image; abstract: an attribute).
CATEGORIES: tuple[str, ...] = ("concrete", "abstract")
#: The case kinds of each (task, category) group.
KINDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("edit", "concrete"): ("replace",),
    ("edit", "abstract"): ("color", "pattern", "size", "background"),
    ("generate", "concrete"): ("place",),
    ("generate", "abstract"): ("compose",),
}
#: The four (task, category) groups, in the order :func:`~dreamomni2.mini.cases.make_cases` cycles through them.
GROUPS: tuple[tuple[str, str], ...] = tuple((t, c) for t in TASKS for c in CATEGORIES)


def group_name(task: str, category: str) -> str:
    """Return the name of a group, ``task/category`` (``"edit/abstract"``), as summaries and mixes key it."""
    return f"{task}/{category}"


#: The group names ``task/category`` in the order :func:`~dreamomni2.mini.cases.make_cases` cycles through them.
GROUP_NAMES: tuple[str, ...] = tuple(group_name(t, c) for t, c in GROUPS)


def group_weights(weights: Mapping[str, int], names: Sequence[str] = GROUP_NAMES) -> dict[str, int]:
    """Check a group mix and complete it: every name in ``names`` gets its weight (1 when not named).

    Raises:
        ValueError: a name outside ``names``, or a weight that is not an integer >= 0.
    """
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"unknown group(s) in weights: {unknown}; expected some of {sorted(names)}")
    bad = {k: w for k, w in weights.items() if not isinstance(w, int) or isinstance(w, bool) or w < 0}
    if bad:
        raise ValueError(f"weights must be integers >= 0, got {bad}")
    return {name: weights.get(name, 1) for name in names}
