"""The web UI in real headless Chromium (Debian's ``chromium``, driven by Playwright's Python package).

``dreamomni2 web`` is started the way a user starts it (a subprocess on a free loopback port, the mini model);
the test uploads two mini-world images in the wrong order, reorders them and sees the labels change, types an
instruction, plans (the mini planner rewrites it into the canonical ``replace`` prompt), edits the planned prompt
into a colour transfer, draws, and decodes the result image from the page: the mini analyzer scores it right for
the edited prompt (and wrong for the planned one, so the edit is what was drawn). A bad request and an instruction
the planner cannot read show their messages in error toasts, never a traceback. The screenshot goes to
``docs/images/web_ui.png`` when ``DREAMOMNI2_SCREENSHOT=1``, else to the test's tmp folder.
"""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from dreamomni2.mini.analyzer import score
from dreamomni2.mini.world import canonical_prompt, make_cases, render

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "images" / "web_ui.png"
#: An instruction the mini planner cannot read (no image is named): it says so.
VAGUE = "Put the thing from the other picture in here."
#: A paraphrase it rewrites into the canonical prompt of the ``replace`` case.
INSTRUCTION = "Swap the object in the first picture for the one shown in the second picture."

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} not found: install Debian's chromium (.ci/run does it with apt-get)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dreamomni2 web exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"dreamomni2 web did not answer at {url} within {timeout}s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``dreamomni2 web`` on a free loopback port, as a user starts it (its output in a log file)."""
    pytest.importorskip("gradio")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "dreamomni2.cli", "web", "--port", str(port), "--quiet"]
    log = tmp_path_factory.mktemp("web") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_up(proc, url, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def case():
    """An edit/concrete ``replace`` case with two images (the mini model draws its colour transfer right, seed 0)."""
    return next(c for c in make_cases(0, 40, tasks=("edit",), categories=("concrete",)) if len(c.images) == 2)


def _colour_case(case):
    """The same images, but image 1 takes image 2's colour (what the edited prompt asks for)."""
    colour = case.images[1].obj.color
    return dataclasses.replace(case, category="abstract", kind="color", refs={"color": 2},
                               target=case.images[0].replace(color=colour))  # fmt: skip


def _captions(page) -> list[str]:
    return page.locator("#images-gallery .caption-label").all_inner_texts()


def _wait_captions(page, first: str, count: int) -> None:
    page.wait_for_function(
        "([first, count]) => { const c = document.querySelectorAll('#images-gallery .caption-label');"
        " return c.length === count && c[0].innerText.includes(first); }",
        arg=[first, count],
    )


def _close_toasts(page) -> None:
    for button in page.locator("[data-testid=toast-close]").all():
        button.click()


def _upload_and_reorder(page, tmp_path: Path, case) -> None:
    (tmp_path / "object.png").write_bytes(_png(render(case.images[1])))  # the reference, uploaded first
    (tmp_path / "scene.png").write_bytes(_png(render(case.images[0])))  # the image to edit
    with page.expect_file_chooser() as chooser:
        page.click("#add-images")
    chooser.value.set_files([str(tmp_path / "object.png"), str(tmp_path / "scene.png")])
    _wait_captions(page, "object.png", 2)
    assert _captions(page) == ["image 1 · object.png", "image 2 · scene.png"]
    page.locator("#images-gallery .thumbnail-item").nth(1).click()  # select image 2 ...
    page.locator("#selected input[value='1']").wait_for(state="attached")
    assert page.locator("#selected input[value='1']").is_checked()
    page.click("#move-up")  # ... and make it image 1
    _wait_captions(page, "scene.png", 2)
    assert _captions(page) == ["image 1 · scene.png", "image 2 · object.png"]


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _plan_edit_draw(page, case) -> str:
    page.fill("#instruction textarea", VAGUE)
    page.click("#plan")
    page.get_by_text("the mini planner does not understand").wait_for()  # the planner's message, as a toast
    _close_toasts(page)
    page.fill("#instruction textarea", INSTRUCTION)
    page.click("#plan")
    planned = canonical_prompt(case)
    page.wait_for_function("p => document.querySelector('#prompt textarea').value === p", arg=planned)
    edited = canonical_prompt(_colour_case(case))
    assert edited != planned
    page.fill("#prompt textarea", edited)  # the user edits the planned prompt
    page.click("#advanced")
    page.uncheck("#random-seed input")
    page.fill("#seed input", "0")
    page.click("#draw")
    page.wait_for_selector("#result-gallery img", timeout=30_000)
    page.wait_for_function("document.querySelector('#status').innerText.includes('seed 0')")
    return edited


def test_upload_reorder_plan_edit_draw_in_chromium(server, browser, case, tmp_path):
    start = time.perf_counter()
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server)
    page.wait_for_selector("#add-images")
    page.click("#draw")  # nothing uploaded yet: the request check's message, not a traceback
    page.get_by_text("Request.images: an edit needs at least one image").wait_for()
    assert "Traceback" not in page.content()
    _close_toasts(page)

    _upload_and_reorder(page, tmp_path, case)
    prompt = _plan_edit_draw(page, case)

    src = page.get_attribute("#result-gallery img", "src")
    with urllib.request.urlopen(src, timeout=10) as r:
        image = Image.open(io.BytesIO(r.read())).convert("RGB")
    assert image.size == (32, 32)
    assert score(_colour_case(case), image)["success"], score(_colour_case(case), image)
    assert not score(case, image)["success"]  # the edited prompt was drawn, not the planned one
    history = page.inner_text("#history")
    assert prompt in history and INSTRUCTION in history and "edited" in history

    shot = SCREENSHOT if os.environ.get("DREAMOMNI2_SCREENSHOT") == "1" else tmp_path / "web_ui.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.click("#use-as-image-1")  # the output becomes image 1 for the next edit
    _wait_captions(page, "result 1", 2)
    assert _captions(page) == ["image 1 · result 1", "image 2 · object.png"]
    page.close()
    assert time.perf_counter() - start < 60
