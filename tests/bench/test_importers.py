"""bench import: the fake DreamOmni2Bench (both trees, malformed folders), release examples, manifests, mini."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dreamomni2.bench.importers import import_suite, natural_key
from dreamomni2.bench.suite import read_suite, read_suite_meta
from dreamomni2.cli import main
from dreamomni2.images import load_image
from tests.bench.fake_bench import make_fake_dreamomni2bench, make_mini_suite


@pytest.fixture(scope="module")
def fake_bench(tmp_path_factory) -> dict:
    return make_fake_dreamomni2bench(tmp_path_factory.mktemp("fake") / "DreamOmni2Bench")


@pytest.fixture(scope="module")
def fake_suite(fake_bench, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("suites") / "do2"
    return out, import_suite("dreamomni2bench", fake_bench["root"], out)


def test_dreamomni2bench_imports_good_cases_and_reports_each_skip(fake_bench, fake_suite):
    out, report = fake_suite
    assert sorted(report.imported) == sorted(fake_bench["cases"])
    assert report.imported[:2] == ["edit/add/1", "edit/add/2"]  # editing tree first, numbers in natural order
    assert report.imported.index("edit/replace/1") < report.imported.index("edit/replace/10")
    skipped = dict(report.skipped)
    assert sorted(skipped) == sorted(fake_bench["skipped"])
    for folder, word in fake_bench["skipped"].items():
        assert word in skipped[folder], (folder, skipped[folder])
    assert "editing_benchmark/add/1: ignored notes.md" in report.notes
    meta = read_suite_meta(out)
    assert meta["n_cases"] == 12 and len(meta["skipped"]) == 5 and meta["source"].startswith("dreamomni2bench:")


def test_dreamomni2bench_cases_keep_order_colours_sizes_and_categories(fake_bench, fake_suite):
    out, _ = fake_suite
    cases = {c.id: c for c in read_suite(out)}
    for case_id, want in fake_bench["cases"].items():
        case = cases[case_id]
        assert (case.task, case.category, case.subcategory) == (want["task"], want["category"], want["subcategory"])
        assert case.instruction == want["instruction"] and case.n_images == want["n_images"]
        for path, colour, size in zip(case.image_paths(out), want["colors"], want["sizes"], strict=True):
            im = load_image(path)
            assert path.suffix == ".png" and im.size == size
            assert np.abs(np.asarray(im, dtype=int) - colour).max() <= 6, (case_id, path)
    counts = {(c.task, c.category) for c in cases.values()}
    assert counts == {("edit", "concrete"), ("edit", "abstract"), ("generate", "concrete"), ("generate", "abstract")}
    assert sorted({c.n_images for c in cases.values()}) == [1, 2, 3, 4, 5]


def test_dreamomni2bench_concrete_override_and_refusals(fake_bench, tmp_path):
    report = import_suite("dreamomni2bench", fake_bench["root"], tmp_path / "s", concrete=["style"])
    cats = {c.id: c.category for c in read_suite(tmp_path / "s")}
    assert len(report.imported) == 12
    assert cats["edit/style/1"] == "concrete" and cats["edit/add/1"] == "abstract"
    with pytest.raises(FileExistsError, match="not empty; pass --force"):
        import_suite("dreamomni2bench", fake_bench["root"], tmp_path / "s")
    with pytest.raises(ValueError, match="no editing_benchmark or generation_benchmark"):
        import_suite("dreamomni2bench", tmp_path / "s", tmp_path / "t")
    assert not (tmp_path / "t").exists()  # nothing half-written
    one_tree = import_suite("dreamomni2bench", fake_bench["root"] / "generation_benchmark", tmp_path / "g")
    assert sorted(one_tree.imported) == sorted(k for k in fake_bench["cases"] if k.startswith("generate/"))
    assert sorted(w for w, _ in one_tree.skipped) == ["object/9", "style/9"]


@pytest.mark.release_examples
def test_release_examples_import_in_order_with_sizes(release_examples, tmp_path):
    rows = [json.loads(x) for x in (release_examples / "cases.jsonl").read_text().splitlines() if x.strip()]
    assert len(rows) >= 3
    rows = [rows[0], rows[2], rows[-1]]  # three rows (a copy with absolute paths): big photos are slow to re-encode
    absolute = [{**r, "images": [str(release_examples / p) for p in r["images"]]} for r in rows]
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in absolute))
    report = import_suite("release", tmp_path / "cases.jsonl", tmp_path / "rel")
    cases = read_suite(tmp_path / "rel")
    assert len(cases) == len(rows) and report.skipped == []
    for case, row in zip(cases, rows, strict=True):
        assert (case.task, case.category, case.instruction) == (row["task"], row["category"], row["instruction"])
        sizes = [load_image(p).size for p in case.image_paths(tmp_path / "rel")]
        assert sizes == [tuple(s) for s in row["sizes"]]
        assert row["release_output"] in case.notes


def test_manifest_import_keeps_mini_truth_and_skips_bad_rows(tmp_path):
    from dreamomni2.bench.suites import mini_suite
    from dreamomni2.mini.manifest import write_cases

    minis = mini_suite(4, exclude=frozenset())
    manifest = write_cases(minis, tmp_path / "data")
    with manifest.open("a", encoding="utf-8") as f:
        f.write('{"task": "edit", "images": [], "instruction": "x", "target": "targets/000000.png"}\n')
        f.write("not json\n")
        f.write('{"task": "generate", "images": [], "instruction": "a cat", "target": "targets/000000.png"}\n')
    report = import_suite("manifest", manifest, tmp_path / "suite")
    cases = read_suite(tmp_path / "suite")
    assert [c.id for c in cases] == [f"{m.task}/{i}" for i, m in enumerate(minis)]
    assert [c.truth for c in cases] == [m.to_dict() for m in minis]
    assert [c.subcategory for c in cases] == [m.kind for m in minis]
    assert [w for w, _ in report.skipped] == ["line 5", "line 6", "line 7"]
    assert "at least the image to edit" in report.skipped[0][1] and "JSON" in report.skipped[1][1]
    assert "no input images" in report.skipped[2][1]


def test_manifest_without_category_takes_the_default(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "a.png")
    row = {"task": "edit", "images": ["a.png"], "instruction": "make it red", "target": "a.png"}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    report = import_suite("manifest", tmp_path / "m.jsonl", tmp_path / "s", category="abstract")
    (case,) = read_suite(tmp_path / "s")
    assert (case.id, case.category, case.truth) == ("edit/1", "abstract", None)
    assert report.notes == ["line 1: no category; taken as abstract"]


def test_mini_import_renders_images_and_stores_truth(tmp_path):
    from dreamomni2.bench.suites import mini_suite
    from dreamomni2.mini.scene import render

    make_mini_suite(tmp_path / "mini", n=6)
    cases = read_suite(tmp_path / "mini")
    minis = mini_suite(6)
    assert [c.id for c in cases] == [f"mini/{i:04d}" for i in range(6)]
    for case, m in zip(cases, minis, strict=True):
        assert (case.task, case.category, case.subcategory, case.instruction) == (
            m.task, m.category, m.kind, m.instruction)  # fmt: skip
        assert case.truth == m.to_dict()
        got = [np.asarray(load_image(p)) for p in case.image_paths(tmp_path / "mini")]
        assert all(np.array_equal(g, np.asarray(render(s))) for g, s in zip(got, m.images, strict=True))


def test_cli_import_prints_skips_and_refuses_bad_input(fake_bench, tmp_path, capsys):
    assert main(["bench", "import", "dreamomni2bench", str(fake_bench["root"]), "-o", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "imported 12 case(s)" in out and "skipped 5:" in out and "editing_benchmark/add/9: no instruction.txt" in out
    for argv, needle in [
        (["dreamomni2bench", str(fake_bench["root"]), "-o", str(tmp_path / "s")], "not empty; pass --force"),
        (["dreamomni2bench", str(tmp_path / "missing"), "-o", str(tmp_path / "x")], "no such file or folder"),
        (["release", "-o", str(tmp_path / "x")], "name the source"),
        (["mini", "other", "-o", str(tmp_path / "x")], "the source is the suite's name"),
    ]:
        assert main(["bench", "import", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
    assert main(["bench", "import", "mini", "-o", str(tmp_path / "s"), "--n", "2", "--force"]) == 0
    assert len(read_suite(tmp_path / "s")) == 2


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=20, unique=True))
def test_natural_key_orders_numbered_names_by_number(nums):
    names = [f"ref_{n}.jpg" for n in nums]
    assert sorted(names, key=natural_key) == [f"ref_{n}.jpg" for n in sorted(nums)]
