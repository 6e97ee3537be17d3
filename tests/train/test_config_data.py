import json

import pytest
from PIL import Image

from dreamomni2.cli import main
from dreamomni2.train.config import ConfigError, load_config
from dreamomni2.train.data import bucket_batches, read_manifest, renumber_images

BASE = {"model": {"tiny": {}}, "data": {"manifest": "m.jsonl"}}


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key train\.lrr \(known: .*lr"):
        load_config(base={**BASE, "train": {"lrr": 1}})
    with pytest.raises(ConfigError, match="unknown key modle"):
        load_config(base={**BASE, "modle": {}})
    with pytest.raises(ConfigError, match=r"validation\.cases\[0\]\.imgs"):
        load_config(base={**BASE, "validation": {"cases": [{"imgs": []}]}})


def test_types_overrides_and_validation(tmp_path):
    cfg = load_config(base=BASE, overrides=["train.lr=3e-4", "network.rank=8", "train.gradient_checkpointing=true"])
    assert cfg.train.lr == 3e-4 and cfg.network.rank == 8 and cfg.train.gradient_checkpointing is True
    assert cfg.network.targets[:4] == ["to_q", "to_k", "to_v", "to_out.0"]
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer, got 'many'"):
        load_config(base=BASE, overrides=["train.steps=many"])
    with pytest.raises(ConfigError, match="network.type must be 'lora' or 'full'"):
        load_config(base=BASE, overrides=["network.type=dora"])
    with pytest.raises(ConfigError, match="model.id_policy: Unsupported id policy 'uno'"):
        load_config(base=BASE, overrides=["model.id_policy=uno"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(base=BASE, overrides=["train.lr"])
    p = tmp_path / "bad.yaml"
    p.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_example_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(f for f in root.glob("*.yaml") if not f.name.startswith("planner"))  # planner_*: train-planner
    assert len(files) >= 3
    for f in files:
        load_config(f)


def _img(path, size=(32, 32)):
    Image.new("RGB", size, (10, 20, 30)).save(path)


def test_manifest_problems_have_line_numbers(tmp_path, capsys):
    for n in ("a", "b", "t"):
        _img(tmp_path / f"{n}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows = [
        {"task": "edit", "images": ["a.png", "b.png"], "instruction": "put b in a", "target": "t.png"},  # 1 good
        {"task": "edit", "images": ["a.png", "missing.png"], "instruction": "x", "target": "t.png"},  # 2
        {"task": "edit", "images": ["broken.png"], "instruction": "x", "target": "t.png"},  # 3
        {"task": "generate", "images": ["a.png"] * 6, "instruction": "x", "target": "t.png"},  # 4
        {"task": "generate", "images": ["a.png"], "instruction": "  ", "target": "t.png"},  # 5
        {"task": "edit", "images": ["a.png", "b.png"], "instruction": "put b in a", "target": "t.png"},  # 6 dup
        "{not json",  # 7
        {"task": "inpaint", "images": [], "instruction": "x", "target": "t.png"},  # 8
        {"task": "edit", "images": [], "instruction": "x", "target": "t.png"},  # 9
        {"task": "generate", "images": [], "instruction": "a red cat", "target": "t.png"},  # 10 good
    ]
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    samples, problems = read_manifest(m)
    assert [s.line for s in samples] == [1, 10]
    got = {(p.line, p.message.split(" (")[0]) for p in problems}
    assert (2, f"missing image {tmp_path / 'missing.png'}") in got
    assert (3, f"unreadable image {tmp_path / 'broken.png'}") in got
    assert (4, "6 images, more than max_images=5") in got
    assert (5, "empty instruction") in got
    assert (6, "duplicate of line 1") in got
    assert (7, "not valid JSON") in got
    assert (8, "task must be 'edit' or 'generate', got 'inpaint'") in got
    assert (9, "an edit row needs at least the image to edit") in got
    assert main(["data", "check", str(m)]) == 1
    out = capsys.readouterr().out
    assert f"{m}:line 6: duplicate of line 1" in out
    assert out.strip().endswith("2 good rows, 8 bad rows of 10")


def test_renumber_and_buckets():
    assert renumber_images("the hat in image 2 on image 3, like Image 2", {2: 3, 3: 2}) == (
        "the hat in image 3 on image 2, like Image 3"
    )
    keys = [("a",)] * 5 + [("b",)] * 3
    e0 = list(bucket_batches(keys, 2, seed=0, epoch=0))
    assert e0 == list(bucket_batches(keys, 2, seed=0, epoch=0))
    assert e0 != list(bucket_batches(keys, 2, seed=0, epoch=1))
    assert len(e0) == 5 and all(len(b) == 2 for b in e0)
    assert all(len({keys[i] for i in b}) == 1 for b in e0)  # no mixed buckets: no padding needed
    assert {i for b in e0 for i in b} == set(range(8))  # every sample seen each epoch


def test_manifest_paths_must_stay_inside_its_folder(tmp_path, capsys):
    import json as _json
    import os

    from PIL import Image as _Image

    from dreamomni2.train.data import read_manifest

    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    outside.mkdir()
    for folder in (data, outside):
        _Image.new("RGB", (32, 32)).save(folder / "a.png")
    (data / "link.png").symlink_to(outside / "a.png")
    os.mkfifo(data / "fifo.png")
    rows = [
        {"task": "edit", "images": ["a.png"], "instruction": "x", "target": "a.png"},
        {"task": "edit", "images": ["../elsewhere/a.png"], "instruction": "x", "target": "a.png"},
        {"task": "edit", "images": [str(outside / "a.png")], "instruction": "y", "target": "a.png"},
        {"task": "edit", "images": ["link.png"], "instruction": "z", "target": "a.png"},
        {"task": "edit", "images": ["fifo.png"], "instruction": "w", "target": "a.png"},
        {"task": "edit", "images": ["a.png"], "instruction": 5, "target": "a.png"},
    ]
    manifest = data / "m.jsonl"
    manifest.write_text("\n".join(_json.dumps(r) for r in rows) + "\n")
    samples, problems = read_manifest(manifest)
    assert [s.line for s in samples] == [1]
    found = {p.line: p.message for p in problems}
    assert "'../elsewhere/a.png' leaves the manifest's folder" in found[2]
    assert "leaves the manifest's folder" in found[3] and "leaves the manifest's folder" in found[4]
    assert found[5] == f"image {data / 'fifo.png'} is not a regular file"
    assert found[6] == "instruction must be a string, got int"
    ok, _ = read_manifest(manifest, allowed_roots=(outside,))
    assert [s.line for s in ok] == [1, 2, 3, 4]
    assert main(["data", "check", str(manifest)]) == 1
    assert "leaves the manifest's folder" in capsys.readouterr().out
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"instruction": "caf\xe9"}\n')
    assert main(["data", "check", str(bad)]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err
