"""The web UI's plain functions, without a browser: the image list, the form -> Request, the history, the examples,
the controller on the mini model, and the ``web`` command's options."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from dreamomni2.mini.analyzer import score
from dreamomni2.mini.world import canonical_prompt, make_cases, render
from dreamomni2.tasks import MAX_IMAGES
from dreamomni2.web.examples import EXAMPLE_COUNT, example_cases, example_gallery, example_inputs, upscale
from dreamomni2.web.forms import FORM_FIELDS, Form, as_int, build_request, parse_size
from dreamomni2.web.gallery import (
    InputImage,
    add_images,
    gallery_value,
    labels,
    load_uploads,
    move_image,
    remove_image,
    set_first,
)
from dreamomni2.web.history import HISTORY_COLUMNS, add_row, history_row, history_table


def _items(*names: str) -> list[InputImage]:
    return [InputImage(Image.new("RGB", (8, 8), (i * 40, 0, 0)), n) for i, n in enumerate(names)]


def _names(items) -> list[str]:
    return [item.name for item in items]


# ------------------------------------------------------------------ the image list
def test_labels_follow_the_order():
    items = _items("a.png", "b.png")
    assert labels(items) == ["image 1 · a.png", "image 2 · b.png"]
    assert [c for _, c in gallery_value(items)] == labels(items)
    moved, index = move_image(items, 1, -1)
    assert labels(moved) == ["image 1 · b.png", "image 2 · a.png"] and index == 0
    assert _names(items) == ["a.png", "b.png"]  # a new list; the old one is untouched


def test_move_clamps_and_remove():
    items = _items("a", "b", "c")
    assert move_image(items, 0, -1) == (items, 0)
    assert _names(move_image(items, 0, 1)[0]) == ["b", "a", "c"]
    assert move_image(items, 2, 5)[1] == 2
    assert _names(remove_image(items, 1)) == ["a", "c"]
    for bad in (None, 3, -1):
        with pytest.raises(ValueError, match="select an image"):
            remove_image(items, bad)
    with pytest.raises(ValueError, match="no images"):
        move_image([], 0, 1)


def test_add_stops_at_the_image_limit_and_set_first_replaces_image_1():
    items, dropped = add_images(_items("a", "b", "c"), _items("d", "e", "f", "g"))
    assert len(items) == MAX_IMAGES and dropped == 2 and _names(items)[-1] == "e"
    assert add_images([], _items("a")) == (_items("a"), 0)
    assert _names(set_first(_items("a", "b"), _items("r")[0])) == ["r", "b"]
    assert _names(set_first([], _items("r")[0])) == ["r"]


def test_load_uploads_names_the_file(tmp_path):
    good = tmp_path / "cat.png"
    Image.new("RGB", (4, 4)).save(good)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert _names(load_uploads([good])) == ["cat.png"] and load_uploads(None) == []
    with pytest.raises(ValueError, match="notes.png"):
        load_uploads([good, bad], names=["cat.png", "notes.png"])


# ------------------------------------------------------------------ form -> Request
def test_build_request_from_form_values():
    form = Form(task="edit", instruction="swap", steps=12.0, guidance="2.5", seed=7.0, size="48x32", n=2.0,
                id_policy="kontext")  # fmt: skip
    r = build_request(form, _items("a", "b"), prompt="  Replace it.  ")
    got = (r.task, r.steps, r.guidance, r.seed, r.size, r.n, r.id_policy)
    assert got == ("edit", 12, 2.5, 7, (48, 32), 2, "kontext")
    assert r.prompt == "Replace it." and len(r.images) == 2 and r.instruction == "swap"
    blank = build_request(Form(instruction="x", steps=None, guidance="", seed=3, random_seed=True, size=" ", n=None,
                               id_policy=""), _items("a"))  # fmt: skip
    assert (blank.steps, blank.guidance, blank.seed, blank.size, blank.n, blank.id_policy) == (None,) * 4 + (1, None)
    assert blank.prompt is None


@pytest.mark.parametrize(
    ("form", "images", "message"),
    [
        (Form(instruction="x"), [], "Request.images"),
        (Form(instruction="  "), ["a"], "Request.instruction is empty"),
        (Form(instruction="x", steps=0), ["a"], "Request.steps"),
        (Form(instruction="x", steps=2.5), ["a"], "steps must be a whole number"),
        (Form(instruction="x", n=0), ["a"], "Request.n"),
        (Form(instruction="x", seed="abc"), ["a"], "seed must be a whole number"),
        (Form(instruction="x", guidance="lots"), ["a"], "guidance must be a number"),
        (Form(instruction="x", size="big"), ["a"], "size: expected WIDTHxHEIGHT"),
        (Form(instruction="x", size="1x1"), ["a"], "Request.size"),
        (Form(task="paint", instruction="x"), ["a"], "Unknown task"),
    ],
)
def test_bad_form_values_name_the_field(form, images, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build_request(form, _items(*images))


def test_blank_prompt_is_refused_when_given():
    with pytest.raises(ValueError, match="Request.prompt is empty"):
        build_request(Form(instruction="x"), _items("a"), prompt="   ")


def test_form_fields_and_small_parsers():
    assert FORM_FIELDS[:3] == ("task", "instruction", "planner")
    assert Form.from_values({"task": "generate"}).task == "generate"
    with pytest.raises(TypeError, match="unknown form field"):
        Form.from_values({"colour": "red"})
    assert as_int("steps", "20") == 20 and as_int("steps", None) is None
    assert parse_size("64 × 48") == (64, 48) and parse_size(None) is None


# ------------------------------------------------------------------ history
class _Settings:
    task, steps, guidance, seed, n, id_policy = "edit", 20, 3.5, 42, 1, "dreamomni2"


class _Result:
    settings, prompt, images = _Settings(), "Replace the object.", [Image.new("RGB", (32, 24))]


def test_history_rows_keep_the_settings_newest_first():
    row = history_row(1, _Result(), instruction="swap it", planner="mini", inputs=2, seconds=0.4567)
    assert list(row) == list(HISTORY_COLUMNS)
    assert (row["prompt"], row["seed"], row["steps"], row["size"], row["seconds"]) == (
        "Replace the object.", 42, 20, "32x24", 0.46)  # fmt: skip
    rows = add_row(add_row([], row), {**row, "#": 2, "seed": 43})
    table = history_table(rows)
    assert [r[0] for r in table] == [2, 1] and table[1][HISTORY_COLUMNS.index("seed")] == 42
    assert history_table([]) == []


# ------------------------------------------------------------------ examples
def test_examples_are_mini_world_cases_at_32_px():
    cases = example_cases()
    assert len(cases) == EXAMPLE_COUNT and {c.task for c in cases} == {"edit", "generate"}
    task, items, instruction = example_inputs(0)
    assert (task, instruction) == (cases[0].task, cases[0].instruction)
    assert [i.image.size for i in items] == [(32, 32)] * len(cases[0].images)
    assert items[0].name == "example 1.1"
    preview, caption = example_gallery()[0]
    assert preview.height == 128 and caption.endswith(instruction)
    assert upscale(Image.new("RGB", (2, 3)), 4).size == (8, 12)
    with pytest.raises(ValueError, match="no example"):
        example_inputs(EXAMPLE_COUNT)


# ------------------------------------------------------------------ controller on the mini model
@pytest.fixture(scope="module")
def controller():
    from dreamomni2.session import Session
    from dreamomni2.web.controller import WebController

    return WebController(Session(progress=False)).load()


@pytest.fixture(scope="module")
def replace_case():
    return next(c for c in make_cases(0, 40, tasks=("edit",), categories=("concrete",)) if len(c.images) == 2)


def _case_items(case) -> list[InputImage]:
    return [InputImage(render(s), f"s{i}") for i, s in enumerate(case.images)]


def test_planner_choices_are_local_or_the_sessions_own(controller):
    from dreamomni2.session import Session
    from dreamomni2.web.controller import WebController

    assert [key for _, key in controller.planner_choices()] == ["session", "none"]
    assert controller.planner_label("session") == "mini (this session's planner)"
    plain = WebController(Session(planner="none"))
    assert [key for _, key in plain.planner_choices()] == ["session", "mini"]
    with pytest.raises(ValueError, match="planner: 'openai:http://evil.example' is not one of"):
        controller.plan(Form(instruction="x", planner="openai:http://evil.example"), _items("a"))


def test_plan_rewrites_and_none_keeps_the_instruction(controller, replace_case):
    items = _case_items(replace_case)
    form = Form(instruction="Swap the object in the first picture for the one shown in the second picture.")
    assert controller.plan(form, items).prompt == canonical_prompt(replace_case)
    kept = controller.plan(Form(instruction=form.instruction, planner="none"), items)
    assert kept.prompt == form.instruction and kept.backend == "none"


def test_draw_plans_when_the_prompt_is_blank_and_reports_progress(controller, replace_case):
    steps: list[tuple[int, int]] = []
    form = Form(instruction=replace_case.instruction, seed=0)
    result, planned = controller.draw(form, _case_items(replace_case), "", lambda s, t: steps.append((s, t)))
    assert planned is not None and result.prompt == planned.prompt == canonical_prompt(replace_case)
    assert steps == [(i, 20) for i in range(1, 21)]
    assert result.seed == 0 and score(replace_case, result.image)["success"]
    given, none = controller.draw(form, _case_items(replace_case), canonical_prompt(replace_case))
    assert none is None and given.planned.backend == "given"
    assert controller.defaults() == {"steps": 20, "guidance": 3.5, "id_policy": "dreamomni2"}


def test_a_random_seed_is_reported(controller, replace_case):
    result, _ = controller.draw(Form(instruction="x", random_seed=True, steps=2), _case_items(replace_case), "p")
    assert isinstance(result.seed, int) and result.settings.steps == 2


# ------------------------------------------------------------------ the command and the import boundary
def test_web_command_options_and_exposure_warnings():
    from dreamomni2.cli import build_parser
    from dreamomni2.cli.web import exposure_warnings, is_loopback

    args = build_parser().parse_args(["web"])
    assert (args.host, args.port, args.share, args.model, args.planner) == ("127.0.0.1", 7860, False, None, None)
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "example.org", "::"))
    assert exposure_warnings("127.0.0.1", False) == []
    assert "reachable from other machines" in exposure_warnings("0.0.0.0", False)[0]
    assert "public link" in exposure_warnings("localhost", True)[0]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["web", "--port", "70000"])


def test_a_busy_port_is_refused_before_the_model_loads():
    import socket

    from dreamomni2.cli import main
    from dreamomni2.cli.errors import UsageError
    from dreamomni2.cli.web import check_listen

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"--port {port}: cannot listen there"):
            check_listen("127.0.0.1", port)
        assert main(["web", "--port", str(port)]) == 2


def test_importing_the_package_does_not_import_gradio():
    code = ("import sys, dreamomni2, dreamomni2.web, dreamomni2.cli, dreamomni2.web.controller; "
            "assert 'gradio' not in sys.modules, 'gradio imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_page_errors_are_one_line_gradio_errors():
    gr = pytest.importorskip("gradio")
    from dreamomni2.web.handlers import user_errors

    @user_errors
    def bad():
        raise ValueError("Request.steps must be between 1 and 150, got 0")

    @user_errors
    def broken():
        raise RuntimeError("out of memory")

    with pytest.raises(gr.Error, match="Request.steps"):
        bad()
    with pytest.raises(gr.Error, match="RuntimeError: out of memory"):
        broken()
