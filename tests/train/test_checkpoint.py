"""dreamomni2.train.checkpoint: exact round trip, keep-last pruning, and no partial folder on failure."""

import json

import pytest
import torch

import dreamomni2.train.checkpoint as checkpoint
from dreamomni2.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def _state(seed=0, steps=3):
    """A small model, AdamW and a warm-up LambdaLR after ``steps`` optimizer steps, plus a generator."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.9), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 4))
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
        sched.step()
    gen = torch.Generator().manual_seed(seed + 100)
    torch.rand(7, generator=gen)  # advance it past its seed state
    return model, opt, sched, {"data": gen}


def _save(folder, step, model, opt, sched, gens, keep_last=2, position=None):
    params = dict(model.named_parameters())
    return save_checkpoint(folder, step, params, opt, sched, gens, position or {"epoch": 1, "batch": step}, keep_last)


def test_round_trip_restores_everything(tmp_path):
    model, opt, sched, gens = _state(seed=0)
    torch.manual_seed(1234)
    torch.rand(3)
    cpu_state = torch.random.get_rng_state()
    path = _save(tmp_path, 3, model, opt, sched, gens, position={"epoch": 2, "batch": 5})
    assert path == tmp_path / "step-00000003"
    assert sorted(p.name for p in path.iterdir()) == [
        "optimizer.safetensors",
        "rng.safetensors",
        "state.json",
        "trainable.safetensors",
    ]
    meta = json.loads((path / "state.json").read_text())
    assert meta["step"] == 3 and meta["position"] == {"epoch": 2, "batch": 5}
    assert meta["optimizer"]["param_groups"][0]["betas"] == [0.8, 0.9]  # tuples stored as lists

    # what the restored state must give next: the saved weights, generator draws and global draws
    weights = [p.detach().clone() for p in model.parameters()]
    gen_next = torch.rand(4, generator=gens["data"])
    torch.random.set_rng_state(cpu_state)
    cpu_next = torch.rand(4)
    fresh, fresh_opt, fresh_sched, fresh_gens = _state(seed=9, steps=1)
    torch.manual_seed(999)  # scrambled global RNG: the checkpoint must restore it
    info = load_checkpoint(path, dict(fresh.named_parameters()), fresh_opt, fresh_sched, fresh_gens)
    assert info == {"step": 3, "position": {"epoch": 2, "batch": 5}}
    assert torch.equal(torch.rand(4), cpu_next)
    assert torch.equal(torch.rand(4, generator=fresh_gens["data"]), gen_next)
    for a, b in zip(fresh.parameters(), weights, strict=True):
        assert torch.equal(a, b)
    assert fresh_sched.get_last_lr() == sched.get_last_lr() == [0.1] and fresh_sched.last_epoch == 3
    saved, loaded = opt.state_dict(), fresh_opt.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    for idx, st in saved["state"].items():
        for k, v in st.items():
            assert torch.equal(loaded["state"][idx][k], v), (idx, k)


def test_resumed_training_continues_identically(tmp_path):
    model, opt, sched, gens = _state(seed=0, steps=2)
    path = _save(tmp_path, 2, model, opt, sched, gens)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(5))

    def step(m, o, s):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
        s.step()
        return [p.detach().clone() for p in m.parameters()]

    straight = step(model, opt, sched)
    fresh, fresh_opt, fresh_sched, fresh_gens = _state(seed=3, steps=0)
    load_checkpoint(path, dict(fresh.named_parameters()), fresh_opt, fresh_sched, fresh_gens)
    for a, b in zip(step(fresh, fresh_opt, fresh_sched), straight, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_keep_last_prunes_the_oldest(tmp_path):
    model, opt, sched, gens = _state()
    for step in (1, 2, 3, 10, 11):
        _save(tmp_path, step, model, opt, sched, gens, keep_last=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000003", "step-00000010", "step-00000011"]
    _save(tmp_path, 12, model, opt, sched, gens, keep_last=1)
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000012"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000012"


def test_latest_checkpoint_ignores_incomplete_folders(tmp_path):
    assert latest_checkpoint(tmp_path / "nothing") is None
    assert latest_checkpoint(tmp_path) is None
    model, opt, sched, gens = _state()
    _save(tmp_path, 4, model, opt, sched, gens)
    (tmp_path / ".step-00000009.tmp").mkdir()  # a crashed write
    (tmp_path / "step-00000008").mkdir()  # no state.json
    (tmp_path / "step-9").mkdir()  # not the name pattern
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000004"


def test_missing_tensor_is_named(tmp_path):
    model, opt, sched, gens = _state()
    path = _save(tmp_path, 1, model, opt, sched, gens)
    params = dict(model.named_parameters())
    params["extra.weight"] = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match=r"checkpoint lacks 1 trainable tensors, e\.g\. extra\.weight"):
        load_checkpoint(path, params, opt, sched, gens)


def _failing_save_file(monkeypatch, fail_on):
    """Make the ``fail_on``-th safetensors write of a checkpoint write its file, then raise."""
    real = checkpoint.save_file
    calls = []

    def save_file(tensors, filename, *args, **kwargs):
        real(tensors, filename, *args, **kwargs)
        calls.append(filename)
        if len(calls) == fail_on:
            raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    return calls


def test_failure_leaves_no_partial_folder(tmp_path, monkeypatch):
    model, opt, sched, gens = _state()
    _save(tmp_path, 1, model, opt, sched, gens)
    before = {p.name: p.read_bytes() for p in (tmp_path / "step-00000001").iterdir()}
    calls = _failing_save_file(monkeypatch, fail_on=2)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, 2, model, opt, sched, gens)
    assert len(calls) == 2  # the trainable weights and the optimizer state had been written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]  # no step-2, no temporary folder
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000001"
    assert {p.name: p.read_bytes() for p in (tmp_path / "step-00000001").iterdir()} == before


def test_failed_overwrite_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model, opt, sched, gens = _state()
    old = _save(tmp_path, 5, model, opt, sched, gens, position={"epoch": 0, "batch": 1})
    _failing_save_file(monkeypatch, fail_on=3)
    with pytest.raises(OSError):
        _save(tmp_path, 5, model, opt, sched, gens, position={"epoch": 7, "batch": 7})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000005"]
    assert json.loads((old / "state.json").read_text())["position"] == {"epoch": 0, "batch": 1}


def test_unstorable_scheduler_state_writes_nothing(tmp_path):
    model, opt, _sched, gens = _state()

    class Odd:
        def state_dict(self):
            return {"thing": object()}

    with pytest.raises(TypeError, match="cannot store object in a checkpoint"):
        _save(tmp_path, 1, model, opt, Odd(), gens)
    assert list(tmp_path.iterdir()) == []
