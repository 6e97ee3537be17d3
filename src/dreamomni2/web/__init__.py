"""The web UI (``dreamomni2 web``): a gradio page on one :class:`~dreamomni2.session.Session`.

The page is thin wiring (:mod:`~dreamomni2.web.app`, :mod:`~dreamomni2.web.handlers`, the only modules that import
gradio) over plain, browser-free functions:

* :mod:`~dreamomni2.web.gallery` — the ordered image list (add, remove, reorder, ``image 1``... labels);
* :mod:`~dreamomni2.web.forms` — the form's values -> a checked :class:`~dreamomni2.request.Request`;
* :mod:`~dreamomni2.web.history` — the page's history rows;
* :mod:`~dreamomni2.web.examples` — mini-world examples (offline);
* :mod:`~dreamomni2.web.controller` — planner choices, planning and drawing on the session, one at a time.

::

    from dreamomni2.session import Session
    from dreamomni2.web import build_app, launch

    launch(build_app(Session().load()))     # http://127.0.0.1:7860 (needs ``pip install 'dreamomni2[web]'``)
"""

from __future__ import annotations

from typing import Any

from dreamomni2.web.controller import WebController
from dreamomni2.web.forms import Form, build_request
from dreamomni2.web.gallery import InputImage

__all__ = ["Form", "InputImage", "WebController", "build_app", "build_request", "launch"]


def build_app(session_or_controller: Any) -> Any:
    """The gradio page (a ``gr.Blocks``) on a Session or a :class:`WebController` (imports gradio)."""
    from dreamomni2.web.app import build_app as _build

    return _build(session_or_controller)


def launch(demo: Any, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True) -> Any:
    """Serve a page from :func:`build_app` (see :func:`dreamomni2.web.app.launch`)."""
    from dreamomni2.web.app import launch as _launch

    return _launch(demo, host=host, port=port, share=share, block=block)
