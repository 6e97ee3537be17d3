"""One self-contained HTML report of benchmark runs of one suite: tables on top, then every case side by side.

:func:`load_report` reads run folders (the :mod:`dreamomni2.bench.records` layout) and their suite;
:func:`render_html` turns that into one page; :func:`write_report` does both and writes the page atomically.

The page loads nothing: images are inlined as ``data:`` URIs (thumbnails of at most
:data:`dreamomni2.limits.MAX_REPORT_THUMB_SIDE` px a side, so the file stays bounded: PNG for small images, JPEG
for larger ones), the CSS and the one script are inline, and a Content-Security-Policy allows images from
``data:`` only and no script but that one (by its hash): even a ``<script>`` that slipped into the page would not
run. All text (instructions, prompts, judges' reasons: user and VLM text) is HTML-escaped.

Per case: its id, task, category, sub-category and image count, the instruction, the input images in order, and
for each run (side by side) the output, the prompt the model was given (the planned one when a planner ran), the
seed, and each judge's verdict with its reason. Filters: task, category, sub-category, image count and, per
pass/fail judge, the verdict in a chosen run (or all runs agreeing, or runs differing); sorting by id, by verdict
or by any score in any run, either order.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dreamomni2.bench.records import (
    JUDGEMENTS_DIR,
    RUN_FILE,
    RunRecord,
    Verdict,
    read_jsonl,
    read_records,
    read_run_meta,
)
from dreamomni2.bench.suite import SuiteCase, read_suite, read_suite_meta, suite_hash
from dreamomni2.bench.tables import SUCCESS, Table, build_tables, judge_metrics, outcome, score_value

logger = logging.getLogger(__name__)

__all__ = ["Report", "RunData", "load_report", "load_run", "render_html", "write_report"]

#: Images up to this side are inlined as PNG (exact pixels, tiny); larger thumbnails as JPEG.
PNG_MAX_SIDE = 128
JPEG_QUALITY = 85


@dataclass
class RunData:
    """One run folder, read.

    Attributes:
        path: the run folder.
        name: its label in tables and columns (the folder name unless given).
        meta: ``run.json``.
        records: the run's records by case id.
        judges: ``{judge name: {case id: Verdict}}`` from ``judgements/*.jsonl``.
    """

    path: Path
    name: str
    meta: dict[str, Any]
    records: dict[str, RunRecord]
    judges: dict[str, dict[str, Verdict]] = field(default_factory=dict)


@dataclass
class Report:
    """What a report shows: the suite, its cases, the runs (in order) and the tables."""

    suite_dir: Path
    suite_name: str
    cases: list[SuiteCase]
    runs: list[RunData]
    tables: list[Table]


def _read_judgements(run_dir: Path) -> dict[str, dict[str, Verdict]]:
    judges: dict[str, dict[str, Verdict]] = {}
    for path in sorted((run_dir / JUDGEMENTS_DIR).glob("*.jsonl")):
        verdicts: dict[str, Verdict] = {}
        for i, row in enumerate(read_jsonl(path), 1):
            try:
                v = Verdict.from_dict(row)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}: verdict {i}: {e}") from None
            verdicts[v.id] = v
        name = next((v.judge for v in verdicts.values() if v.judge), path.stem)
        judges.setdefault(name, {}).update(verdicts)
    return judges


def load_run(run_dir: str | Path, name: str | None = None) -> RunData:
    """Read a run folder: ``run.json``, its records and every judge's verdicts.

    Raises:
        FileNotFoundError: no such folder, or no ``run.json`` in it.
        ValueError: a malformed ``run.json``, record or verdict, naming the file.
    """
    run_dir = Path(run_dir)
    meta = read_run_meta(run_dir)
    try:
        records = {r.id: r for r in read_records(run_dir)}
    except (TypeError, ValueError) as e:
        raise ValueError(f"{run_dir}: bad records ({e})") from None
    return RunData(run_dir, name or run_dir.resolve().name, meta, records, _read_judgements(run_dir))


def _suite_of(run: RunData) -> tuple[Path, list[SuiteCase], str]:
    suite_dir = Path(run.meta["suite"])
    if not suite_dir.is_absolute():
        suite_dir = (run.path / suite_dir).resolve()
    if not (suite_dir / "suite.json").is_file():
        raise FileNotFoundError(f"{run.path / RUN_FILE}: its suite folder {suite_dir} is not there")
    cases = read_suite(suite_dir, check_files=False)
    return suite_dir, cases, run.meta.get("suite_hash") or suite_hash(cases)


def _unique_names(run_dirs: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(run_dirs):
            raise ValueError(f"names: {len(names)} names for {len(run_dirs)} runs")
        out = [str(n) for n in names]
    else:
        out = [p.resolve().name for p in run_dirs]
        if len(set(out)) < len(out):
            out = [str(p) for p in run_dirs]
    if len(set(out)) < len(out):
        raise ValueError(f"names: run names must be unique, got {', '.join(out)}")
    return out


def load_report(run_dirs: Sequence[str | Path], names: Sequence[str] | None = None) -> Report:
    """Read runs of one suite and build their tables.

    Args:
        run_dirs: one or more run folders, in column/row order.
        names: their labels (default: folder names; full paths when two folder names clash).

    Raises:
        ValueError: no runs, the same run twice, or runs of different suites (compared by the suite hash in
            ``run.json``; the message names each run and its suite).
        FileNotFoundError: a missing run folder, ``run.json`` or suite folder.
    """
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("run_dirs: give at least one run folder")
    if len({d.resolve() for d in dirs}) < len(dirs):
        raise ValueError("run_dirs: the same run folder is given twice")
    runs = [load_run(d, n) for d, n in zip(dirs, _unique_names(dirs, names), strict=True)]
    suites = [_suite_of(r) for r in runs]
    if len({h for _, _, h in suites}) > 1:
        said = "; ".join(
            f"{r.path} (suite {r.meta.get('suite_name') or s[0]}, {s[2][:12]})"
            for r, s in zip(runs, suites, strict=True)
        )
        raise ValueError(f"runs of different suites cannot share a report: {said}")
    suite_dir, cases, _ = suites[0]
    name = read_suite_meta(suite_dir).get("name") or suite_dir.name
    tables = build_tables(cases, {r.name: r.judges for r in runs})
    return Report(suite_dir, str(name), cases, runs, tables)


# ------------------------------------------------------------------------------------------------ images


def _data_uri(path: Path, cache: dict[Path, tuple[str | None, str, bool]]) -> tuple[str | None, str, bool]:
    """``(data: URI, "WxH", tiny)`` of a thumbnail of ``path``, or ``(None, reason, False)`` when it cannot be read;
    ``tiny`` images (a side of 64 px or less) are shown enlarged with crisp pixels."""
    from dreamomni2.images import ImageLoadError, load_image
    from dreamomni2.limits import MAX_REPORT_THUMB_SIDE

    if path in cache:
        return cache[path]
    try:
        image = load_image(path)
    except ImageLoadError as e:
        cache[path] = (None, str(e), False)
        return cache[path]
    w, h = image.size
    image.thumbnail((MAX_REPORT_THUMB_SIDE, MAX_REPORT_THUMB_SIDE))
    buf = io.BytesIO()
    png = max(image.size) <= PNG_MAX_SIDE
    image.save(buf, format="PNG" if png else "JPEG", quality=JPEG_QUALITY)
    uri = f"data:image/{'png' if png else 'jpeg'};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
    cache[path] = (uri, f"{w}x{h}", max(w, h) <= 64)
    return cache[path]


def _img(path: Path | None, label: str, cache: dict) -> str:
    e = html.escape
    if path is None:
        return f'<div class="noimg">{e(label)}</div>'
    uri, note, tiny = _data_uri(path, cache)
    if uri is None:
        return f'<div class="noimg" title="{e(note)}">{e(label)}: unreadable</div>'
    return (
        f'<figure><img{" class=px" if tiny else ""} src="{uri}" alt="{e(label)}" title="{e(f"{label} · {note}")}">'
        f"<figcaption>{e(label)}</figcaption></figure>"
    )


def _file_img(path: Path, label: str, cache: dict) -> str:
    """:func:`_img` of a file, or a ``"<label> missing"`` box when there is no such file."""
    return _img(path, label, cache) if path.is_file() else _img(None, f"{label} missing", cache)


# ------------------------------------------------------------------------------------------------ page parts


def _metrics(report: Report) -> dict[str, list[str]]:
    """Each judge's metrics (:func:`~dreamomni2.bench.tables.judge_metrics` over every run's verdicts), judges in
    first-seen order."""
    seen: dict[str, list[Verdict]] = {}
    for run in report.runs:
        for judge, verdicts in run.judges.items():
            seen.setdefault(judge, []).extend(verdicts.values())
    return {j: judge_metrics(vs) for j, vs in seen.items()}


def _table_html(table: Table, note: bool) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{e(c)}</{'th' if i == 0 else 'td'}>"
                                    for i, c in enumerate(row)) + "</tr>" for row in table.rows)  # fmt: skip
    foot = f'<p class="note">{e(table.footnote)}</p>' if note and table.footnote else ""
    caption = f"<caption>{e(table.title)}</caption>"
    return f'<table class="stats">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}'


def _tables_html(report: Report) -> str:
    if not report.tables:
        return '<p class="note">No judgements yet: run <code>dreamomni2 bench judge RUN_DIR --judge SPEC</code>.</p>'
    main = [t for t in report.tables if t.kind == "task"]
    more = [t for t in report.tables if t.kind != "task"]
    parts = [_table_html(t, note=False) for t in main]
    notes = list(dict.fromkeys(t.footnote for t in report.tables if t.footnote))
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    extra = "".join(_table_html(t, note=False) for t in more)
    parts.append(f"<details><summary>By sub-category and by image count</summary>{extra}</details>")
    return '<section id="tables">' + "".join(parts) + "</section>"


def _runs_html(report: Report) -> str:
    e = html.escape
    rows = []
    for run in report.runs:
        model = run.meta.get("model") or {}
        model_text = model.get("path") or model.get("name") or json.dumps(model, sort_keys=True) if model else "-"
        settings = json.dumps(run.meta.get("settings") or {}, sort_keys=True)
        judged = ", ".join(run.judges) or "none"
        rows.append(f"<tr><th>{e(run.name)}</th><td>{len(run.records)}</td><td>{e(str(model_text))}</td>"
                    f"<td><code>{e(settings)}</code></td><td>{e(judged)}</td></tr>")  # fmt: skip
    head = "<tr><th>Run</th><th>Records</th><th>Model</th><th>Settings</th><th>Judges</th></tr>"
    return f'<table class="runs"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _select(sel_id: str, label: str, options: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    opts = "".join(f'<option value="{e(v)}">{e(t)}</option>' for v, t in options)
    return f'<label>{e(label)} <select id="{e(sel_id)}" data-filter>{opts}</select></label>'


def _verdict_options(runs: Sequence[RunData]) -> list[tuple[str, str]]:
    opts = [("", "any")]
    for what in ("pass", "fail", "unjudged"):
        if len(runs) == 1:
            opts.append((f"0:{what}", what))
        else:
            opts.append((f"all:{what}", f"{what} in every run"))
            opts += [(f"{r}:{what}", f"{what} in {run.name}") for r, run in enumerate(runs)]
    if len(runs) > 1:
        opts.append(("differ:", "runs differ"))
    return opts


def _filters_html(report: Report, rate: list[str], scores: list[tuple[str, str]]) -> str:
    cases = report.cases
    subs = sorted({c.subcategory or "(none)" for c in cases})
    counts = sorted({c.n_images for c in cases})
    parts = [
        _select(
            "f-task", "Task", [("", "any"), *((t, t) for t in ("edit", "generate") if any(c.task == t for c in cases))]
        ),
        _select("f-category", "Category", [("", "any"), ("concrete", "concrete"), ("abstract", "abstract")]),
        _select("f-sub", "Sub-category", [("", "any"), *((s, s) for s in subs)]),
        _select("f-images", "Images", [("", "any"), *((str(k), str(k)) for k in counts)]),
    ]
    parts += [_select(f"f-v-{j}", f"Verdict · {judge}", _verdict_options(report.runs)) for j, judge in enumerate(rate)]
    sorts = [("suite", "suite order"), ("id", "id")] + [
        (f"v:{j}", f"verdict · {judge}") for j, judge in enumerate(rate)
    ]
    for m, (judge, name) in enumerate(scores):
        sorts += [(f"s:{m}:{r}", f"{name} · {judge} · {run.name}") for r, run in enumerate(report.runs)]
    parts.append(_select("sort", "Sort by", sorts))
    parts.append(_select("order", "Order", [("asc", "ascending"), ("desc", "descending")]))
    parts.append(f'<span id="count"><b id="shown">{len(cases)}</b> of {len(cases)} cases</span>')
    return '<nav id="filters">' + "".join(parts) + "</nav>"


def _verdict_html(judge: str, v: Verdict | None, metrics: list[str]) -> str:
    e = html.escape
    names = [m for m in metrics if m != SUCCESS]
    values = ", ".join(
        f"{n} {x:.3f}" if x is not None else f"{n} -" for n, x in ((n, score_value(v, n)) for n in names)
    )
    if SUCCESS in metrics:
        state = outcome(v)
        text = f"{state} · {values}" if names and v is not None and v.judged else state
    else:  # a score judge: its scores
        state = "score" if v is not None and v.judged else "unjudged"
        text = values
    reason = "no verdict" if v is None else v.reason
    raw = f"<details><summary>raw</summary><pre>{e(v.raw)}</pre></details>" if v is not None and v.raw else ""
    return (f'<li class="v {state}"><span class="judge">{e(judge)}</span> <b>{e(text)}</b>'
            f' <span class="reason">{e(reason)}</span>{raw}</li>')  # fmt: skip


def _run_cell(run: RunData, case: SuiteCase, judges: list[str], metrics: dict[str, list[str]], cache: dict) -> str:
    e = html.escape
    rec = run.records.get(case.id)
    if rec is None:
        body = '<div class="noimg">not run</div>'
    elif rec.status != "ok" or not rec.output:
        body = f'<div class="noimg">error</div><p class="err">{e(rec.error or rec.status)}</p>'
    else:
        body = _file_img(run.path / rec.output, "output", cache)
    if rec is not None and rec.prompt:
        label = "planned prompt" if rec.planned else "prompt"
        body += f'<p class="prompt"><span class="lbl">{label}</span> {e(rec.prompt)}</p>'
    if rec is not None and "seed" in rec.settings:
        body += f'<p class="meta">seed {e(str(rec.settings["seed"]))}</p>'
    items = "".join(_verdict_html(j, run.judges.get(j, {}).get(case.id), metrics[j])
                    for j in judges)  # fmt: skip
    return f'<div class="run"><div class="rname">{e(run.name)}</div>{body}<ul class="verdicts">{items}</ul></div>'


def _case_attrs(report: Report, i: int, case: SuiteCase, rate: list[str], scores: list[tuple[str, str]]) -> str:
    e = html.escape
    attrs = {"data-order": str(i), "data-id": case.id, "data-task": case.task, "data-category": case.category,
             "data-sub": case.subcategory or "(none)", "data-images": str(case.n_images)}  # fmt: skip
    for j, judge in enumerate(rate):
        for r, run in enumerate(report.runs):
            attrs[f"data-v-{j}-{r}"] = outcome(run.judges.get(judge, {}).get(case.id))
    for m, (judge, name) in enumerate(scores):
        for r, run in enumerate(report.runs):
            value = score_value(run.judges.get(judge, {}).get(case.id), name)
            if value is not None:
                attrs[f"data-s-{m}-{r}"] = repr(value)
    return " ".join(f'{k}="{e(v)}"' for k, v in attrs.items())


def _case_html(report: Report, i: int, case: SuiteCase, ctx: dict[str, Any]) -> str:
    e = html.escape
    tags = [case.task, case.category, case.subcategory or "(none)", f"{case.n_images} image{'s' * (case.n_images > 1)}"]
    head = f'<span class="cid">{e(case.id)}</span>' + "".join(f'<span class="tag">{e(t)}</span>' for t in tags)
    paths = case.image_paths(report.suite_dir)
    inputs = "".join(_file_img(p, f"image {k}", ctx["cache"]) for k, p in enumerate(paths, 1))
    runs = "".join(_run_cell(r, case, ctx["judges"], ctx["metrics"], ctx["cache"]) for r in report.runs)
    notes = f'<p class="notes">{e(case.notes)}</p>' if case.notes else ""
    return (
        f'<article class="case" {_case_attrs(report, i, case, ctx["rate"], ctx["scores"])}>'
        f'<div class="head">{head}</div><p class="instr">{e(case.instruction)}</p>{notes}'
        f'<div class="grid" style="--runs:{len(report.runs)}"><div class="inputs">{inputs}</div>{runs}</div></article>'
    )


# ------------------------------------------------------------------------------------------------ the page

_CSS = """
:root{--fg:#1d232a;--muted:#5d6873;--line:#dde2e7;--bg:#f6f7f9;--pass:#1a7f37;--fail:#c62828;--unj:#8a6d00}
*{box-sizing:border-box}
body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:12px 20px 0}
h1{font-size:18px;margin:0 0 2px}
.sub{color:var(--muted);margin:0}
.top{padding:0 20px}
table{border-collapse:collapse;background:#fff;margin:8px 12px 6px 0;font-size:12px}
table.stats{display:inline-table;vertical-align:top}
caption{text-align:left;font-weight:600;padding:2px 0 4px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:right;white-space:nowrap}
th:first-child{text-align:left}
thead th{background:#eef1f4;text-align:center}
table.runs td{text-align:left;white-space:normal;max-width:520px}
code{font:11px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.note{color:var(--muted);font-size:12px;margin:2px 0 6px}
summary{cursor:pointer;color:#2456a6;margin:4px 0}
nav#filters{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;
 padding:8px 20px;background:#fff;border-top:1px solid var(--line);border-bottom:1px solid var(--line);margin-top:8px}
nav label{color:var(--muted)}
select{font:inherit;padding:1px 2px}
#count{margin-left:auto}
main{padding:10px 20px}
article.case{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 10px;margin:0 0 10px}
.head{display:flex;gap:6px;align-items:center;flex-wrap:wrap}
.cid{font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.tag{background:#eef1f4;border-radius:3px;padding:0 6px;color:var(--muted);font-size:11px}
.instr{margin:4px 0 6px;font-size:14px;word-break:break-word}
.notes{margin:0 0 6px;color:var(--muted)}
.grid{display:grid;grid-template-columns:minmax(110px,auto) repeat(var(--runs),minmax(170px,1fr));gap:12px;
 align-items:start}
.inputs{display:flex;gap:6px;flex-wrap:wrap;max-width:420px}
.run{border-left:3px solid var(--line);padding-left:8px;min-width:0}
.rname{font-weight:600;font-size:12px;margin-bottom:2px}
figure{margin:0}
figure img{display:block;width:96px;height:96px;object-fit:contain;background:#eee;border-radius:3px}
.run figure img{width:128px;height:128px}
img.px{image-rendering:pixelated}
figcaption{font-size:11px;color:var(--muted)}
.noimg{width:96px;height:96px;display:flex;align-items:center;justify-content:center;background:#f1f1f1;
 color:var(--muted);font-size:11px;text-align:center;border:1px dashed var(--line)}
.prompt{margin:4px 0;font-size:12px;word-break:break-word}
.lbl,.meta{color:var(--muted);font-size:11px}
.meta{margin:0}
.err{color:var(--fail);margin:4px 0}
ul.verdicts{list-style:none;padding:0;margin:4px 0 0}
li.v{margin:3px 0;font-size:12px;word-break:break-word}
li.v b{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-weight:600}
li.pass b{background:var(--pass)} li.fail b{background:var(--fail)} li.unjudged b{background:var(--unj)}
li.score b{background:#3b5b92}
.judge{color:var(--muted)}
pre{white-space:pre-wrap;max-height:160px;overflow:auto;background:#f4f4f4;padding:4px;font-size:11px;margin:2px 0}
[hidden]{display:none!important}
#none{padding:20px;color:var(--muted)}
"""

_JS = """
(() => {
  const $ = (id) => document.getElementById(id);
  const R = Number(document.body.dataset.runs);
  const list = $("cases");
  const cases = Array.from(list.querySelectorAll("article.case"));
  const verdictSelects = Array.from(document.querySelectorAll('select[id^="f-v-"]'));
  const rank = { pass: 2, fail: 1, unjudged: 0 };
  const outcomes = (el, j) => Array.from({ length: R }, (_, r) => el.getAttribute(`data-v-${j}-${r}`));
  function verdictOk(el, j, value) {
    if (!value) return true;
    const [who, what] = value.split(":");
    const o = outcomes(el, j);
    if (who === "all") return o.every((x) => x === what);
    if (who === "differ") return new Set(o).size > 1;
    return o[Number(who)] === what;
  }
  function keep(el) {
    const same = (id, attr) => !$(id).value || el.getAttribute(attr) === $(id).value;
    if (!(same("f-task", "data-task") && same("f-category", "data-category"))) return false;
    if (!(same("f-sub", "data-sub") && same("f-images", "data-images"))) return false;
    return verdictSelects.every((s) => verdictOk(el, s.id.slice(4), s.value));
  }
  function key(el, how) {
    if (how.startsWith("v:")) return outcomes(el, how.slice(2)).reduce((a, x) => a + (rank[x] || 0), 0);
    const [, m, r] = how.split(":");
    const v = el.getAttribute(`data-s-${m}-${r}`);
    return v === null ? null : parseFloat(v);
  }
  const byId = (a, b) => a.dataset.id.localeCompare(b.dataset.id, undefined, { numeric: true });
  const bySuite = (a, b) => Number(a.dataset.order) - Number(b.dataset.order);
  function update() {
    const how = $("sort").value;
    const sign = $("order").value === "desc" ? -1 : 1;
    const sorted = cases.slice().sort((a, b) => {
      if (how === "suite") return sign * bySuite(a, b);
      if (how === "id") return sign * byId(a, b);
      const ka = key(a, how), kb = key(b, how);
      if (ka !== kb) return ka === null ? 1 : kb === null ? -1 : sign * (ka - kb);
      return bySuite(a, b);
    });
    let shown = 0;
    for (const el of sorted) {
      const ok = keep(el);
      el.hidden = !ok;
      shown += ok ? 1 : 0;
      list.appendChild(el);
    }
    $("shown").textContent = String(shown);
    $("none").hidden = shown > 0;
  }
  document.querySelectorAll("select[data-filter]").forEach((s) => s.addEventListener("change", update));
  update();
})();
"""


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(_JS.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"


def render_html(report: Report, title: str | None = None) -> str:
    """The report page as one HTML string (see the module docstring for what it shows).

    Args:
        report: from :func:`load_report`.
        title: the page title (default: ``"<suite name>: <run names>"``).

    Returns:
        The page; every text escaped, every image a ``data:`` URI, nothing fetched from anywhere.
    """
    e = html.escape
    metrics = _metrics(report)
    rate = [j for j, ms in metrics.items() if SUCCESS in ms]  # pass/fail judges
    scores = [(j, m) for j, ms in metrics.items() for m in ms if m != SUCCESS]  # (judge, score name) pairs
    ctx = {"cache": {}, "judges": list(metrics), "metrics": metrics, "rate": rate, "scores": scores}
    title = title or f"{report.suite_name}: {', '.join(r.name for r in report.runs)}"
    cases = "".join(_case_html(report, i, c, ctx) for i, c in enumerate(report.cases))
    sub = f"suite {report.suite_name} · {len(report.cases)} cases · {len(report.runs)} run(s) · {len(metrics)} judge(s)"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{e(_csp())}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head>\n"
        f'<body data-runs="{len(report.runs)}"><header><h1>{e(title)}</h1><p class="sub">{e(sub)}</p></header>'
        f'<div class="top">{_runs_html(report)}{_tables_html(report)}</div>'
        f"{_filters_html(report, rate, scores)}"
        f'<main id="cases">{cases}</main><p id="none" hidden>No case matches these filters.</p>'
        f"<script>{_JS}</script></body></html>\n"
    )


def write_report(
    run_dirs: Sequence[str | Path],
    out_html: str | Path,
    names: Sequence[str] | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Report:
    """Read runs of one suite and write their report as one self-contained HTML file, atomically.

    Args:
        run_dirs: the run folders, in column order.
        out_html: the HTML file to write.
        names: run labels (default: folder names).
        title: the page title.
        overwrite: replace an existing ``out_html`` (else it is refused).

    Returns:
        The :class:`Report` (its ``tables`` give the markdown, through :func:`dreamomni2.bench.tables.tables_markdown`).

    Raises:
        FileExistsError: ``out_html`` exists and ``overwrite`` is False.
        ValueError, FileNotFoundError: as :func:`load_report`.
    """
    from dreamomni2.io import atomic_write_text

    out = Path(out_html)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass overwrite=True to replace it)")
    report = load_report(run_dirs, names)
    atomic_write_text(out, render_html(report, title))
    logger.info("wrote %s (%d cases, %d runs)", out, len(report.cases), len(report.runs))
    return report
