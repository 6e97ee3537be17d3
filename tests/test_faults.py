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
