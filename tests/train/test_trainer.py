import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from dreamomni2.mini.world import make_cases, write_cases
from dreamomni2.train.config import load_config
from dreamomni2.train.loop import FAULT_KILL_ENV, Trainer

WIDE = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out", "proj_out",
        "x_embedder", "ff.net.0.proj", "ff.net.2", "proj_mlp", "norm_out.linear"]  # fmt: skip


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_cases(make_cases(0, 4), tmp_path_factory.mktemp("mini"), size=64)


def job(manifest, out, **train):
    cfg = {
        "model": {"tiny": {}},
        "data": {"manifest": str(manifest), "auto_resize": False, "max_area": 64 * 64},
        "network": {"rank": 4, "alpha": 4},
        "train": {"output_dir": str(out), "steps": 6, "batch_size": 2, "lr": 1e-3, "resume": None, **train},
    }
    return cfg


@pytest.mark.slow  # ~25-30 s on 2 shared CPU cores
def test_overfits_and_lora_changes_pipeline_output(manifest, tmp_path):
    two = Path(manifest).with_name("two.jsonl")  # beside the manifest: its paths are relative
    two.write_text("\n".join(Path(manifest).read_text().splitlines()[:2]) + "\n")
    cfg = job(two, tmp_path / "run", steps=500, lr=1e-2, timestep_sampling="uniform")
    cfg["network"] = {"rank": 16, "alpha": 16, "targets": WIDE}
    trainer = Trainer(load_config(base=cfg))
    before = trainer.evaluate()
    start = time.perf_counter()
    result = trainer.train()
    elapsed = time.perf_counter() - start
    after = trainer.evaluate()
    assert before / after >= 5, (before, after)
    assert elapsed < 60
    lora = result.output / "pytorch_lora_weights.safetensors"
    assert lora.is_file()

    from dreamomni2.images import load_image
    from dreamomni2.testing import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    s = trainer.samples[0]
    kw = dict(images=[load_image(p) for p in s.images], prompt=s.instruction, task=s.task, num_inference_steps=4,
              max_area=64 * 64, _auto_resize=False, output_type="np")  # fmt: skip
    base = pipe(generator=torch.Generator().manual_seed(0), **kw).images
    pipe.load_lora_weights(result.output, adapter_name="trained")
    tuned = pipe(generator=torch.Generator().manual_seed(0), **kw).images
    assert np.abs(tuned - base).mean() > 1e-2


def test_cached_and_uncached_runs_give_the_same_losses(manifest, tmp_path):
    cached = Trainer(load_config(base=job(manifest, tmp_path / "a", cache=True))).train()
    again = Trainer(load_config(base=job(manifest, tmp_path / "a2", cache=True, cache_dir=str(tmp_path / "a/cache"))))
    res_again = again.train()
    uncached = Trainer(load_config(base=job(manifest, tmp_path / "b", cache=False))).train()
    assert again.encoder.cache.misses == 0 and again.encoder.cache.hits > 0  # second run read everything from disk
    np.testing.assert_allclose(cached.losses, uncached.losses, rtol=0, atol=1e-6)
    np.testing.assert_allclose(res_again.losses, uncached.losses, rtol=0, atol=1e-6)


def test_changing_one_image_invalidates_only_its_entry(manifest, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(Path(manifest).parent, data)
    cfg = job(data / "manifest.jsonl", tmp_path / "r", cache=True)
    t1 = Trainer(load_config(base=cfg))
    for s in t1.samples:
        t1.encoder.encode(s, s.instruction)
    lookups = t1.encoder.cache.misses + t1.encoder.cache.hits
    from PIL import Image

    target = t1.samples[0].target
    Image.new("RGB", (64, 64), (1, 2, 3)).save(target)
    t2 = Trainer(load_config(base=cfg))
    for s in t2.samples:
        t2.encoder.encode(s, s.instruction)
    assert t2.encoder.cache.misses == 1 and t2.encoder.cache.hits == lookups - 1


def _run_cli(cfg_path, extra_env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}  # same threads: bitwise-equal maths
    return subprocess.Popen([sys.executable, "-m", "dreamomni2.cli", "train", str(cfg_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.slow  # ~25-30 s on 2 shared CPU cores
def test_sigkill_and_resume_gives_the_same_weights(manifest, tmp_path):
    steps = 12
    straight = job(manifest, tmp_path / "straight", steps=steps, checkpoint_every=0)
    (tmp_path / "straight.yaml").write_text(yaml.safe_dump(straight))
    assert _run_cli(tmp_path / "straight.yaml").wait(timeout=180) == 0

    cfg = job(manifest, tmp_path / "killed", steps=steps, checkpoint_every=1, keep_last=2, resume="auto")
    cfg_path = tmp_path / "killed.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    kill_at = 4 + int.from_bytes(os.urandom(1), "little") % 5  # a random step in 4..8
    proc = _run_cli(cfg_path, {FAULT_KILL_ENV: str(kill_at)})  # the run kills itself after that checkpoint
    ckpts = tmp_path / "killed" / "checkpoints"
    proc.wait(timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (tmp_path / "killed" / "final").exists()
    assert sorted(p.name for p in ckpts.glob("step-*")) == [f"step-{kill_at - 1:08d}", f"step-{kill_at:08d}"]
    resumed = _run_cli(cfg_path)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err.decode()[-2000:]
    a = load_file(tmp_path / "straight" / "final" / "pytorch_lora_weights.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_two_processes_match_one_process_with_the_doubled_batch(manifest, tmp_path):
    # a cosine schedule with warm-up: two processes must walk it at the same pace as one (an accelerate-prepared
    # scheduler stepped once per process, so 2 processes ran it twice as fast)
    sched = {"steps": 6, "batch_size": 2, "cache": False, "lr_schedule": "cosine", "warmup_steps": 2, "log_every": 1}
    one = job(manifest, tmp_path / "one", **sched)
    Trainer(load_config(base=one)).train()
    two = job(manifest, tmp_path / "two", **sched)
    cfg_path = tmp_path / "two.yaml"
    cfg_path.write_text(yaml.safe_dump(two))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(29500 + os.getpid() % 1000), "-m", "dreamomni2.cli", "train", str(cfg_path)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(tmp_path / "one" / "final" / "pytorch_lora_weights.safetensors")
    b = load_file(tmp_path / "two" / "final" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys()
    diff = sum(float((a[k] - b[k]).pow(2).sum()) for k in a) ** 0.5
    norm = sum(float(a[k].pow(2).sum()) for k in a) ** 0.5
    assert norm > 0 and diff / norm < 1e-4, (diff, norm)  # equal up to the order of the gradient all-reduce
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 5e-5

    def lrs(run):
        rows = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [row["lr"] for row in rows if "lr" in row]

    assert lrs("one") == pytest.approx([5e-4, 1e-3, 1e-3 * (1 + math.cos(math.pi / 4)) / 2, 5e-4,
                                        1e-3 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0])  # fmt: skip
    assert lrs("two") == pytest.approx(lrs("one"))


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(manifest, tmp_path, caplog):
    """Resume skips a damaged newest checkpoint (says so) and continues from the previous intact one."""
    first = Trainer(load_config(base=job(manifest, tmp_path, steps=5, checkpoint_every=2, keep_last=2))).train()
    ckpts = sorted((tmp_path / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["step-00000002", "step-00000004"]
    (ckpts[-1] / "trainable.safetensors").write_bytes(b"\x00" * 10)  # a torn write
    resumed = Trainer(load_config(base=job(manifest, tmp_path, steps=5, checkpoint_every=2, keep_last=2,
                                           resume="auto")))  # fmt: skip
    with caplog.at_level("WARNING"):
        res = resumed.train()
    assert "step-00000004 is damaged" in caplog.text and "resumed from" in caplog.text
    assert "step-00000002" in caplog.text
    assert len(res.losses) == 3  # steps 3 to 5 again
    np.testing.assert_allclose(res.losses, first.losses[2:], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("train", "message"),
    [({"keep_last": 0}, "train.keep_last must be >= 1"), ({"lr": 0}, "train.lr must be > 0"),
     ({"lr": float("nan")}, "must be finite numbers")],
)  # fmt: skip
def test_config_ranges_are_checked_when_loaded(manifest, tmp_path, train, message):
    from dreamomni2.train.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(base=job(manifest, tmp_path, **train))
