"""``make_pairs`` and ``dreamomni2 synth pairs`` on the tiny random model: files, records, resume, bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from dreamomni2.cli import main
from dreamomni2.synth import pairs as pairs_mod
from dreamomni2.synth.mixing import MixingConfig
from dreamomni2.synth.pairs import PairSettings, check_pair_row, make_pairs, read_pair_rows, read_records

ROWS = [
    {"id": "a", "source_prompt": "a red circle", "target_prompt": "a circle on sand", "keyword": "circle", "seed": 7},
    {"id": "b", "source_prompt": "a blue square", "target_prompt": "a square", "group": "g1"},
]
SETTINGS = PairSettings(steps=2, size=(32, 32), mixing=MixingConfig(blocks="single", rope="shifted"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    assert main(["make-tiny", str(folder)]) == 0
    return folder


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_make_pairs_writes_pairs_and_records(tiny_pipe, tmp_path):
    records = make_pairs(tiny_pipe, ROWS, tmp_path / "out", SETTINGS, progress=False)
    assert [r["id"] for r in records] == ["a", "b"]
    a, b = records
    assert (a["source_seed"], a["target_seed"], b["source_seed"], b["target_seed"]) == (7, 8, 2, 3)
    assert a["keyword"] == "circle" and b["keyword"] is None and b["meta"] == {"group": "g1"}
    mixing = {"blocks": "single", "steps": "all", "rope": "shifted", "enabled": True}
    assert a["settings"] == {"steps": 2, "guidance": 3.5, "size": [32, 32], "mixing": mixing}
    for rec in records:
        for key in ("source", "target"):
            with Image.open(tmp_path / "out" / rec[key]) as im:
                assert im.size == (32, 32)
    assert read_records(tmp_path / "out") == records
    src, tgt = (np.asarray(Image.open(tmp_path / "out" / a[k])) for k in ("source", "target"))
    assert np.abs(src.astype(int) - tgt.astype(int)).max() > 0


def test_resume_skips_finished_ids(tiny_pipe, tmp_path, monkeypatch):
    out = tmp_path / "out"
    make_pairs(tiny_pipe, ROWS[:1], out, SETTINGS, progress=False)
    drawn = []
    real = pairs_mod._draw_chunk
    monkeypatch.setattr(pairs_mod, "_draw_chunk", lambda s, chunk, *a: drawn.extend(r["id"] for _, r in chunk)
                        or real(s, chunk, *a))  # fmt: skip
    records = make_pairs(tiny_pipe, ROWS, out, SETTINGS, progress=False)
    assert drawn == ["b"] and [r["id"] for r in records] == ["a", "b"]
    assert make_pairs(tiny_pipe, ROWS, out, SETTINGS, progress=False) == records and drawn == ["b"]
    with pytest.raises(ValueError, match="was made with other settings"):
        make_pairs(tiny_pipe, ROWS, out, PairSettings(steps=3, size=(32, 32)), progress=False)
    make_pairs(tiny_pipe, ROWS, out, PairSettings(steps=3, size=(32, 32)), force=True, progress=False)
    assert drawn == ["b", "a", "b"] and {r["settings"]["steps"] for r in read_records(out)} == {3}


def test_foreign_files_in_a_pair_folder_are_refused(tiny_pipe, tmp_path):
    (tmp_path / "out" / "a").mkdir(parents=True)
    (tmp_path / "out" / "a" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        make_pairs(tiny_pipe, ROWS, tmp_path / "out", SETTINGS, progress=False)
    assert (tmp_path / "out" / "a" / "notes.txt").read_text() == "mine"
    make_pairs(tiny_pipe, ROWS[:1], tmp_path / "out", SETTINGS, force=True, progress=False)
    assert sorted(p.name for p in (tmp_path / "out" / "a").iterdir()) == ["source.png", "target.png"]


def test_cli_writes_and_resumes(tiny_dir, tmp_path, capsys):
    rows = _write_rows(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "pairs"
    argv = ["synth", "pairs", str(rows), "-o", str(out), "--model", str(tiny_dir), "--steps", "2", "--size", "32x32",
            "--mix-blocks", "double", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"wrote 2 pairs to {out} (0 already there)"
    recs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == ["a", "b"] and recs[0]["model"]["path"] == str(tiny_dir.resolve())
    assert recs[0]["settings"]["mixing"]["blocks"] == "double"
    assert set(recs[0]["model"]["weights"]["model"]) >= {"transformer/diffusion_pytorch_model.safetensors"}
    assert sorted(p.name for p in (out / "a").iterdir()) == ["source.png", "target.png"]
    _write_rows(rows, [*ROWS, {"id": "c", "source_prompt": "x", "target_prompt": "y"}])
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"wrote 1 pairs to {out} (2 already there)"


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", ":2: not valid JSON"),
        ('{"id": "x", "source_prompt": "s"}', ":2: 'target_prompt' must be a non-empty string"),
        ('{"id": "../up", "source_prompt": "s", "target_prompt": "t"}', ":2: 'id' must be a name"),
        ('{"id": "a", "source_prompt": "s", "target_prompt": "t"}', ":2: id 'a' repeats line 1"),
        ('{"id": "x", "source_prompt": "s", "target_prompt": "t", "seed": -1}', ":2: 'seed' must be an integer"),
        ("[1, 2]", ":2: expected a JSON object, got list"),
    ],
)
def test_cli_bad_row_one_line_exit_2(line, message, tiny_dir, tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(ROWS[0]) + "\n" + line + "\n", encoding="utf-8")
    assert main(["synth", "pairs", str(rows), "-o", str(tmp_path / "o"), "--model", str(tiny_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"rows.jsonl{message}" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mix-blocks", "triple"], "--mix-blocks: mix blocks 'triple': unknown block kind"),
        (["--mix-steps", "0.9-0.1"], "--mix-steps: mix steps '0.9-0.1'"),
        (["--mix-blocks", "double:4"], "index 4 is out of range (there are 1)"),
        (["--guidance", "nan"], "Request.guidance must be a finite number"),
        (["--rope", "diagonal"], "invalid choice: 'diagonal'"),
        (["-o", "{dir}/no/such"], "does not exist"),
    ],
)
def test_cli_bad_flags_exit_2(flags, message, tiny_dir, tmp_path, capsys):
    rows = _write_rows(tmp_path / "rows.jsonl", ROWS[:1])
    flags = [f.format(dir=tmp_path) for f in flags]
    argv = ["synth", "pairs", str(rows), "-o", str(tmp_path / "o"), "--model", str(tiny_dir), "--size", "32x32",
            "--steps", "1", "--quiet", *flags]  # fmt: skip
    with pytest.raises(SystemExit) if "invalid choice" in message else _nothing():
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_broken_records_file_is_named(tiny_pipe, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "pairs.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: not a pair record"):
        make_pairs(tiny_pipe, ROWS, tmp_path / "out", SETTINGS, progress=False)


def test_rows_api_checks():
    assert check_pair_row({"id": "x", "source_prompt": "s", "target_prompt": "t", "k": 1})["meta"] == {"k": 1}
    with pytest.raises(ValueError, match="row 3: 'keyword' must be a string"):
        check_pair_row({"id": "x", "source_prompt": "s", "target_prompt": "t", "keyword": 5}, "row 3")


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="e.jsonl: no rows"):
        read_pair_rows(tmp_path / "e.jsonl")
