"""Atomic file and folder writes: a reader sees the old content or the new one, never a partial file.

Every helper writes to a temporary name in the destination's own folder (so the final rename never
crosses a file system), flushes and fsyncs the data, renames it into place with :func:`os.replace`,
then fsyncs the folder on POSIX so that the rename itself survives a crash. On failure the temporary
file or folder is removed and the destination is left as it was.

* :func:`atomic_write_bytes` / :func:`atomic_write_text`: one file from bytes / text.
* :func:`atomic_save_file`: a safetensors file from a ``{name: tensor}`` dict.
* :func:`atomic_path`: a temporary path for writers that take a file name (``PIL.Image.save`` ...).
* :func:`atomic_dir`: a whole folder (checkpoints, ``save_pretrained`` outputs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is only needed by atomic_save_file; keep this module light to import
    import torch

__all__ = ["atomic_dir", "atomic_path", "atomic_save_file", "atomic_write_bytes", "atomic_write_text", "fsync_tree"]


def _fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (new names, renames) to disk; POSIX only (a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | os.PathLike) -> None:
    """fsync every regular file under ``folder`` and every folder (``folder`` included), deepest first.

    Args:
        folder: an existing folder.
    """
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                _fsync_file(path)
        _fsync_dir(root)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on a clean exit it is fsynced and renamed to ``path``.

    For writers that want a file name (``safetensors.torch.save_file``, ``PIL.Image.save`` with an explicit
    ``format=``: the temporary name ends in ``.tmp``, so PIL cannot guess the format from it).
    The parent folder is created if missing.

    Args:
        path: the destination file.

    Yields:
        The temporary path to write (it exists, empty).

    Raises:
        Whatever the body raises; the temporary file is removed and ``path`` is untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(final.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, rename, folder fsync).

    Args:
        path: the destination file (its folder is created if missing).
        data: the bytes to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    Args:
        path: the destination file.
        text: the text to write (no newline translation: ``"\\n"`` stays ``"\\n"``).
        encoding: text encoding.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_save_file(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Save tensors as a safetensors file, atomically.

    Tensors are detached, moved to the CPU and made contiguous first (``save_file`` needs that).

    Args:
        tensors: ``{name: tensor}``.
        path: the destination ``.safetensors`` file.
        metadata: optional string-to-string header metadata.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from safetensors.torch import save_file

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, os.fspath(tmp), metadata=metadata)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary sibling name, then put it in place of ``final`` in one rename.

    The temporary folder is ``.<name>.tmp`` beside ``final`` (a stale one from a crashed run is
    removed first). On a clean exit every file in it is fsynced, an existing ``final`` is removed and
    the temporary folder is renamed to ``final``; on an exception it is deleted and ``final`` is left
    as it was.

    Args:
        final: the destination folder (its parent is created if missing).

    Yields:
        The temporary folder to write into (it exists, empty).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(final.parent)
