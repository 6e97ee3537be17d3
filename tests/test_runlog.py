"""The shared run machinery: shards from the environment, record logs, the torn-tail tolerant reader, settings lock."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dreamomni2.runlog import (
    RecordLog,
    Shard,
    check_settings,
    claim_settings,
    current_shard,
    dist_rank_world,
    iter_jsonl,
    model_identity,
    read_jsonl,
)


@pytest.fixture
def no_launcher(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delitem(sys.modules, "accelerate.state", raising=False)


def test_shard_from_env_args_and_default(monkeypatch, no_launcher):
    assert current_shard() == Shard(0, 1) and dist_rank_world() == (0, 1)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert current_shard() == Shard(2, 4) and dist_rank_world() == (2, 4)
    assert current_shard(0, 1) == Shard(0, 1) and current_shard(world=8) == Shard(2, 8)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(
        ValueError, match=r"^RANK='4' WORLD_SIZE='4': need 0 <= RANK < WORLD_SIZE \(rank 4 of world 4\)$"
    ):
        current_shard()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"^RANK='4' WORLD_SIZE='two': need 0 <= RANK < WORLD_SIZE, integers$"):
        current_shard()
    with pytest.raises(ValueError, match=r"^rank 1 of world 1: need world >= 1 and 0 <= rank < world$"):
        Shard(1, 1)


def test_shard_from_an_initialised_accelerate_state_only(monkeypatch, no_launcher):
    class State:
        _shared_state: dict = {}

        def __init__(self):
            self.process_index, self.num_processes = 1, 2

    monkeypatch.setitem(sys.modules, "accelerate.state", SimpleNamespace(PartialState=State))
    assert current_shard() == Shard(0, 1)  # not set up: never initialised by asking
    State._shared_state = {"set": True}
    assert current_shard() == Shard(1, 2)


def test_record_log_appends_are_on_disk_and_a_torn_tail_is_cut(tmp_path):
    path = tmp_path / "logs" / "rank0.jsonl"
    log = RecordLog(path)
    assert not path.exists()  # created on the first append
    log.append({"id": "a", "n": 1})
    assert read_jsonl(path) == [{"id": "a", "n": 1}]  # readable while the log is still open
    log.append({"id": "é", "n": 2})
    log.close()
    with path.open("a", encoding="utf-8") as f:
        f.write('{"id": "c", "n"')  # a crash mid-append
    assert read_jsonl(path) == [{"id": "a", "n": 1}, {"id": "é", "n": 2}]
    with pytest.raises(ValueError, match=r"rank0.jsonl:3: not valid JSON"):
        read_jsonl(path, tolerate_torn_tail=False)
    with RecordLog(path, sort_keys=True) as log:
        assert path.read_text(encoding="utf-8") == '{"id": "a", "n": 1}\n{"id": "é", "n": 2}\n'
        log.append({"z": 1, "id": "d"})
    assert path.read_text(encoding="utf-8").splitlines()[-1] == '{"id": "d", "z": 1}'


def test_reader_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\n[1]\n{"b": 2}\n')
    with pytest.raises(ValueError, match=r"r.jsonl:3: expected a JSON object$"):
        read_jsonl(path)
    path.write_bytes(b'{"a": 1}\n{"b": "\xe9"}\n{"c": 3}\n')
    with pytest.raises(ValueError, match=r"r.jsonl: not UTF-8 text \(byte 16\)$"):
        read_jsonl(path)
    path.write_bytes('{"a": "x\u2028y"}\n\n{"b": 2}\n'.encode())
    assert list(iter_jsonl(path)) == [(1, {"a": "x\u2028y"}), (3, {"b": 2})]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None)
@given(records=st.lists(st.dictionaries(st.text(max_size=5), _json, max_size=4), max_size=5), data=st.data())
def test_any_prefix_reads_as_the_complete_records_before_the_cut(tmp_path_factory, records, data):
    lines = [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records]
    blob = b"".join(lines)
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    path = tmp_path_factory.mktemp("prefix") / "r.jsonl"
    path.write_bytes(blob[:cut])
    ends = [sum(len(x) for x in lines[: i + 1]) - 1 for i in range(len(lines))]  # each record's end, without \n
    assert read_jsonl(path) == [r for r, end in zip(records, ends, strict=True) if end <= cut]


def test_check_settings_names_the_differing_dotted_keys():
    old = {"seed": 1, "steps": 4, "model": {"path": "/m", "weights": {"a": 1}}, "gone": 0}
    new = {"seed": 1, "steps": 5, "model": {"path": "/m", "weights": {"a": 2}}, "size": [32, 32]}
    assert check_settings(old, new) == ["gone", "model.weights.a", "size", "steps"]
    assert check_settings(old, dict(old)) == []


def test_claim_settings_writes_then_refuses_other_settings(tmp_path):
    class Refused(ValueError):
        pass

    path = tmp_path / "run.json"
    assert claim_settings(path, {"settings": {"seed": 0, "size": (32, 32)}, "note": "x"}) is True
    assert json.loads(path.read_text()) == {"settings": {"seed": 0, "size": [32, 32]}, "note": "x"}
    assert claim_settings(path, {"settings": {"seed": 0, "size": (32, 32)}, "note": "y"}, keys=["settings"]) is False
    with pytest.raises(Refused, match=r"^RUN: made with other settings \(note, settings\.seed differ\); do X$"):
        claim_settings(path, {"settings": {"seed": 1, "size": [32, 32]}, "note": "y"}, where="RUN", hint="do X",
                       error=Refused)  # fmt: skip
    path.write_text("[1]")
    with pytest.raises(ValueError, match=r"run.json: expected a JSON object"):
        claim_settings(path, {})


def test_model_identity_hashes_the_weight_files(tmp_path):
    model, lora = tmp_path / "model", tmp_path / "lora"
    (model / "transformer").mkdir(parents=True)
    (model / "transformer" / "w.safetensors").write_bytes(b"abc")
    lora.mkdir()
    (lora / "pytorch_lora_weights.safetensors").write_bytes(b"")
    session = SimpleNamespace(options=SimpleNamespace(model=str(model), dtype="float32", release=None, loras=[lora]))
    sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    sha_empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert model_identity(session) == {
        "path": str(model.resolve()), "release": None, "loras": [str(lora.resolve())], "dtype": "float32",
        "weights": {"model": {"transformer/w.safetensors": {"size": 3, "sha256": sha_abc}},
                    "lora0": {"pytorch_lora_weights.safetensors": {"size": 0, "sha256": sha_empty}}},
    }  # fmt: skip
    wrapped = SimpleNamespace(options=SimpleNamespace(model=None, dtype=None, release=None, loras=[]))
    assert model_identity(wrapped) == {"path": None, "release": None, "loras": [], "dtype": None,
                                       "weights": {"model": {}}}  # fmt: skip


def test_runlog_is_light_to_import():
    import subprocess

    code = "import sys, dreamomni2.runlog; print('torch' in sys.modules, 'accelerate' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_path_type_is_accepted(tmp_path):
    p = Path(tmp_path) / "x.jsonl"
    with RecordLog(str(p)) as log:
        log.append({"id": 1})
    assert read_jsonl(str(p)) == [{"id": 1}]
