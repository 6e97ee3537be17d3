"""The run machinery every long run shares: this process's shard, the model's identity, record logs, settings lock.

One implementation for ``bench run`` (:mod:`dreamomni2.bench.harness`), the synthesis stages
(:mod:`dreamomni2.synth.orchestrate`) and ``synth pairs`` (:mod:`dreamomni2.synth.pairs`):

- :class:`Shard` / :func:`current_shard`: rank and world from ``RANK``/``WORLD_SIZE`` (set by ``torchrun`` and
  ``accelerate launch``), else from accelerate's ``PartialState`` when something already set it up, else one process.
- :func:`model_identity`: the model a Session draws with (folder, release, LoRAs, dtype, each weight file's sha256 or
  size + mtime above :data:`HASH_LIMIT_BYTES`).
- :class:`RecordLog`: an append-only JSONL file, one flush + fsync per record, a torn last line (a crash mid-append)
  cut when it is opened; :func:`read_jsonl` / :func:`iter_jsonl` read such files, dropping a torn last line.
- :func:`check_settings` / :func:`claim_settings`: a folder records the settings it was made with; a rerun with other
  settings is refused with one line naming the differing (dotted) keys.

Light to import: no torch (accelerate is only looked at when something already imported it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "HASH_LIMIT_BYTES",
    "RecordLog",
    "Shard",
    "check_settings",
    "claim_settings",
    "current_shard",
    "dist_rank_world",
    "iter_jsonl",
    "model_identity",
    "read_jsonl",
]

#: Weight files up to this size get a sha256 in the model identity; larger ones size + mtime (cheap).
HASH_LIMIT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` processes (item ``i`` belongs to rank ``i % world``)."""

    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} of world {self.world}: need world >= 1 and 0 <= rank < world")


def _env_shard() -> Shard:
    rank, world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    try:
        r, w = int(rank), int(world)
    except ValueError:
        raise ValueError(f"RANK={rank!r} WORLD_SIZE={world!r}: need 0 <= RANK < WORLD_SIZE, integers") from None
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"RANK={rank!r} WORLD_SIZE={world!r}: need 0 <= RANK < WORLD_SIZE (rank {r} of world {w})")
    return Shard(r, w)


def _accelerate_shard() -> Shard | None:
    """accelerate's ``PartialState`` as a shard when it is already set up (never imports or initialises it)."""
    state_module = sys.modules.get("accelerate.state")
    if state_module is None or not state_module.PartialState._shared_state:
        return None
    state = state_module.PartialState()
    return Shard(state.process_index, state.num_processes)


def current_shard(rank: int | None = None, world: int | None = None) -> Shard:
    """This process's shard: ``rank``/``world`` when given, else ``RANK``/``WORLD_SIZE`` (torchrun, accelerate
    launch), else an already initialised accelerate ``PartialState``, else ``Shard(0, 1)``.

    Args:
        rank, world: explicit values (both or either; the other then comes from the environment or defaults).

    Raises:
        ValueError: ``RANK``/``WORLD_SIZE`` that are not integers, or a rank outside ``0 .. world-1``.
    """
    if rank is None or world is None:
        if "WORLD_SIZE" in os.environ or "RANK" in os.environ:
            found = _env_shard()
        else:
            found = _accelerate_shard() or Shard()
        rank = found.rank if rank is None else rank
        world = found.world if world is None else world
    return Shard(int(rank), int(world))


def _file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    if st.st_size <= HASH_LIMIT_BYTES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return {"size": st.st_size, "sha256": h.hexdigest()}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _weights(folder: Path | None) -> dict[str, Any]:
    if folder is None or not folder.is_dir():
        return {}
    files = sorted(folder.rglob("*.safetensors"))
    return {p.relative_to(folder).as_posix(): _file_identity(p) for p in files}


def model_identity(session: Any) -> dict[str, Any]:
    """The model a Session draws with: folder, release, LoRAs, dtype, and each weight file's sha256 (files up to
    :data:`HASH_LIMIT_BYTES`) or size + mtime (larger ones).

    A Session made with ``Session.from_pipeline`` has no folder to identify: ``path`` is ``None`` and ``weights``
    names no model file.

    Args:
        session: a :class:`dreamomni2.session.Session` (not loaded by this).

    Returns:
        ``{"path", "release", "loras", "dtype", "weights": {"model": {file: identity}, "release": ..., "lora0": ...}}``.
    """
    from dreamomni2.loading import model_dir

    opts = session.options
    wrapped = opts.model is None and opts.dtype is None  # Session.from_pipeline: no folder to identify
    try:
        base = None if wrapped else model_dir(opts.model)
    except ValueError:
        base = None
    ident: dict[str, Any] = {"path": str(base.resolve()) if base else None, "release": None, "loras": [],
                             "dtype": str(opts.dtype) if opts.dtype is not None else None}  # fmt: skip
    weights = {"model": _weights(base)}
    if opts.release:
        ident["release"] = str(Path(opts.release).resolve())
        weights["release"] = _weights(Path(opts.release))
    for k, lora in enumerate(opts.loras):
        ident["loras"].append(str(Path(lora).resolve()))
        weights[f"lora{k}"] = _weights(Path(lora))
    ident["weights"] = weights
    return ident


def _decode_line(path: Path, raw: bytes, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {offset + e.start})") from None


def iter_jsonl(path: str | os.PathLike, tolerate_torn_tail: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file of objects.

    Lines are split on ``\\n`` only (a U+2028 inside a string stays in its line). With ``tolerate_torn_tail`` a
    last line that is not valid JSON or not UTF-8 (a crash mid-append) is dropped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line (other than a torn last one) that is not UTF-8, not valid JSON or not an object, naming
            the file and line.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    offset = 0
    for lineno, raw in enumerate(lines, 1):
        start, offset = offset, offset + len(raw) + 1
        torn_ok = tolerate_torn_tail and lineno == len(lines)
        if not raw.strip():
            continue
        try:
            row = json.loads(_decode_line(path, raw, start))
        except ValueError as e:  # not UTF-8, or json.JSONDecodeError
            if torn_ok:
                logger.warning("%s:%d: dropping a torn last line (%d bytes)", path, lineno, len(raw))
                return
            if isinstance(e, json.JSONDecodeError):
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            raise
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, row


def read_jsonl(path: str | os.PathLike, tolerate_torn_tail: bool = True) -> list[dict[str, Any]]:
    """Read a JSONL file of objects (blank lines skipped); a torn last line is dropped when ``tolerate_torn_tail``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a malformed line other than a torn last one, naming the file and line (see :func:`iter_jsonl`).
    """
    return [row for _, row in iter_jsonl(path, tolerate_torn_tail)]


def _repair_tail(path: Path) -> None:
    """Cut a torn last line (a crash mid-append) so the next append starts on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        logger.warning("%s: dropping a torn last line (%d bytes)", path, len(data) - keep)
        with path.open("r+b") as f:
            f.truncate(keep)
            os.fsync(f.fileno())


class RecordLog:
    """An append-only JSONL record file: each :meth:`append` is written, flushed and fsynced before it returns.

    Opening it cuts a torn last line left by a crash; the file (and its folder) is created on the first append.
    Use it as a context manager, or call :meth:`close`.

    Args:
        path: the JSONL file.
        sort_keys: write each record's keys sorted.
    """

    def __init__(self, path: str | os.PathLike, sort_keys: bool = False):
        self.path = Path(path)
        self.sort_keys = sort_keys
        self._f: Any = None
        _repair_tail(self.path)

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record (a JSON object) as a line; on disk when this returns."""
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("a", encoding="utf-8")
        self._f.write(json.dumps(dict(record), ensure_ascii=False, sort_keys=self.sort_keys) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_settings(recorded: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two settings dicts (nested dicts compared key by key), sorted.

    A key missing on one side counts as ``None``.

    Args:
        recorded: the settings a folder was made with. new: this run's.
        prefix: prepended to every key (used for nesting).

    Returns:
        e.g. ``["settings.seed", "settings.steps"]``; empty when they match.
    """
    out = []
    for k in sorted(set(recorded) | set(new), key=str):
        a, b = recorded.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += check_settings(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, other objects their ``str``)."""
    return json.loads(json.dumps(value, default=str))


def claim_settings(
    path: str | os.PathLike,
    record: Mapping[str, Any],
    *,
    keys: Sequence[str] | None = None,
    where: str | os.PathLike | None = None,
    hint: str = "use another folder or the same options",
    error: type[ValueError] = ValueError,
) -> bool:
    """Write a folder's settings file, or check that the one there matches ``record``.

    Args:
        path: the settings file (JSON; written atomically when missing).
        record: what to record.
        keys: only these top-level keys must match (default: all).
        where: names the folder in the error (default: ``path``).
        hint: the end of the error line (what to do).
        error: the exception class raised on a mismatch (a ValueError).

    Returns:
        True when the file was written, False when an existing one matched.

    Raises:
        ValueError: the file is not a JSON object. ``error``: a mismatch, as
            ``WHERE: made with other settings (KEY, KEY differ); HINT``.
    """
    from dreamomni2.io import atomic_write_text

    path = Path(path)
    new = _as_json(dict(record))
    if not path.is_file():
        atomic_write_text(path, json.dumps(new, indent=2, ensure_ascii=False) + "\n")
        return True
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(old, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if keys is not None:
        old, new = {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}
    diff = check_settings(old, new)
    if diff:
        raise error(f"{where if where is not None else path}: made with other settings ({', '.join(diff)} differ); "
                    f"{hint}")  # fmt: skip
    return False


def dist_rank_world(rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """:func:`current_shard` as a ``(rank, world)`` tuple.

    Raises:
        ValueError: as :func:`current_shard`.
    """
    shard = current_shard(rank, world)
    return shard.rank, shard.world
