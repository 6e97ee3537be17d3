"""The page's event handlers: each one reads the controls, calls a plain function or the controller, returns updates.

Bad input (a :func:`~dreamomni2.request.check_request` error, an unreadable upload, a bad index) is raised as
``gr.Error`` with the message, never a traceback; anything else is logged with its traceback on the server and
shown in one line.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gradio as gr

from dreamomni2.tasks import MAX_IMAGES
from dreamomni2.web.controller import WebController
from dreamomni2.web.examples import example_inputs
from dreamomni2.web.forms import Form
from dreamomni2.web.gallery import (
    InputImage,
    add_images,
    gallery_value,
    image_label,
    load_uploads,
    move_image,
    remove_image,
    set_first,
)
from dreamomni2.web.history import add_row, history_row, history_table

__all__ = ["image_updates", "page_error", "user_errors", "wire"]

logger = logging.getLogger(__name__)

FELL_BACK = "The planner could not read the instruction and passed it on unchanged; edit the prompt before drawing."


def page_error(message: str) -> gr.Error:
    """A ``gr.Error`` for the page (the server log gets one line, not gradio's traceback, where it can say so)."""
    if "print_exception" in inspect.signature(gr.Error.__init__).parameters:
        return gr.Error(message, print_exception=False)
    return gr.Error(message)


def user_errors(fn: Callable) -> Callable:
    """Turn a handler's exceptions into one-line ``gr.Error`` messages (bad input as is, the rest logged)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, TypeError) as e:
            logger.info("Refused: %s", e)
            raise page_error(str(e)) from None
        except Exception as e:
            logger.exception("Web request failed")
            raise page_error(f"{type(e).__name__}: {e}") from None

    return wrapper


def image_updates(items: list[InputImage], selected: int | None = None) -> tuple[Any, Any, Any]:
    """The image list's state, gallery and selector values."""
    choices = [(image_label(i), i) for i in range(len(items))]
    value = selected if selected is not None and 0 <= selected < len(items) else None
    return items, gallery_value(items), gr.update(choices=choices, value=value)


def _form(ui: SimpleNamespace, values: dict) -> Form:
    return Form.from_values({name: values[comp] for name, comp in ui.form.items()})


def _wire_images(ui: SimpleNamespace) -> None:
    images = [ui.items, ui.gallery, ui.selected]

    @user_errors
    def upload(files: list[str] | None, items: list[InputImage]):
        items, dropped = add_images(items, load_uploads(files))
        if dropped:
            gr.Warning(f"At most {MAX_IMAGES} images: {dropped} not added.")
        return image_updates(items, len(items) - 1)

    def mover(offset: int) -> Callable:
        @user_errors
        def move(items: list[InputImage], selected: int | None):
            items, index = move_image(items, selected, offset)
            return image_updates(items, index)

        return move

    @user_errors
    def remove(items: list[InputImage], selected: int | None):
        items = remove_image(items, selected)
        return image_updates(items, min(selected, len(items) - 1) if items else None)

    def select(evt: gr.SelectData):
        return evt.index

    ui.upload.upload(upload, [ui.upload, ui.items], images)
    ui.up.click(mover(-1), [ui.items, ui.selected], images)
    ui.down.click(mover(1), [ui.items, ui.selected], images)
    ui.remove.click(remove, [ui.items, ui.selected], images)
    ui.clear.click(lambda: image_updates([]), None, images)
    ui.gallery.select(select, None, ui.selected)


def _planned_by(ui: SimpleNamespace, ctrl: WebController, values: dict, prompt: str) -> str:
    """Who wrote the prompt: the planner chosen, ``..., edited`` after a hand edit."""
    label = ctrl.planner_label(values[ui.planner])
    last = values[ui.last_plan]
    return label if last is None or last == prompt.strip() else f"{label}, edited"


def _draw_updates(ui: SimpleNamespace, result: Any, rows: list, seconds: float) -> dict:
    first = result.images[0]
    status = (f"Drew {len(result.images)} image(s), {first.width}x{first.height}, in {seconds:.1f} s "
              f"(seed {result.seed}).")  # fmt: skip
    return {ui.results: [(im, f"result {i + 1}") for i, im in enumerate(result.images)],
            ui.result_items: list(result.images), ui.result_index: 0, ui.prompt: result.prompt, ui.rows: rows,
            ui.history: history_table(rows), ui.status: status, ui.seed: result.seed}  # fmt: skip


def _wire_run(ui: SimpleNamespace, ctrl: WebController) -> None:
    reads = {ui.items, ui.prompt, ui.rows, ui.last_plan, *ui.form.values()}

    @user_errors
    def plan(values: dict):
        planned = ctrl.plan(_form(ui, values), values[ui.items])
        if planned.fell_back:
            gr.Warning(FELL_BACK)
        return {ui.prompt: planned.prompt, ui.last_plan: planned.prompt,
                ui.status: f"Planned by {planned.backend}" + (" (fell back to the instruction)." if planned.fell_back
                                                              else ".")}  # fmt: skip

    @user_errors
    def draw(values: dict, progress=gr.Progress()):  # noqa: B008  (gradio's way of asking for a progress bar)
        start, items = time.perf_counter(), values[ui.items]
        prompt = values[ui.prompt] or ""
        progress(0, desc="drawing" if prompt.strip() else "planning")
        result, planned = ctrl.draw(_form(ui, values), items, prompt,
                                    lambda step, total: progress((step, total), desc="denoising"))  # fmt: skip
        if planned is not None and planned.fell_back:
            gr.Warning(FELL_BACK)
        seconds = time.perf_counter() - start
        by = ctrl.planner_label(values[ui.planner]) if planned is not None else _planned_by(ui, ctrl, values, prompt)
        rows = values[ui.rows]
        row = history_row(len(rows) + 1, result, instruction=values[ui.instruction], planner=by, inputs=len(items),
                          seconds=seconds)  # fmt: skip
        return _draw_updates(ui, result, add_row(rows, row), seconds)

    writes = [ui.prompt, ui.last_plan, ui.status]
    draw_writes = [ui.results, ui.result_items, ui.result_index, ui.prompt, ui.rows, ui.history, ui.status, ui.seed]
    queue = {"concurrency_id": "requests"}  # one queue, in click order, so a stale-prompt reset never overtakes
    ui.plan.click(plan, reads, writes, **queue)
    ui.draw.click(draw, reads, draw_writes, **queue)
    ui.plan_draw.click(plan, reads, writes, **queue).success(draw, reads, draw_writes, **queue)
    for control in (ui.instruction, ui.task, ui.planner):  # the planned prompt is stale once these change
        control.input(lambda: ("", None), None, [ui.prompt, ui.last_plan], **queue)


def _wire_results(ui: SimpleNamespace) -> None:
    images = [ui.items, ui.gallery, ui.selected]

    @user_errors
    def use_first(items: list[InputImage], results: list, index: int):
        if not results:
            raise ValueError("draw an image first")
        index = index if 0 <= index < len(results) else 0
        return image_updates(set_first(items, InputImage(results[index], f"result {index + 1}")), 0)

    def select(evt: gr.SelectData):
        return evt.index

    @user_errors
    def example(evt: gr.SelectData):
        task, items, instruction = example_inputs(evt.index)
        return (task, *image_updates(items), instruction, "", None)

    ui.use_first.click(use_first, [ui.items, ui.result_items, ui.result_index], images)
    ui.results.select(select, None, ui.result_index)
    ui.examples.select(example, None, [ui.task, *images, ui.instruction, ui.prompt, ui.last_plan])


def wire(ui: SimpleNamespace, ctrl: WebController) -> None:
    """Connect the page's controls (built by :func:`dreamomni2.web.app.build_app`) to their handlers."""
    ui.last_plan = gr.State(None)
    _wire_images(ui)
    _wire_run(ui, ctrl)
    _wire_results(ui)
