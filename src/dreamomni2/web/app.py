"""The gradio page: layout and wiring only; the work is in :mod:`~dreamomni2.web.handlers` and the plain modules.

:func:`build_app` lays the page out (inputs on the left, results on the right, the history and the examples
below) and connects each control to its handler; :func:`launch` serves it (loopback unless told otherwise, never
a public share link unless asked).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from dreamomni2 import limits
from dreamomni2.mini import MODEL_DIR
from dreamomni2.tasks import TASKS
from dreamomni2.web import handlers
from dreamomni2.web.controller import SESSION_PLANNER, WebController
from dreamomni2.web.examples import example_gallery
from dreamomni2.web.forms import FORM_FIELDS
from dreamomni2.web.history import HISTORY_COLUMNS

__all__ = ["CSS", "build_app", "launch"]

logger = logging.getLogger(__name__)

#: Small images are shown upscaled with hard edges (the mini model's are 32 px).
CSS = """
#images-gallery img, #result-gallery img, #examples-gallery img { image-rendering: pixelated; }
"""
_INTRO = (
    "Images are numbered in the order shown: say *image 1*, *image 2*... in the instruction "
    "(an edit changes image 1). **Plan** shows the planner's prompt, which you can edit; **Draw** draws with it."
)


def _theme() -> Any:
    """The default theme with system fonts (nothing fetched from the network)."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def _style_kwargs(where: Any) -> dict[str, Any]:
    """``theme`` and ``css`` for whichever of ``Blocks``/``launch`` takes them (gradio 6 moved them to launch)."""
    in_launch = "css" in inspect.signature(gr.Blocks.launch).parameters
    if (where is gr.Blocks.launch) == in_launch:
        return {"theme": _theme(), "css": CSS}
    return {}


def _gallery(value: Any = None, fixed_columns: bool = True, **kwargs: Any) -> Any:
    """A display-only gallery; a fixed column count where this gradio can keep one (``fit_columns``)."""
    if fixed_columns and "fit_columns" in inspect.signature(gr.Gallery.__init__).parameters:
        kwargs["fit_columns"] = False
    return gr.Gallery(value, format="png", interactive=False, object_fit="contain", **kwargs)


def _header(ctrl: WebController) -> str:
    s = ctrl.session
    model = getattr(s.options, "model", None)
    model = "the mini model" if model is None or Path(model).resolve() == MODEL_DIR else f"`{model}`"
    release = f" + release {s.options.release}" if getattr(s.options, "release", None) else ""
    return f"# DreamOmni2\n{model}{release} on `{s.device}`. {_INTRO}"


def _image_list(ui: SimpleNamespace) -> None:
    ui.task = gr.Radio(list(TASKS), value="edit", label="Task", elem_id="task")
    ui.gallery = _gallery(
        label=f"Images (1 to {limits.MAX_IMAGES}, image 1 first; click one to select it)",
        elem_id="images-gallery",
        columns=limits.MAX_IMAGES,
        height=200,
        allow_preview=False,
    )
    with gr.Row():
        ui.upload = gr.UploadButton("Add images", file_count="multiple", file_types=["image"], elem_id="add-images",
                                    size="sm")  # fmt: skip
        ui.selected = gr.Radio([], label="Selected", elem_id="selected", scale=3)
    with gr.Row():
        ui.up = gr.Button("Move up (towards image 1)", size="sm", elem_id="move-up")
        ui.down = gr.Button("Move down", size="sm", elem_id="move-down")
        ui.remove = gr.Button("Remove", size="sm", elem_id="remove")
        ui.clear = gr.Button("Remove all", size="sm", elem_id="clear")


def _advanced(ui: SimpleNamespace, ctrl: WebController) -> None:
    from dreamomni2.ids import ID_POLICIES

    d = ctrl.defaults()
    with gr.Accordion("Advanced", open=False, elem_id="advanced"):
        with gr.Row():
            ui.steps = gr.Slider(1, limits.MAX_STEPS, value=d["steps"], step=1, label="Steps", elem_id="steps")
            ui.guidance = gr.Number(value=d["guidance"], label="Guidance", elem_id="guidance")
        with gr.Row():
            ui.seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
            ui.random_seed = gr.Checkbox(value=True, label="Random seed", elem_id="random-seed")
        with gr.Row():
            ui.size = gr.Textbox(label="Size", placeholder="WIDTHxHEIGHT (blank: image 1's size)", elem_id="size")
            ui.n = gr.Slider(1, limits.MAX_N, value=1, step=1, label="Images to draw", elem_id="n")
            ui.id_policy = gr.Dropdown(list(ID_POLICIES), value=d["id_policy"], label="Id policy", elem_id="id-policy")


def _inputs_column(ui: SimpleNamespace, ctrl: WebController) -> None:
    _image_list(ui)
    example = "e.g. Replace the object in image 1 with the object from image 2."
    ui.instruction = gr.Textbox(label="Instruction", lines=2, elem_id="instruction", placeholder=example)
    ui.planner = gr.Dropdown(ctrl.planner_choices(), value=SESSION_PLANNER, label="Planner", elem_id="planner")
    with gr.Row():
        ui.plan = gr.Button("Plan", elem_id="plan")
        ui.draw = gr.Button("Draw", elem_id="draw")
        ui.plan_draw = gr.Button("Plan & draw", variant="primary", elem_id="plan-draw")
    ui.prompt = gr.Textbox(label="Prompt (planned; edit it before drawing)", lines=2, elem_id="prompt",
                           placeholder="Plan to fill this in, or write the prompt yourself")  # fmt: skip
    _advanced(ui, ctrl)


def _outputs_column(ui: SimpleNamespace) -> None:
    ui.results = _gallery(label="Result", elem_id="result-gallery", columns=2, height=360, fixed_columns=False)
    ui.use_first = gr.Button("Use as image 1", elem_id="use-as-image-1")
    ui.status = gr.Markdown("", elem_id="status")


def _layout(ui: SimpleNamespace, ctrl: WebController) -> None:
    gr.Markdown(_header(ctrl))
    with gr.Row():
        with gr.Column(scale=3):
            _inputs_column(ui, ctrl)
        with gr.Column(scale=2):
            _outputs_column(ui)
    ui.history = gr.Dataframe(headers=list(HISTORY_COLUMNS), value=None, label="History (this page)",
                              interactive=False, wrap=True, elem_id="history")  # fmt: skip
    ui.examples = _gallery(
        example_gallery(),
        label="Examples (mini world; click one to load it)",
        columns=4,
        height="auto",
        allow_preview=False,
        elem_id="examples-gallery",
    )
    ui.items, ui.result_items, ui.result_index, ui.rows = gr.State([]), gr.State([]), gr.State(0), gr.State([])
    ui.form = {name: getattr(ui, name) for name in FORM_FIELDS}


def build_app(ctrl: WebController | Any) -> gr.Blocks:
    """The page on a :class:`WebController` (or a Session, wrapped in one)."""
    if not isinstance(ctrl, WebController):
        ctrl = WebController(ctrl)
    ui = SimpleNamespace()
    with gr.Blocks(title="DreamOmni2", analytics_enabled=False, **_style_kwargs(gr.Blocks)) as demo:
        _layout(ui, ctrl)
        handlers.wire(ui, ctrl)
    demo.queue(default_concurrency_limit=1)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True) -> Any:
    """Serve the page on ``host:port`` (no share link unless ``share``); returns once closed, or at once
    with ``block=False``."""
    logger.info("Serving the web UI on %s:%d (share=%s)", host, port, share)
    return demo.launch(
        server_name=host, server_port=port, share=bool(share), inbrowser=False, quiet=True, show_error=False,
        prevent_thread_lock=not block, max_file_size=limits.MAX_BODY_BYTES, **_style_kwargs(gr.Blocks.launch),
    )  # fmt: skip
