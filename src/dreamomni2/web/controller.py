"""The page's link to one :class:`~dreamomni2.session.Session`: planner choices, planning and drawing (no gradio).

One controller serves every browser tab: it holds the loaded session and runs one request at a time (the model
is shared). Planning with another planner than the session's goes through :meth:`Session.with_planner`, which
shares the loaded pipeline; drawing always goes through the session itself, with the prompt already planned (or
edited by hand), so the planner is never called twice for one click.

The page can only pick a planner from :meth:`WebController.planner_choices`: the session's own (whatever the
command line named, a network endpoint included), ``none``, and ``mini`` when it is registered. It never names an
endpoint itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from dreamomni2.planner.base import PlannedPrompt
from dreamomni2.request import LIBRARY_DEFAULTS, Result
from dreamomni2.web.forms import Form, build_request
from dreamomni2.web.gallery import InputImage

__all__ = ["SESSION_PLANNER", "WebController", "planner_choices"]

logger = logging.getLogger(__name__)

#: The planner choice that stands for the session's own planner.
SESSION_PLANNER = "session"
#: Further planners the page may offer, when registered and local.
_LOCAL_PLANNERS = ("none", "mini")


def planner_choices(session: Any) -> dict[str, str]:
    """``{key: label}``: the session's planner, then ``none`` and ``mini`` (local backends only, no duplicates)."""
    import dreamomni2.planner.factory  # noqa: F401  (registers every built-in backend)
    from dreamomni2.planner.registry import planner_backend

    own = str(getattr(session.planner, "backend", "session"))
    choices = {SESSION_PLANNER: f"{own} (this session's planner)"}
    for name in _LOCAL_PLANNERS:
        backend = planner_backend(name)
        if name != own and backend is not None and not backend.network:
            choices[name] = name
    return choices


class WebController:
    """Plans and draws the page's requests on one session, one at a time.

    Args:
        session: the :class:`~dreamomni2.session.Session` (load it with :meth:`load` before serving).
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self._lock = threading.RLock()
        self._choices = planner_choices(session)
        self._planning: dict[str, Any] = {SESSION_PLANNER: session}

    def load(self) -> WebController:
        """Load the session's pipeline now (so the first click does not wait for it). Returns ``self``."""
        with self._lock:
            self.session.load()
        return self

    def planner_choices(self) -> list[tuple[str, str]]:
        """``(label, key)`` pairs for the planner selector, the session's own first."""
        return [(label, key) for key, label in self._choices.items()]

    def planner_label(self, key: str) -> str:
        """The label of a planner choice (``mini (this session's planner)``, ``none``...)."""
        return self._choices.get(key, key)

    def defaults(self) -> dict[str, Any]:
        """The form's starting values: the model folder's steps, guidance and id policy, else the library's."""
        d = self.session.defaults
        return {
            "steps": d.steps or LIBRARY_DEFAULTS["steps"],
            "guidance": d.guidance if d.guidance is not None else LIBRARY_DEFAULTS["guidance"],
            "id_policy": getattr(self.session.options, "id_policy", None) or d.id_policy
            or LIBRARY_DEFAULTS["id_policy"],
        }  # fmt: skip

    def _planning_session(self, key: str) -> Any:
        if key not in self._choices:
            raise ValueError(f"planner: {key!r} is not one of {sorted(self._choices)}")
        if key not in self._planning:
            self._planning[key] = self.session.with_planner(key)
        return self._planning[key]

    def plan(self, form: Form, images: Sequence[InputImage]) -> PlannedPrompt:
        """Plan the form's instruction with the chosen planner.

        Raises:
            ValueError / TypeError: a bad form value or image list (naming the field).
        """
        request = build_request(form, images)
        with self._lock:
            session = self._planning_session(form.planner or SESSION_PLANNER)
            start = time.perf_counter()
            planned = session.plan(request.images, request.instruction, request.task)
        logger.info("Planned with %s in %.2fs: %r", planned.backend, time.perf_counter() - start, planned.prompt)
        return planned

    def draw(
        self,
        form: Form,
        images: Sequence[InputImage],
        prompt: str | None,
        progress: Callable[[int, int], Any] | None = None,
    ) -> tuple[Result, PlannedPrompt | None]:
        """Draw with ``prompt`` (planned first when blank).

        Returns:
            The result, and the planner's record when this call planned (else ``None``).

        Raises:
            ValueError / TypeError: a bad form value, image list or prompt (naming the field).
        """
        planned = None
        if not (prompt or "").strip():
            planned = self.plan(form, images)
            prompt = planned.prompt
        request = build_request(form, images, prompt=prompt, progress=progress)
        with self._lock:
            result = self.session.run(request)
        logger.info("Drew %d image(s), seed %s, in %.2fs", len(result.images), result.seed,
                    sum(result.timings.values()))  # fmt: skip
        return result, planned
