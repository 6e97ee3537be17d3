"""Image pairs by feature mixing, from a prompt file: the library side of ``dreamomni2 synth pairs``.

Each row of a prompts file (JSONL) names one pair::

    {"id": "p0001", "source_prompt": "a red bag on a table", "target_prompt": "a red bag on a beach",
     "keyword": "bag", "seed": 7}

``keyword`` (the shared object or attribute) and ``seed`` are optional; extra keys are kept in the record under
``meta``. The source is drawn with ``seed`` and the target with ``target_seed`` (default ``seed + 1``); a row
without a seed gets ``base + 2 i`` and ``base + 2 i + 1`` (``i`` its 0-based position, ``base`` the settings' seed).
Both images are text-to-image generations at full resolution in one batch through the
:class:`~dreamomni2.session.Session` (task ``generate``, no reference images), with
:func:`dreamomni2.synth.mixing.feature_mixing` on the transformer.

Output, under the folder: ``<id>/source.png``, ``<id>/target.png`` (each pair folder written in one rename) and
``pairs.jsonl`` (one record per finished pair: prompts, seeds, settings, model; rewritten atomically after every
batch). A rerun skips the ids already recorded, so a crash loses at most the pairs in flight.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dreamomni2 import limits
from dreamomni2.runlog import check_settings, iter_jsonl, model_identity
from dreamomni2.synth.mixing import MixingConfig, MixingController, block_counts

__all__ = ["PAIRS_FILE", "PairSettings", "check_pair_row", "make_pairs", "read_pair_rows", "read_records"]

logger = logging.getLogger(__name__)

#: The record file a pairs folder holds.
PAIRS_FILE = "pairs.jsonl"
#: The files of one finished pair, inside ``<id>/``.
PAIR_FILES = ("source.png", "target.png")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KEYS = ("id", "source_prompt", "target_prompt", "keyword", "seed", "target_seed", "meta")


@dataclass(frozen=True)
class PairSettings:
    """How every pair of a run is drawn.

    Attributes:
        steps, guidance: denoising steps and distilled guidance (``None``: the model folder's, else the library's).
        size: output ``(width, height)`` of both images (``None``: the model's default generation size).
        seed: base seed of rows without one.
        mixing: what mixes (:class:`~dreamomni2.synth.mixing.MixingConfig`; ``enabled=False``: plain pairs).
        pairs_per_call: pairs drawn in one pipeline call (2 rows each).
    """

    steps: int | None = None
    guidance: float | None = None
    size: tuple[int, int] | None = None
    seed: int = 0
    mixing: MixingConfig = field(default_factory=MixingConfig)
    pairs_per_call: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.pairs_per_call, int) or self.pairs_per_call < 1:
            raise ValueError(f"pairs_per_call must be a positive integer, got {self.pairs_per_call!r}")
        if not isinstance(self.mixing, MixingConfig):
            raise TypeError(f"mixing must be a MixingConfig, got {type(self.mixing).__name__}")


def _check_seed(row: Mapping[str, Any], key: str, where: str) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limits.MAX_SEED:
        raise ValueError(f"{where}: {key!r} must be an integer in 0..{limits.MAX_SEED - 1}, got {value!r}")
    return value


def check_pair_row(row: Any, where: str = "row") -> dict[str, Any]:
    """Validate one prompts row; returns it normalised (``keyword``/seeds may be ``None``, extras in ``meta``).

    Raises:
        ValueError: naming ``where`` and the key.
    """
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    pid = row.get("id")
    if not isinstance(pid, str) or not _ID.match(pid) or pid in (".", ".."):
        raise ValueError(f"{where}: 'id' must be a name of letters, digits, '.', '_' or '-', got {pid!r}")
    out: dict[str, Any] = {"id": pid}
    for key in ("source_prompt", "target_prompt"):
        text = row.get(key)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: {key!r} must be a non-empty string")
        if len(text) > limits.MAX_PROMPT_CHARS:
            raise ValueError(f"{where}: {key!r} has {len(text)} characters; the limit is {limits.MAX_PROMPT_CHARS}")
        out[key] = text
    keyword = row.get("keyword")
    if keyword is not None and not isinstance(keyword, str):
        raise ValueError(f"{where}: 'keyword' must be a string, got {type(keyword).__name__}")
    out["keyword"] = keyword
    out["seed"], out["target_seed"] = _check_seed(row, "seed", where), _check_seed(row, "target_seed", where)
    meta = row.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: 'meta' must be an object, got {type(meta).__name__}")
    out["meta"] = {**meta, **{k: v for k, v in row.items() if k not in _KEYS}}
    return out


def read_pair_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a prompts JSONL file (blank lines skipped; ids must be unique).

    Raises:
        ValueError: ``FILE:LINE: what is wrong`` for the first bad row.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
        row = check_pair_row(raw, where)
        if row["id"] in seen:
            raise ValueError(f"{where}: id {row['id']!r} repeats line {seen[row['id']]}")
        seen[row["id"]] = n
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def read_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a pairs folder's ``pairs.jsonl`` (``[]`` when there is none).

    Raises:
        ValueError: a line that is not a JSON object or not a pair record, naming the file and line.
    """
    path = Path(out_dir) / PAIRS_FILE
    if not path.exists():
        return []
    records = []
    for n, rec in iter_jsonl(path, tolerate_torn_tail=False):  # rewritten atomically: never torn
        if not all(k in rec for k in ("id", "source", "target")) or not isinstance(rec.get("settings"), dict):
            raise ValueError(f"{path}:{n}: not a pair record (needs id, source, target, settings)")
        records.append(rec)
    return records


def _session(pipe_or_session: Any) -> Any:
    from dreamomni2.session import Session

    if isinstance(pipe_or_session, Session):
        return pipe_or_session
    return Session.from_pipeline(pipe_or_session, planner="none")


def _seeds(row: Mapping[str, Any], index: int, base: int) -> tuple[int, int]:
    source = row["seed"] if row["seed"] is not None else base + 2 * index
    target = row["target_seed"] if row["target_seed"] is not None else source + 1
    return source, target


def _size_fields(settings: PairSettings) -> dict[str, Any]:
    """Request fields of the settings; a given size is drawn exactly (``max_area`` = its area, not 1024^2)."""
    area = None if settings.size is None else settings.size[0] * settings.size[1]
    return {"steps": settings.steps, "guidance": settings.guidance, "size": settings.size, "max_area": area}


def _run_settings(session: Any, settings: PairSettings) -> dict[str, Any]:
    """The resolved steps/guidance/size recorded with every pair (after the model folder's defaults)."""
    from dreamomni2.request import Request, check_request, resolve_settings

    probe = check_request(Request("generate", [], prompt="x", plan=False, seed=0, **_size_fields(settings)))
    st = resolve_settings(probe, session.defaults, session.options)
    return {"steps": st.steps, "guidance": st.guidance, "size": None if st.width is None else [st.width, st.height],
            "mixing": settings.mixing.to_dict()}  # fmt: skip


def _check_folders(out_dir: Path, todo: Sequence[tuple[int, Mapping[str, Any]]], force: bool) -> None:
    """Refuse to replace a pair folder that holds anything but a half-written pair of ours (unless ``force``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder")
    for _, row in todo if not force else ():
        folder = out_dir / row["id"]
        if folder.exists() and (not folder.is_dir() or {p.name for p in folder.iterdir()} - set(PAIR_FILES)):
            raise ValueError(f"{folder}: exists and holds other files; remove it or pass force")


def _draw_chunk(session: Any, chunk: Sequence[tuple[int, dict]], settings: PairSettings, steps: int) -> list[Any]:
    """One pipeline call for ``chunk`` (``(index, row)`` pairs): images ``[source, target, source, ...]``."""
    from dreamomni2.request import Request
    from dreamomni2.synth.mixing import feature_mixing

    requests = []
    for index, row in chunk:
        for prompt, seed in zip((row["source_prompt"], row["target_prompt"]), _seeds(row, index, settings.seed),
                                strict=True):  # fmt: skip
            requests.append(Request("generate", [], prompt=prompt, plan=False, seed=seed, **_size_fields(settings)))
    with feature_mixing(session.pipe.transformer, settings.mixing, steps):
        results = session.run_batch(requests)
    return [r.image for r in results]


def _record(row: Mapping[str, Any], index: int, settings: PairSettings, run: dict, model: dict, size) -> dict:
    source_seed, target_seed = _seeds(row, index, settings.seed)
    rec = {"id": row["id"], "source_prompt": row["source_prompt"], "target_prompt": row["target_prompt"],
           "keyword": row["keyword"], "source_seed": source_seed, "target_seed": target_seed,
           "source": f"{row['id']}/{PAIR_FILES[0]}", "target": f"{row['id']}/{PAIR_FILES[1]}",
           "width": size[0], "height": size[1], "settings": run, "model": model}  # fmt: skip
    if row.get("meta"):
        rec["meta"] = dict(row["meta"])
    return rec


def _write_records(out_dir: Path, records: Mapping[str, dict]) -> None:
    from dreamomni2.io import atomic_write_text

    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records.values())
    atomic_write_text(out_dir / PAIRS_FILE, text)


def _save_pair(out_dir: Path, pid: str, source: Any, target: Any) -> None:
    from dreamomni2.images import save_image
    from dreamomni2.io import atomic_dir

    with atomic_dir(out_dir / pid) as tmp:
        save_image(source, tmp / PAIR_FILES[0])
        save_image(target, tmp / PAIR_FILES[1])


def _plan(out_dir: Path, rows: Sequence[Mapping], run: dict, force: bool) -> tuple[dict[str, dict], list]:
    """Existing records to keep and the ``(index, row)`` still to draw; refuses records of other settings."""
    records = {r["id"]: r for r in read_records(out_dir)}
    todo = []
    for index, row in enumerate(rows):
        rec = records.get(row["id"])
        done = rec is not None and all((out_dir / rec[k]).is_file() for k in ("source", "target"))
        diff = check_settings(rec["settings"], run) if done and not force else []
        if diff:
            raise ValueError(f"{out_dir / PAIRS_FILE}: pair {row['id']!r} was made with other settings "
                             f"({', '.join(diff)} differ); use another folder or pass force")  # fmt: skip
        if not done or force:
            records.pop(row["id"], None)
            todo.append((index, row))
    return records, todo


def make_pairs(
    pipe_or_session: Any,
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    settings: PairSettings | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Draw every pair of ``rows`` not yet in ``out_dir`` and record it; returns the records of all ``rows``.

    Args:
        pipe_or_session: a :class:`~dreamomni2.session.Session` or a loaded ``DreamOmni2Pipeline``.
        rows: prompts rows (checked with :func:`check_pair_row`).
        out_dir: the pairs folder (created if missing).
        settings: how to draw (:class:`PairSettings`; defaults when ``None``).
        force: redraw rows already recorded and replace pair folders that hold other files.
        progress: show a progress bar over the pairs.

    Returns:
        one record per row, in ``rows`` order (finished earlier or now).

    Raises:
        ValueError: a bad row, a mixing spec the model's blocks cannot satisfy, records of other settings, or a
            pair folder holding other files.
    """
    from tqdm.auto import tqdm

    settings = settings or PairSettings()
    rows = [check_pair_row(dict(r), f"row {i}") for i, r in enumerate(rows)]
    repeated = [pid for pid, n in Counter(r["id"] for r in rows).items() if n > 1]
    if repeated:
        raise ValueError(f"rows: id {repeated[0]!r} repeats")
    out_dir = Path(out_dir)
    session = _session(pipe_or_session)
    run = _run_settings(session, settings)
    records, todo = _plan(out_dir, rows, run, force)
    _check_folders(out_dir, todo, force)
    if todo:  # the mixing spec against the model's blocks, before anything is written
        transformer = session.load().pipe.transformer
        MixingController(settings.mixing, *block_counts(transformer), run["steps"])
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model_identity(session) if todo else {}
    with tqdm(total=len(todo), desc="pairs", unit="pair", disable=not progress) as bar:
        for start in range(0, len(todo), settings.pairs_per_call):
            chunk = todo[start : start + settings.pairs_per_call]
            images = _draw_chunk(session, chunk, settings, run["steps"])
            for k, (index, row) in enumerate(chunk):
                source, target = images[2 * k], images[2 * k + 1]
                _save_pair(out_dir, row["id"], source, target)
                records[row["id"]] = _record(row, index, settings, run, model, target.size)
            _write_records(out_dir, records)
            bar.update(len(chunk))
    logger.info("%d pairs drawn, %d already in %s", len(todo), len(rows) - len(todo), out_dir)
    return [records[r["id"]] for r in rows]
