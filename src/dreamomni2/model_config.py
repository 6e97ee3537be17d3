"""A model folder's own defaults: ``dreamomni2.json`` beside ``model_index.json``, read into :class:`ModelDefaults`.

The mini model's file, for example::

    {"auto_resize": false, "max_area": 1024, "reference_max_area": 1024, "steps": 20, "guidance": 3.5,
     "planner": "mini", "id_policy": "dreamomni2"}

Unknown keys and bad values are refused with a ``ValueError`` naming the file and the key. A model folder may not
name a network planner (``openai:URL``): only the user names endpoints that images and keys are sent to.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["DEFAULTS_FILE", "ModelDefaults"]

#: The defaults file's name inside a model folder.
DEFAULTS_FILE = "dreamomni2.json"


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_CHECKS = {
    "steps": (_positive_int, "a positive integer"),
    "guidance": (_finite_number, "a finite number"),
    "max_area": (_positive_int, "a positive integer (pixels)"),
    "reference_max_area": (_positive_int, "a positive integer (pixels)"),
    "auto_resize": (lambda v: isinstance(v, bool), "true or false"),
    "planner": (lambda v: isinstance(v, str) and bool(v.strip()), "a planner spec such as 'none' or 'mini'"),
    "id_policy": (lambda v: isinstance(v, str), "an id policy name"),
}


@dataclass(frozen=True)
class ModelDefaults:
    """Per-model defaults; ``None`` means "not set" (the library's own default applies).

    Attributes:
        steps: denoising steps.
        guidance: distilled guidance scale.
        planner: planner spec (a local backend: ``none``, ``mini``, ``qwen:DIR``).
        id_policy: reference id policy (:mod:`dreamomni2.ids`).
        max_area: pixel cap of the output.
        reference_max_area: pixel cap of every input image.
        auto_resize: snap inputs to the preferred Kontext resolutions (``False``: keep sizes, floored to 16).
    """

    steps: int | None = None
    guidance: float | None = None
    planner: str | None = None
    id_policy: str | None = None
    max_area: int | None = None
    reference_max_area: int | None = None
    auto_resize: bool | None = None

    @classmethod
    def from_dict(cls, data: Any, source: str = DEFAULTS_FILE) -> ModelDefaults:
        """Check and convert a parsed JSON object; ``source`` names the file in errors."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of defaults, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"{source}: unknown key {key!r}; known keys: {', '.join(known)}")
            check, what = _CHECKS[key]
            if not check(value):
                raise ValueError(f"{source}: key {key!r} must be {what}, got {value!r}")
        _check_references(data, source)
        return cls(**data)

    @classmethod
    def read(cls, model_dir: str | os.PathLike) -> ModelDefaults:
        """Read ``model_dir/dreamomni2.json``; no file gives all-``None`` defaults.

        Raises:
            ValueError: the file is not valid JSON, or has an unknown key or a bad value (the message names both).
        """
        path = Path(model_dir) / DEFAULTS_FILE
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid JSON ({getattr(e, 'msg', e)})") from None
        return cls.from_dict(data, str(path))


def _check_references(data: dict[str, Any], source: str) -> None:
    """The id policy must exist; the planner must be a registered, local backend."""
    from dreamomni2.ids import ID_POLICIES
    from dreamomni2.planner.factory import resolve_spec

    if "id_policy" in data and data["id_policy"] not in ID_POLICIES:
        raise ValueError(f"{source}: key 'id_policy' must be one of {sorted(ID_POLICIES)}, got {data['id_policy']!r}")
    if "planner" in data:
        try:
            backend, _ = resolve_spec(data["planner"])
        except ValueError as e:
            raise ValueError(f"{source}: key 'planner': {e}") from None
        if backend.network:
            raise ValueError(
                f"{source}: key 'planner' names a network endpoint ({data['planner']!r}); a model folder may not "
                "choose where your images and keys are sent -- pass --planner yourself"
            )
