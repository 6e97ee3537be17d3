"""The HTML report and ``bench report``: one self-contained page (nothing fetched: only ``data:`` images, inline
CSS and one hashed inline script), all text escaped, runs side by side, runs of different suites refused, files
kept without ``--force``; and the page in real headless Chromium (Debian's ``chromium`` through Playwright): filters
clicked, visible rows counted, no request but the page's own ``file:`` URL.

The slow test runs the mini model twice on mini-world cases; its screenshot goes to ``docs/images/bench_report.png``
when ``DREAMOMNI2_SCREENSHOT=1`` (``pytest -m slow tests/bench/test_html_report.py``), else to tmp.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from dreamomni2.bench.html_report import load_report, render_html, write_report
from dreamomni2.bench.records import RunRecord
from dreamomni2.bench.tables import RateCell
from dreamomni2.cli import main
from dreamomni2.limits import MAX_REPORT_THUMB_SIDE
from tests.bench.report_fixtures import (
    CASES,
    make_run,
    make_suite,
    mini_runs,
    png,
    standard,
    verdict,
    write_verdicts,
)

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "images" / "bench_report.png"
#: An instruction and a judge's reason that try to run script and load from the network.
EVIL = '<script>window.pwned = 1</script><img src="https://evil.example/x.png" onerror="window.pwned = 2">'
EVIL_REASON = "</li></ul><script>window.pwned = 3</script> <a href='http://evil.example/'>see</a>"


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return standard(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def page_html(fx, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    write_report([fx.a, fx.b], out)
    return out


def _articles(text: str) -> list[str]:
    return re.findall(r'<article class="case".*?</article>', text, flags=re.S)


def _data_images(fragment: str) -> list[Image.Image]:
    out = []
    for b64 in re.findall(r'src="data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)"', fragment):
        out.append(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))
    return out


def test_self_contained_no_network(page_html):
    text = page_html.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:https?:|//)""", text, flags=re.I)
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"<link\b", text, flags=re.I) and not re.search(r"<script[^>]*\bsrc", text, flags=re.I)
    assert "@import" not in text and "url(" not in text
    srcs = re.findall(r'\bsrc="([^"]*)"', text)
    assert len(srcs) == 8 * 2 + sum(n for *_, n in CASES)  # every output of both runs and every input
    assert all(s.startswith("data:image/") for s in srcs)
    assert 'content="default-src &#x27;none&#x27;; img-src data:;' in text and text.count("<script>") == 1


def test_two_runs_side_by_side(page_html):
    articles = _articles(page_html.read_text(encoding="utf-8"))
    assert len(articles) == len(CASES)
    first = articles[0]
    assert 'data-id="edit/replace/1"' in first
    assert re.findall(r'<div class="rname">([^<]*)</div>', first) == ["A", "B"]
    imgs = _data_images(first)
    assert [im.size for im in imgs] == [(32, 32)] * 4  # 2 inputs, then the output of A and of B
    assert imgs[2].getpixel((0, 0)) == (220, 40, 40) and imgs[3].getpixel((0, 0)) == (40, 160, 60)
    assert "planned prompt</span> planned: Make image 1 like image 2 (replace)." in first
    # verdicts per run: A's analyzer passed it, B's too; A's clip scores it, B has no clip verdict
    assert first.count('<li class="v pass"><span class="judge">analyzer</span>') == 2
    assert "<b>clip_i 0.100, clip_t 0.200</b>" in first and "no verdict" in first
    gen2 = next(a for a in articles if 'data-id="gen/place/2"' in a)
    assert 'data-v-0-0="unjudged"' in gen2 and 'data-v-0-1="pass"' in gen2


def test_tables_embedded(page_html):
    text = page_html.read_text(encoding="utf-8")
    assert "<caption>analyzer: success rate by task and category</caption>" in text
    assert "<td>.667 [.300, .903] n=6 +2 unjudged</td>" in text
    assert "<caption>clip: mean clip_t by image count</caption>" in text
    assert "excluded from the rate" in text


def test_escaping(tmp_path):
    suite = make_suite(tmp_path, CASES[:2], instructions={"edit/replace/1": EVIL})
    run = make_run(tmp_path, "evil<b>", suite, CASES[:2])
    write_verdicts(run, "vlm<i>", [verdict("edit/replace/1", "vlm<i>", False, reason=EVIL_REASON)])
    text = render_html(load_report([run]))
    assert "<script>window.pwned" not in text and '<img src="https' not in text
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in text
    assert "&lt;/li&gt;&lt;/ul&gt;&lt;script&gt;window.pwned = 3" in text
    assert "<title>fake: evil&lt;b&gt;</title>" in text and "<b>" not in text.split("<style>")[0]
    assert "evil&lt;b&gt;" in text and "vlm&lt;i&gt;" in text


def test_large_images_are_thumbnailed(tmp_path):
    suite = make_suite(tmp_path, CASES[:1])
    png(suite / "images" / "edit_replace_1" / "1.png", (10, 20, 30), size=1000)
    text = render_html(load_report([make_run(tmp_path, "A", suite, CASES[:1])]))
    assert "data:image/jpeg;base64," in text  # the 1000 px input, as a JPEG thumbnail
    sizes = [im.size for im in _data_images(_articles(text)[0])]
    assert sizes == [(MAX_REPORT_THUMB_SIDE, MAX_REPORT_THUMB_SIDE), (32, 32), (32, 32)]


def test_missing_error_and_unreadable_cases_shown(tmp_path):
    suite = make_suite(tmp_path, CASES[:3])
    run = make_run(tmp_path, "A", suite, CASES[:3])
    rows = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    rows[1].update(status="error", output=None, error="CUDA out of memory <oops>")
    (run / "records.jsonl").write_text("".join(json.dumps(RunRecord.from_dict(r).to_dict()) + "\n" for r in rows[:2]))
    (suite / "images" / "edit_replace_1" / "2.png").write_bytes(b"not an image")
    articles = _articles(render_html(load_report([run])))
    assert "image 2: unreadable" in articles[0]
    assert "CUDA out of memory &lt;oops&gt;" in articles[1]
    assert "not run" in articles[2]


def test_different_suites_refused(tmp_path):
    s1 = make_suite(tmp_path, CASES[:2], name="one")
    s2 = make_suite(tmp_path, CASES[:3], name="two")
    a, b = make_run(tmp_path, "A", s1, CASES[:2]), make_run(tmp_path, "B", s2, CASES[:3])
    with pytest.raises(ValueError, match="runs of different suites") as e:
        load_report([a, b])
    assert f"{a} (suite one" in str(e.value) and f"{b} (suite two" in str(e.value)
    with pytest.raises(ValueError, match="the same run folder is given twice"):
        load_report([a, a])


def test_write_report_atomic_and_no_overwrite(fx, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        write_report([fx.a], out)
    assert out.read_text() == "mine"
    report = write_report([fx.a], out, overwrite=True, title="T")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>") and "<title>T</title>" in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left
    assert [r.name for r in report.runs] == ["A"]


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_report(fx, tmp_path, capsys):
    out, md = tmp_path / "r.html", tmp_path / "r.md"
    assert main(["bench", "report", str(fx.a), str(fx.b), "-o", str(out), "--md", str(md)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("**analyzer: success rate by task and category**")
    assert "| A | .500 [.095, .905] n=2 |" in printed and f"wrote {out}" in printed
    assert md.read_text() in printed and out.read_text().startswith("<!DOCTYPE html>")
    # existing files are kept without --force
    assert main(["bench", "report", str(fx.a), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"dreamomni2: error: -o {out}: already exists (pass --force to overwrite)\n"
    assert main(["bench", "report", str(fx.a), "-o", str(out), "--md", str(md), "--force", "--name", "mine"]) == 0
    assert "| mine | .500" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nope"], "RUN_DIR {tmp}/nope: no such folder"),
        (["{tmp}"], "{tmp}: not a run folder (no run.json); make one with `bench run`"),
        (["{a}", "-o", "{tmp}/no/r.html"], "-o {tmp}/no/r.html: folder {tmp}/no does not exist"),
        (["{a}", "-o", "{tmp}/x", "--md", "{tmp}/x"], "-o and --md name the same file {tmp}/x"),
        (["{a}", "{b}", "--name", "one"], "--name: given 1 times for 2 runs; give one per RUN_DIR"),
    ],
)
def test_cli_bad_input_one_line(fx, tmp_path, capsys, args, message):
    fill = {"tmp": tmp_path, "a": fx.a, "b": fx.b}
    assert main(["bench", "report", *(a.format(**fill) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err == f"dreamomni2: error: {message.format(**fill)}\n"


def test_cli_bad_verdict_file_named(tmp_path, capsys):
    suite = make_suite(tmp_path, CASES[:1])
    run = make_run(tmp_path, "A", suite, CASES[:1])
    bad = write_verdicts(run, "j", [verdict("edit/replace/1", "j", True)])
    bad.write_text('{"id": "edit/replace/1", "judge": "j", "judged": true, "colour": 1}\n{}\n')
    assert main(["bench", "report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == f"dreamomni2: error: {bad}: verdict 1: verdict: unknown field(s) colour\n"


# ------------------------------------------------------------------------------------------------ Chromium


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (.ci/run does it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _visible_ids(page) -> list[str]:
    return page.eval_on_selector_all("article.case:not([hidden])", "els => els.map(e => e.dataset.id)")


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.goto(path.as_uri())
    page.wait_for_selector("#shown")
    return page, seen, problems


def test_filters_and_sorting_in_chromium(browser, page_html, tmp_path):
    page, seen, problems = _open(browser, page_html)
    assert len(_visible_ids(page)) == 8 and page.inner_text("#count") == "8 of 8 cases"
    page.select_option("#f-task", "generate")
    assert _visible_ids(page) == ["gen/place/1", "gen/place/2", "gen/compose/1"]
    page.select_option("#f-v-0", "0:fail")  # analyzer: fail in run A
    assert _visible_ids(page) == ["gen/compose/1"] and page.inner_text("#shown") == "1"
    page.select_option("#f-task", "")
    assert _visible_ids(page) == ["edit/replace/2", "gen/compose/1"]
    page.select_option("#f-v-0", "differ:")  # the runs disagree
    assert _visible_ids(page) == ["edit/color/2", "gen/place/1", "gen/place/2"]
    page.select_option("#f-v-0", "all:pass")
    assert _visible_ids(page) == ["edit/replace/1", "edit/color/1", "edit/pattern/1"]
    page.select_option("#f-v-0", "")
    page.select_option("#f-images", "3")
    page.select_option("#f-category", "abstract")
    assert _visible_ids(page) == ["edit/color/2", "gen/compose/1"]
    page.select_option("#f-images", "")
    page.select_option("#f-category", "")
    page.select_option("#f-sub", "place")
    assert _visible_ids(page) == ["gen/place/1", "gen/place/2"]
    page.select_option("#f-sub", "")
    page.select_option("#sort", "s:0:0")  # clip_i in run A, highest first; the unscored case last
    page.select_option("#order", "desc")
    ids = _visible_ids(page)
    assert ids[0] == "gen/place/2" and ids[-1] == "gen/compose/1" and len(ids) == 8
    page.select_option("#sort", "id")
    page.select_option("#order", "asc")
    assert _visible_ids(page)[:3] == ["edit/color/1", "edit/color/2", "edit/pattern/1"]
    assert all(u.startswith(("file:", "data:")) for u in seen) and seen[0] == page_html.as_uri()
    assert problems == []
    page.close()


def test_escaped_script_does_not_run_in_chromium(browser, tmp_path):
    suite = make_suite(tmp_path, CASES[:1], instructions={"edit/replace/1": EVIL})
    run = make_run(tmp_path, "A", suite, CASES[:1])
    write_verdicts(run, "vlm", [verdict("edit/replace/1", "vlm", False, reason=EVIL_REASON)])
    out = tmp_path / "evil.html"
    write_report([run], out)
    page, seen, _ = _open(browser, out)
    assert page.evaluate("window.pwned") is None
    assert page.inner_text("article.case .instr") == EVIL  # shown as text
    assert EVIL_REASON in page.inner_text("article.case .reason")
    assert all(u.startswith(("file:", "data:")) for u in seen)
    page.close()


def test_screenshot(browser, page_html, tmp_path):
    page, _, _ = _open(browser, page_html)
    shot = tmp_path / "bench_report.png"  # the README's comes from the mini model's runs (the slow test below)
    page.screenshot(path=str(shot), full_page=False)
    assert Image.open(shot).size == (1280, 900)
    page.close()


@pytest.mark.slow
def test_mini_model_report_in_chromium(browser, tmp_path):
    """Two real runs of the mini model on 8 mini-world cases (DreamOmni2's reference ids, and FLUX Kontext's shared
    ids), judged by the analyzer: the report's table matches the verdicts, the verdict filter shows the failures;
    its screenshot is the README's."""
    from dreamomni2.session import Session

    runs = mini_runs(tmp_path, Session(device="cpu"))
    report = write_report(runs, tmp_path / "mini.html", title="mini suite: the mini model, two id policies")
    fails = [cid for cid, v in report.runs[1].judges["analyzer"].items() if not v.success]
    assert fails  # shared ids confuse the references: some cases fail
    assert report.tables[0].rows[1][-1] == RateCell(8 - len(fails), 8).text()
    page, seen, problems = _open(browser, tmp_path / "mini.html")
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.select_option("#f-v-0", "1:fail")
    assert _visible_ids(page) == fails
    page.select_option("#f-v-0", "")
    shot = SCREENSHOT if os.environ.get("DREAMOMNI2_SCREENSHOT") == "1" else tmp_path / "bench_report.png"
    page.screenshot(path=str(shot), full_page=False)
    assert all(u.startswith(("file:", "data:")) for u in seen) and problems == []
    page.close()
