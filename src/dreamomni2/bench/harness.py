"""Run a suite folder through the Session into a run folder: resumable, sharded, every output with its record.

:func:`run_suite` draws each case of a suite (:mod:`dreamomni2.bench.suite`) and writes the run folder of
:mod:`dreamomni2.bench.records`:

- **resumable**: before starting, the case ids with an ``ok`` record in any shard file are skipped (a case that
  ended in ``error`` is tried again). Each output PNG is saved atomically, then its record appended to the shard,
  flushed and fsynced, so a crash loses at most the case in flight; a torn last line left by a crash is cut off.
- **sharded**: with ``world`` processes, case ``i`` goes to rank ``i % world``; each rank appends to its own
  ``shards/records-<rank>-of-<world>.jsonl``. Case ``i`` uses seed ``seed + i`` whatever the sharding, so one
  process and several give the same images. Rank and world come from the ``RANK``/``WORLD_SIZE`` environment
  variables that both ``torchrun`` and ``accelerate launch`` set (:func:`dreamomni2.runlog.current_shard`; no
  collective is used: no process group, no barrier). Completion is checked on the files: when every case has a
  record in some shard, the process that sees it writes ``records.jsonl`` (all records in suite order, one per
  case, an ``ok`` one preferred); it is written atomically and its content depends only on the shards, so two
  processes finishing together write the same file. :func:`merge_run` does the same later (``bench run`` on a
  finished folder only merges).
- **one settings per folder**: ``run.json`` records the settings, the model's identity and the suite's hash; a
  rerun with other values is refused (:class:`RunSettingsError`, one line naming the differing keys).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from dreamomni2.bench.records import (
    MERGED_FILE,
    RUN_FILE,
    SHARDS_DIR,
    RunRecord,
    output_path,
    shard_path,
)
from dreamomni2.bench.suite import SuiteCase, case_folder_name, read_suite, read_suite_meta, suite_hash
from dreamomni2.runlog import RecordLog, claim_settings, dist_rank_world, model_identity, read_jsonl

logger = logging.getLogger(__name__)

__all__ = [
    "RunOutcome",
    "RunSettingsError",
    "check_run_dir",
    "dist_rank_world",
    "merge_run",
    "model_identity",
    "run_suite",
]
# dist_rank_world and model_identity live in dreamomni2.runlog (re-exported for the CLI and tests)

RUN_FORMAT = 1
#: The run.json keys a rerun must match.
_MATCHED = ("suite_hash", "settings", "model")


class RunSettingsError(ValueError):
    """A run folder made with other settings, another model or another suite."""


@dataclass
class RunOutcome:
    """What one :func:`run_suite` call did.

    Attributes:
        run_dir: the run folder. rank, world: this process's shard.
        done: ids drawn by this call; ``skipped``: ids of this shard already finished before it.
        errors: ids of this call that ended with ``status="error"``.
        merged: True when ``records.jsonl`` was written (the whole run is complete).
        seconds: wall time of the call.
    """

    run_dir: Path
    rank: int
    world: int
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    merged: bool = False
    seconds: float = 0.0


def _planner_name(session: Any) -> str:
    spec = getattr(session, "_planner_arg", None)
    if isinstance(spec, str):
        return spec
    return type(session.planner).__name__


def _run_meta(suite_dir: Path, cases: Sequence[SuiteCase], settings: dict, model: dict) -> dict[str, Any]:
    name = read_suite_meta(suite_dir).get("name")
    h = suite_hash(cases)
    return {"format": RUN_FORMAT, "suite": str(suite_dir.resolve()), "suite_name": name, "suite_hash": h,
            "n_cases": len(cases), "settings": settings, "model": model}  # fmt: skip


def check_run_dir(run_dir: str | Path) -> Path:
    """Check that ``run_dir`` can be a run folder: missing (its parent exists), a run folder, or an empty folder.

    Raises:
        FileNotFoundError: its parent folder is missing. ValueError: a file, or a non-empty folder without
        ``run.json``.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir}: is a file; name a folder for the run")
    if not run_dir.exists() and not run_dir.parent.is_dir():
        raise FileNotFoundError(f"{run_dir}: folder {run_dir.parent} does not exist")
    # hidden files do not count: another rank may be writing run.json through a temporary ``.run.json.*.tmp``
    visible = run_dir.is_dir() and any(not p.name.startswith(".") for p in run_dir.iterdir())
    if visible and not (run_dir / RUN_FILE).is_file():
        raise ValueError(f"{run_dir}: not empty and not a run folder (no {RUN_FILE}); name a new folder")
    return run_dir


def _claim(run_dir: Path, meta: dict[str, Any]) -> None:
    """Write ``run.json``, or check that the existing one has the same suite, settings and model."""
    claim_settings(run_dir / RUN_FILE, meta, keys=_MATCHED, where=run_dir, error=RunSettingsError,
                   hint="use another run folder or the same options")  # fmt: skip


def _shard_rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for f in sorted((run_dir / SHARDS_DIR).glob("records-*-of-*.jsonl")):
        rows += read_jsonl(f)
    return rows


def merge_run(run_dir: str | Path, cases: Sequence[SuiteCase] | None = None) -> bool:
    """Write ``records.jsonl`` when every case of the run's suite has a record in some shard.

    Args:
        run_dir: the run folder.
        cases: the suite's cases (default: read from the suite ``run.json`` names).

    Returns:
        True when merged (the run is complete), False when some case has no record yet.
    """
    from dreamomni2.io import atomic_write_text

    run_dir = Path(run_dir)
    if cases is None:
        meta = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        cases = read_suite(meta["suite"], check_files=False)
    best: dict[str, dict[str, Any]] = {}
    for row in _shard_rows(run_dir):
        rid = row.get("id")
        if rid not in best or best[rid].get("status") != "ok":
            best[rid] = row
    if any(c.id not in best for c in cases):
        return False
    text = "".join(json.dumps(best[c.id], ensure_ascii=False) + "\n" for c in cases)
    atomic_write_text(run_dir / MERGED_FILE, text)
    return True


def _jsonable(x: Any) -> Any:
    return asdict(x) if is_dataclass(x) else x


def _requests(cases: Sequence[tuple[int, SuiteCase]], suite_dir: Path, opts: dict[str, Any]) -> list[Any]:
    from dreamomni2.images import load_image
    from dreamomni2.request import Request

    out = []
    for i, case in cases:
        images = [load_image(p) for p in case.image_paths(suite_dir)]
        out.append(Request(case.task, images, case.instruction, steps=opts["steps"], guidance=opts["guidance"],
                           seed=opts["seed"] + i, size=opts["size"], max_area=opts["max_area"],
                           id_policy=opts["id_policy"]))  # fmt: skip
    return out


def _draw(session: Any, batch: list[tuple[int, SuiteCase]], suite_dir: Path, opts: dict) -> list[Any]:
    """Results (or the exception, per case) for a batch; a failing batch is retried one case at a time."""
    start = time.perf_counter()
    try:
        results: list[Any] = session.run_batch(_requests(batch, suite_dir, opts))
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        if len(batch) == 1:
            return [e]
        return [r for item in batch for r in _draw(session, [item], suite_dir, opts)]
    per_case = (time.perf_counter() - start) / len(batch)
    for r in results:
        r.timings["total"] = per_case
    return results


def _record(case: SuiteCase, result: Any, run_dir: Path, model: dict, seed: int) -> RunRecord:
    from dreamomni2.images import save_image

    rec = RunRecord(id=case.id, status="ok", output=None, task=case.task, category=case.category,
                    subcategory=case.subcategory, instruction=case.instruction, images=list(case.images),
                    model=model)  # fmt: skip
    if isinstance(result, BaseException):
        rec.status, rec.error, rec.settings = "error", f"{type(result).__name__}: {result}", {"seed": seed}
        return rec
    out = output_path(run_dir, case_folder_name(case.id))
    save_image(result.image, out)
    rec.output = out.relative_to(run_dir).as_posix()
    rec.prompt, rec.planned = result.prompt, _jsonable(result.planned)
    rec.settings, rec.timings = result.settings.to_dict(), {k: float(v) for k, v in result.timings.items()}
    return rec


def _settings(session: Any, steps, guidance, seed, size, max_area, id_policy, batch_size) -> dict[str, Any]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return {"steps": steps, "guidance": guidance, "seed": int(seed), "size": list(size) if size else None,
            "max_area": max_area, "id_policy": id_policy, "batch_size": batch_size,
            "planner": _planner_name(session)}  # fmt: skip


def _draw_shard(session: Any, todo: list[tuple[int, SuiteCase]], suite_dir: Path, log: RecordLog, opts: dict,
                model: dict, outcome: RunOutcome, progress: bool, on_record: Callable | None) -> None:  # fmt: skip
    """Draw ``todo`` in batches; each output saved, then its record appended to ``log`` and fsynced, then
    ``on_record``."""
    from tqdm.auto import tqdm

    desc = f"bench run [{outcome.rank}/{outcome.world}]"
    bar = tqdm(total=len(todo), desc=desc, disable=not progress or not todo, position=outcome.rank)
    step = opts["batch_size"]
    with bar:
        for s in range(0, len(todo), step):
            batch = todo[s : s + step]
            for (i, case), result in zip(batch, _draw(session, batch, suite_dir, opts), strict=True):
                rec = _record(case, result, outcome.run_dir, model, opts["seed"] + i)
                log.append(rec.to_dict())
                (outcome.errors if rec.status == "error" else outcome.done).append(case.id)
                bar.update(1)
                if on_record is not None:
                    on_record(rec)


def run_suite(
    session: Any,
    suite_dir: str | Path,
    run_dir: str | Path,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    max_area: int | None = None,
    id_policy: str | None = None,
    batch_size: int = 1,
    rank: int | None = None,
    world: int | None = None,
    progress: bool = True,
    on_record: Callable[[RunRecord], Any] | None = None,
) -> RunOutcome:
    """Draw this process's share of a suite's cases through ``session`` into ``run_dir`` (see the module doc).

    Args:
        session: a :class:`dreamomni2.session.Session` (loaded only if there is something to draw).
        suite_dir: a suite folder (``bench import``).
        run_dir: the run folder (created; a run folder of the same settings is resumed).
        steps, guidance, size, max_area, id_policy: per-request settings (``None``: the session's / model's).
        seed: case ``i`` (suite order) uses seed ``seed + i``.
        batch_size: cases per :meth:`~dreamomni2.session.Session.run_batch` call (compatible ones share a pipeline
            call). It is a recorded setting: batching may change the last bits of the pixels.
        rank, world: this process's shard (default: :func:`dist_rank_world`).
        progress: show a tqdm bar.
        on_record: called with each record once it is on disk (a test's fault hook may raise there).

    Returns:
        A :class:`RunOutcome`.

    Raises:
        FileNotFoundError / ValueError: a missing or malformed suite, a bad run folder or rank.
        RunSettingsError: ``run_dir`` was made with other settings, another model or another suite.
    """
    start = time.perf_counter()
    suite_dir, run_dir = Path(suite_dir), check_run_dir(run_dir)
    rank, world = dist_rank_world(rank, world)
    cases = read_suite(suite_dir)
    opts = _settings(session, steps, guidance, seed, size, max_area, id_policy, batch_size)
    model = model_identity(session)
    run_dir.mkdir(exist_ok=True)
    _claim(run_dir, _run_meta(suite_dir, cases, opts, model))
    # opening the shard's log cuts a torn last line, so the shards are read as they will be appended to
    with RecordLog(shard_path(run_dir, rank, world)) as log:
        finished = {r.get("id") for r in _shard_rows(run_dir) if r.get("status") == "ok"}
        mine = [(i, c) for i, c in enumerate(cases) if i % world == rank]
        todo = [(i, c) for i, c in mine if c.id not in finished]
        outcome = RunOutcome(run_dir, rank, world, skipped=[c.id for _, c in mine if c.id in finished])
        _draw_shard(session, todo, suite_dir, log, opts, model, outcome, progress, on_record)
    outcome.merged = merge_run(run_dir, cases)
    outcome.seconds = time.perf_counter() - start
    return outcome
