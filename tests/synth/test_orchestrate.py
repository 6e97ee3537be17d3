"""The stage machinery: resume after a kill, sharding, rejection counts, datasets in and out, the filters."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from dreamomni2.synth.filters import (
    REASON_IDENTICAL,
    REASON_UNRELATED,
    REASON_VLM,
    QualityFilter,
    parse_yes_no,
    pixel_similarity,
    planner_verifier,
)
from dreamomni2.synth.orchestrate import (
    FAULT_KILL_ENV,
    ItemResult,
    Shard,
    current_shard,
    finished_records,
    format_report,
    item_folder,
    read_items,
    run_stage,
    save_dataset,
)

ROOT = Path(__file__).resolve().parents[2]


def toy_process(item: dict, index: int, out: Path) -> ItemResult:
    """A deterministic stage: one flat image per item; items whose id starts with 'bad' are rejected."""
    from dreamomni2.images import save_image

    if item["id"].startswith("bad"):
        return ItemResult(rejections=[item.get("why", REASON_IDENTICAL)], info={"seed": index})
    folder = item_folder(out, index, item["id"])
    save_image(Image.new("RGB", (8, 8), (index * 20 % 256, 0, 0)), folder / "target.png")
    rel = folder.relative_to(out).as_posix()
    row = {"task": "generate", "images": [], "instruction": f"item {item['id']}", "target": f"{rel}/target.png"}
    return ItemResult(rows=[row], info={"seed": index})


ITEMS = [{"id": str(i)} for i in range(5)] + [{"id": "bad-a", "why": REASON_UNRELATED}, {"id": "bad-b"}]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_stage_writes_manifest_and_counts_rejections(tmp_path):
    report = run_stage("toy", read_items(ITEMS), toy_process, tmp_path, shard=Shard(), progress=False)
    assert (report.items, report.kept, report.rows) == (7, 5, 5)
    assert report.rejected == {REASON_IDENTICAL: 1, REASON_UNRELATED: 1}
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [r["instruction"] for r in rows] == [f"item {i}" for i in range(5)]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["rejected"] == {"near-identical": 1, "unrelated": 1} and saved["kept"] == 5
    assert (
        format_report(report) == "toy: 7 items, 5 with rows (5 rows), 2 rows rejected (near-identical 1, unrelated 1)"
    )
    record = finished_records(tmp_path, "toy")["3"]
    assert (record["info"], record["settings"], record["status"], record["index"]) == ({"seed": 3}, {}, "kept", 3)


def test_finished_items_are_skipped(tmp_path):
    run_stage("toy", read_items(ITEMS), toy_process, tmp_path, shard=Shard(), progress=False)

    def refuse(item, index, out):
        raise AssertionError(f"item {item['id']} ran again")

    again = run_stage("toy", read_items(ITEMS), refuse, tmp_path, shard=Shard(), progress=False)
    assert (again.items, again.kept) == (7, 5)


def test_other_settings_are_refused(tmp_path):
    run_stage("toy", read_items(ITEMS), toy_process, tmp_path, shard=Shard(), settings={"seed": 0}, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        run_stage("toy", read_items(ITEMS), toy_process, tmp_path, shard=Shard(), settings={"seed": 1}, progress=False)


def test_two_shards_merge_to_the_single_shard_output(tmp_path):
    items = read_items(ITEMS)
    one, two = tmp_path / "one", tmp_path / "two"
    run_stage("toy", items, toy_process, one, shard=Shard(0, 1), progress=False)
    assert run_stage("toy", items, toy_process, two, shard=Shard(1, 2), progress=False) is None  # rank 0 not done
    report = run_stage("toy", items, toy_process, two, shard=Shard(0, 2), progress=False)
    assert report.kept == 5
    assert (two / "manifest.jsonl").read_bytes() == (one / "manifest.jsonl").read_bytes()
    assert _tree(two) == _tree(one) and len(_tree(one)) == 5
    ranks = {r["id"]: r["rank"] for r in finished_records(two, "toy").values()}
    assert ranks == {it["id"]: i % 2 for i, it in enumerate(items)}


def test_shard_from_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert current_shard() == Shard(1, 3)
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="RANK=.3. WORLD_SIZE=.3.: need 0 <= RANK < WORLD_SIZE"):
        current_shard()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x'"):
        current_shard()


_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from synth.test_orchestrate import ITEMS, toy_process
from dreamomni2.synth.orchestrate import Shard, read_items, run_stage
run_stage("toy", read_items(ITEMS), toy_process, {out!r}, shard=Shard(), progress=False)
"""


def test_resume_after_a_kill_loses_only_the_item_in_flight(tmp_path):
    out, ref = tmp_path / "run", tmp_path / "ref"
    script = tmp_path / "stage.py"
    script.write_text(_SCRIPT.format(tests=str(ROOT / "tests"), out=str(out)))
    env = {**os.environ, FAULT_KILL_ENV: "3"}
    killed = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr.decode()[-500:]
    assert sorted(finished_records(out, "toy")) == ["0", "1", "2"]  # item 3's files were saved, its record was not
    assert (item_folder(out, 3, "3") / "target.png").is_file() and not (out / "manifest.jsonl").exists()
    env.pop(FAULT_KILL_ENV)
    subprocess.run([sys.executable, str(script)], env=env, check=True, capture_output=True, timeout=60)
    run_stage("toy", read_items(ITEMS), toy_process, ref, shard=Shard(), progress=False)
    assert (out / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()
    records = [
        json.loads(line) for p in (out / ".synth" / "toy").glob("rank*.jsonl") for line in p.read_text().splitlines()
    ]
    assert sorted(r["id"] for r in records) == sorted(it["id"] for it in ITEMS)  # each item recorded once


def test_torn_record_line_is_dropped_and_redone(tmp_path):
    run_stage("toy", read_items(ITEMS[:3]), toy_process, tmp_path, shard=Shard(), progress=False)
    log = next((tmp_path / ".synth" / "toy").glob("rank*.jsonl"))
    log.write_bytes(log.read_bytes()[:-10])  # a crash mid-append tore the last record
    assert sorted(finished_records(tmp_path, "toy")) == ["0", "1"]
    report = run_stage("toy", read_items(ITEMS[:3]), toy_process, tmp_path, shard=Shard(), progress=False)
    assert report.kept == 3 and len(log.read_text().splitlines()) == 3


def test_datasets_in_and_out(tmp_path):
    datasets = pytest.importorskip("datasets")
    src = tmp_path / "items_ds"
    datasets.Dataset.from_list([{"id": f"x{i}", "note": "n"} for i in range(3)]).save_to_disk(str(src))
    items = read_items(src)
    assert [it["id"] for it in items] == ["x0", "x1", "x2"]
    out = tmp_path / "out"
    run_stage("toy", items, toy_process, out, shard=Shard(), progress=False, dataset=True)
    back = [dict(r) for r in datasets.load_from_disk(str(out / "dataset"))]
    assert back == [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    parquet = tmp_path / "items.parquet"
    datasets.Dataset.from_list([{"id": 7, "prompt": "a"}]).to_parquet(str(parquet))
    assert read_items(parquet) == [{"id": "7", "prompt": "a"}]


def test_save_dataset_keeps_every_rows_keys(tmp_path):
    datasets = pytest.importorskip("datasets")
    save_dataset([{"a": 1}, {"a": 2, "b": "x"}], tmp_path / "ds")
    assert [dict(r) for r in datasets.load_from_disk(str(tmp_path / "ds"))] == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]


def test_read_items_errors_name_the_row(tmp_path):
    bad = tmp_path / "items.jsonl"
    bad.write_text('{"id": "a"}\n{"id": "a"}\n')
    with pytest.raises(ValueError, match=r"item 2: duplicate id 'a' \(also item 1\)"):
        read_items(bad)
    bad.write_text('{"id": "a"}\nnot json\n')
    with pytest.raises(ValueError, match=r"items.jsonl:2: not valid JSON"):
        read_items(bad)
    with pytest.raises(ValueError, match="item 1: id must be"):
        read_items([{"id": ""}])
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_items(tmp_path / "missing.jsonl")
    assert [it["id"] for it in read_items([{}, {"x": 1}])] == ["000000", "000001"]


def test_similarity_and_filter_reasons():
    a = Image.new("RGB", (32, 32), (200, 0, 0))
    assert pixel_similarity(a, a.copy()) == 1.0
    assert pixel_similarity(Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 255, 255))) == 0.0
    half = np.zeros((32, 32, 3), np.uint8)
    half[:, :16] = 255
    assert pixel_similarity(Image.fromarray(half), Image.new("RGB", (32, 32))) == pytest.approx(0.5)
    f = QualityFilter(identical=0.99, unrelated=0.6)
    assert f.pair(a, a)[0] == REASON_IDENTICAL
    assert f.pair(Image.fromarray(half), Image.new("RGB", (32, 32)))[0] == REASON_UNRELATED
    assert f.pair(a, Image.new("RGB", (32, 32), (200, 60, 0)))[0] is None
    assert f.ask([a], "q?", "kw") is None  # no VLM configured: no check
    with pytest.raises(ValueError, match="unrelated <= identical"):
        QualityFilter(identical=0.5, unrelated=0.6)


class _Stub:
    def __init__(self, reply):
        self.reply, self.asked = reply, []

    def generate_reply(self, images, instruction, task):
        self.asked.append(instruction)
        return self.reply


def test_planner_verifier_reads_yes_no():
    stub = _Stub("Yes, it does.")
    f = QualityFilter(verifier=planner_verifier(stub))
    assert f.ask([Image.new("RGB", (8, 8))], "Is it red?", "colour") is None
    assert stub.asked == ["Is it red? Answer yes or no."]
    assert QualityFilter(verifier=planner_verifier(_Stub("no"))).ask([], "q?", "k") == REASON_VLM
    assert QualityFilter(verifier=planner_verifier(_Stub("maybe"))).ask([], "q?", "k") == REASON_VLM


@given(st.sampled_from(["yes", "Yes", "YES", "no", "No"]), st.text(max_size=20))
def test_parse_yes_no_property(word, tail):
    reply = f"  **{word}** {tail}"
    assert parse_yes_no(reply) is (word.lower() == "yes")


@given(st.text(alphabet=st.characters(blacklist_categories=("L", "N")), max_size=10))
def test_parse_yes_no_without_answer(text):
    assert parse_yes_no(text) is None
