"""Fault tests of the atomic writes: a full disk (RLIMIT_FSIZE) and a SIGKILL in the middle of writing an output
never damage the file that was there."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image

CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys
    import numpy as np
    from PIL import Image
    from dreamomni2.images import save_image
    from dreamomni2 import io as dio

    mode, path = sys.argv[1], sys.argv[2]
    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    if mode == "full-disk":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            save_image(big, path)
        except OSError as e:
            print("refused", e.errno)
            sys.exit(0)
        sys.exit(1)
    if mode == "kill":
        def replace_then_die(src, dst):  # SIGKILL after the data is written, before the rename
            os.kill(os.getpid(), signal.SIGKILL)
        dio.os.replace = replace_then_die
        save_image(big, path)
    """
)


def _child(mode: str, path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True, timeout=120)


def _keep(tmp_path):
    out = tmp_path / "mine.png"
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(out)
    return out, out.read_bytes()


def test_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    out, before = _keep(tmp_path)
    proc = _child("full-disk", out)
    assert proc.returncode == 0 and proc.stdout.split()[0] == "refused", proc.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.png"]


def test_sigkill_during_an_output_write_keeps_the_old_file(tmp_path):
    out, before = _keep(tmp_path)
    proc = _child("kill", out)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert out.read_bytes() == before  # the old image is whole
    left = [p for p in tmp_path.iterdir() if p.name != "mine.png"]
    assert len(left) == 1 and left[0].name.startswith(".mine.png.") and left[0].suffix == ".tmp"
    assert Image.open(out).size == (8, 8)


CKPT_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from dreamomni2 import io as dio
    from dreamomni2.train.checkpoint import save_checkpoint

    folder, step = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(step)
    lin = torch.nn.Linear(4, 4)
    params = dict(lin.named_parameters())
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    lin(torch.ones(1, 4)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    if sys.argv[3] == "kill":
        dio.os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)  # files written, not yet renamed
    save_checkpoint(folder, step, params, opt, sched, {"noise": torch.Generator().manual_seed(0)},
                    {"epoch": 0, "batch": step}, keep_last=2)
    """
)


def test_sigkill_inside_a_checkpoint_save_leaves_the_previous_one_usable(tmp_path):
    from dreamomni2.train.checkpoint import complete_checkpoints, latest_checkpoint

    run = [sys.executable, "-c", CKPT_CHILD, str(tmp_path)]
    assert subprocess.run([*run, "1", "ok"], capture_output=True, timeout=120).returncode == 0
    killed = subprocess.run([*run, "2", "kill"], capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-00000001"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000001"
    assert (tmp_path / ".step-00000002.tmp").is_dir()  # the torn save stays aside, never mistaken for a checkpoint
    assert subprocess.run([*run, "2", "ok"], capture_output=True, timeout=120).returncode == 0  # a rerun replaces it
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-00000001", "step-00000002"]
    assert not (tmp_path / ".step-00000002.tmp").exists()
