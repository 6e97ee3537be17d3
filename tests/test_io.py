"""dreamomni2.io: atomic writes leave the old content or the new one, never a partial file or folder."""

import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import dreamomni2.io as dio
from dreamomni2.io import atomic_dir, atomic_path, atomic_save_file, atomic_write_bytes, atomic_write_text


def test_write_bytes_and_text(tmp_path):
    p = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"\x00\x01abc")
    assert p == tmp_path / "sub" / "a.bin" and p.read_bytes() == b"\x00\x01abc"  # the folder is created
    atomic_write_text(p, "héllo\nworld\n")
    assert p.read_bytes() == "héllo\nworld\n".encode()
    atomic_write_text(tmp_path / "latin.txt", "é", encoding="latin-1")
    assert (tmp_path / "latin.txt").read_bytes() == b"\xe9"
    assert sorted(os.listdir(tmp_path / "sub")) == ["a.bin"]  # no temporary file left


def test_failure_keeps_the_old_file(tmp_path):
    p = tmp_path / "state.json"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".state.json.") and tmp.name.endswith(".tmp")
        tmp.write_text("half of the ne")
        raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_every_write_is_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        real(fd)

    monkeypatch.setattr(dio.os, "fsync", fsync)
    atomic_write_text(tmp_path / "a.txt", "x")
    assert len(synced) == (2 if os.name == "posix" else 1)  # the temporary file, then the folder
    if os.path.exists("/proc/self/fd"):
        assert synced[0].startswith(str(tmp_path / ".a.txt.")) and synced[1] == str(tmp_path)


def test_save_file_round_trip(tmp_path):
    t = {"a": torch.arange(6.0).view(2, 3)[:, ::2], "b": torch.ones(2, dtype=torch.bfloat16)}
    p = atomic_save_file(t, tmp_path / "t.safetensors", metadata={"format": "pt", "step": "3"})
    got = load_file(p)
    assert got["a"].tolist() == [[0.0, 2.0], [3.0, 5.0]] and got["b"].dtype == torch.bfloat16
    with safe_open(p, "pt") as f:
        assert f.metadata() == {"format": "pt", "step": "3"}
    assert os.listdir(tmp_path) == ["t.safetensors"]


def test_dir_is_built_aside_then_renamed(tmp_path):
    final = tmp_path / "ckpt" / "step-1"
    with atomic_dir(final) as tmp:
        assert tmp == tmp_path / "ckpt" / ".step-1.tmp" and tmp.is_dir() and not final.exists()
        (tmp / "a.txt").write_text("a")
        (tmp / "nested").mkdir()
        (tmp / "nested" / "b.txt").write_text("b")
    assert (final / "a.txt").read_text() == "a" and (final / "nested" / "b.txt").read_text() == "b"
    assert sorted(os.listdir(final.parent)) == ["step-1"]


def test_dir_replaces_an_old_folder_and_a_stale_temporary(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    stale = tmp_path / ".out.tmp"
    stale.mkdir()
    (stale / "junk").write_text("from a crashed run")
    with atomic_dir(final) as tmp:
        assert list(tmp.iterdir()) == []  # the stale folder was cleared
        (tmp / "new.txt").write_text("new")
    assert sorted(os.listdir(final)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_dir_failure_leaves_the_old_folder(tmp_path):
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        (tmp / "v").write_text("1")
    with pytest.raises(OSError, match="disk full"), atomic_dir(final) as tmp:
        (tmp / "v").write_text("2")
        raise OSError("disk full")
    assert (final / "v").read_text() == "1"
    assert sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(KeyError), atomic_dir(tmp_path / "never") as tmp:
        (tmp / "x").write_text("x")
        raise KeyError("x")
    assert sorted(os.listdir(tmp_path)) == ["out"]
