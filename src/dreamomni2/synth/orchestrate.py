"""The machinery every synthesis stage shares: items in, manifest rows out, resumable, sharded, filtered, reported.

A stage is a function ``process(item, index, out_dir) -> ItemResult`` over a list of items (dicts with an ``id``).
:func:`run_stage` runs it over this process's shard (item ``i`` goes to rank ``i % world``), skipping items whose
record is already written. An item's files are saved atomically first, then its record (id, kept rows or the
rejection reason, model, settings, seed) is appended to the rank's record file and fsynced, so a crash loses at most
the item in flight. When every item has a record, the shards are merged into ``manifest.jsonl`` (the kept rows in
item order, the trainer's format), ``report.json`` (counts per rejection reason) and, when asked, a Hugging Face
``datasets`` copy. Items come from JSONL, a ``datasets`` folder (``save_to_disk``) or a Parquet/CSV/JSON file
(read with ``datasets``).

Rank and world come from ``RANK``/``WORLD_SIZE`` (set by ``torchrun`` and ``accelerate launch``), else from an
already set up accelerate ``PartialState`` (:func:`dreamomni2.runlog.current_shard`); with a process group the ranks
meet at a barrier and rank 0 merges, without one the last shard to finish merges (a later ``run_stage`` call merges
too).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dreamomni2.runlog import RecordLog, Shard, claim_settings, current_shard, read_jsonl

logger = logging.getLogger(__name__)

__all__ = [
    "FAULT_KILL_ENV",
    "ItemResult",
    "Shard",
    "StageReport",
    "current_shard",
    "finished_records",
    "format_report",
    "item_folder",
    "merge_stage",
    "read_items",
    "run_stage",
    "save_dataset",
]

#: Fault injection for tests: the process SIGKILLs itself after this item's files are saved and before its record is
#: written (the worst moment), so a kill-and-resume test kills at a known point whatever the load (never set it).
FAULT_KILL_ENV = "DREAMOMNI2_FAULT_KILL_SYNTH_ITEM"
#: Where the per-rank record files of a stage live, under the output folder.
RECORDS_DIR = ".synth"


@dataclass
class ItemResult:
    """What a stage made of one item.

    Attributes:
        rows: the kept manifest rows (paths relative to the stage's output folder).
        rejections: one reason per rejected candidate row (``near-identical``, ``vlm-no`` ...); an item with no
            kept row is rejected.
        info: what made it (model, settings, seed, similarities ...), stored in the item's record.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageReport:
    """Counts of a finished (merged) stage: items, items with a kept row, kept rows, rejected rows per reason."""

    stage: str
    items: int
    kept: int
    rows: int
    rejected: dict[str, int]
    settings: dict[str, Any]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dict(self.__dict__)


def _item_id(row: dict, index: int, where: str) -> str:
    value = row.get("id", f"{index:06d}")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise ValueError(f"{where}: item {index + 1}: id must be a non-empty string or integer, got {value!r}")
    return str(value)


def _read_dataset_items(path: Path) -> list[dict]:
    from dreamomni2.train.data import dataset_rows, is_dataset_folder

    if is_dataset_folder(path):
        return dataset_rows(path)
    try:
        import datasets
    except ImportError:
        raise ValueError(f"{path}: reading a {path.suffix} file needs `pip install datasets`") from None
    kind = {".parquet": "parquet", ".csv": "csv", ".json": "json"}[path.suffix.lower()]
    return [dict(row) for row in datasets.load_dataset(kind, data_files=str(path), split="train")]


def read_items(source: str | os.PathLike | Sequence[dict]) -> list[dict]:
    """Items from a JSONL file, a ``datasets`` folder, a Parquet/CSV/JSON file, or a list of dicts.

    Each item gets a string ``id`` (its own, else its 0-based position as ``000012``).

    Raises:
        FileNotFoundError: a missing source. ValueError: bad JSON, a non-object row, a bad or duplicate id, an
            unsupported file type (each naming the file and row).
    """
    from dreamomni2.train.data import is_dataset_folder

    where = "items"
    if isinstance(source, (str, os.PathLike)):
        path, where = Path(source), str(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if is_dataset_folder(path) or path.suffix.lower() in (".parquet", ".csv", ".json"):
            rows = _read_dataset_items(path)
        elif path.is_file():
            rows = read_jsonl(path, tolerate_torn_tail=False)
        else:
            raise ValueError(f"{path}: expected a JSONL file, a datasets folder or a .parquet/.csv/.json file")
    else:
        rows = [dict(r) for r in source]
    items, seen = [], {}
    for i, row in enumerate(rows):
        item_id = _item_id(row, i, where)
        if item_id in seen:
            raise ValueError(f"{where}: item {i + 1}: duplicate id {item_id!r} (also item {seen[item_id] + 1})")
        seen[item_id] = i
        items.append({**row, "id": item_id})
    return items


def item_folder(out_dir: str | os.PathLike, index: int, item_id: str) -> Path:
    """The folder an item's files go to: ``OUT/items/<index>_<safe id>``."""
    from dreamomni2.bench.suite import case_folder_name

    return Path(out_dir) / "items" / f"{index:06d}_{case_folder_name(item_id)}"


def _records_dir(out_dir: Path, stage: str) -> Path:
    return out_dir / RECORDS_DIR / stage


def finished_records(out_dir: str | os.PathLike, stage: str) -> dict[str, dict]:
    """Every finished item's record of a stage (from every rank's file, whatever world wrote it), by id."""
    folder = _records_dir(Path(out_dir), stage)
    done: dict[str, dict] = {}
    for path in sorted(folder.glob("rank*.jsonl")) if folder.is_dir() else []:
        for rec in read_jsonl(path, tolerate_torn_tail=True):
            done.setdefault(str(rec.get("id")), rec)
    return done


def _fault_point(item_id: str) -> None:
    import signal

    if os.environ.get(FAULT_KILL_ENV) == item_id:
        logger.warning("%s=%s: killing this process (fault test)", FAULT_KILL_ENV, item_id)
        os.kill(os.getpid(), signal.SIGKILL)


Process = Callable[[dict, int, Path], ItemResult]


def _process_shard(
    stage: str, items: list[dict], process: Process, out: Path, shard: Shard, progress: bool, settings: dict
) -> int:
    """Run this rank's unfinished items (each record holds the stage's settings too); returns how many ran."""
    from tqdm.auto import tqdm

    done = finished_records(out, stage)
    mine = [(i, it) for i, it in enumerate(items) if i % shard.world == shard.rank and it["id"] not in done]
    path = _records_dir(out, stage) / f"rank{shard.rank:03d}-of-{shard.world:03d}.jsonl"
    with RecordLog(path, sort_keys=True) as log:
        for index, item in tqdm(mine, desc=stage, unit="item", disable=not progress):
            start = time.perf_counter()
            result = process(item, index, out)
            _fault_point(item["id"])
            log.append({"id": item["id"], "index": index, "status": "kept" if result.rows else "rejected",
                        "rejections": list(result.rejections), "rows": result.rows, "info": result.info,
                        "settings": settings, "rank": shard.rank,
                        "seconds": round(time.perf_counter() - start, 4)})  # fmt: skip
    return len(mine)


def run_stage(
    stage: str,
    items: Sequence[dict],
    process: Process,
    out_dir: str | os.PathLike,
    *,
    shard: Shard | None = None,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
    dataset: bool = False,
) -> StageReport | None:
    """Run ``process`` over this shard's unfinished items, then merge when every item is finished.

    Args:
        stage: the stage name (``extract``, ``edit-data``, ``gen-data`` ...), naming its record folder.
        items: the items (see :func:`read_items`), the same list, in the same order, on every rank.
        process: ``process(item, index, out_dir) -> ItemResult``; it saves the item's files (atomically) under
            ``item_folder(out_dir, index, item["id"])`` and returns rows with paths relative to ``out_dir``.
        out_dir: the stage's output folder.
        shard: this process's shard (default :func:`current_shard`).
        settings: the stage's settings, stored in the report (and checked against a previous run's).
        progress: a tqdm bar.
        dataset: also save the merged rows as a ``datasets`` folder ``OUT/dataset``.

    Returns:
        The merged :class:`StageReport`, or ``None`` when other shards are still running.

    Raises:
        ValueError: ``out_dir`` holds a run of this stage with other settings.
    """
    out = Path(out_dir)
    shard = shard or current_shard()
    items = list(items)
    settings = dict(settings or {})
    claim_settings(_records_dir(out, stage) / "settings.json", settings, where=f"{out} ({stage})",
                   hint="use another output folder")  # fmt: skip
    start = time.perf_counter()
    ran = _process_shard(stage, items, process, out, shard, progress, settings)
    logger.info("%s: rank %d/%d ran %d item(s)", stage, shard.rank, shard.world, ran)
    if _barrier(shard):
        if shard.rank != 0:
            return None
    elif len(finished_records(out, stage)) < len(items):
        logger.info("%s: waiting for other shards; the last one to finish merges", stage)
        return None
    return merge_stage(out, stage, items, settings, seconds=time.perf_counter() - start, dataset=dataset)


def _barrier(shard: Shard) -> bool:
    """Wait for every rank when a torch process group is up; returns whether it waited."""
    if shard.world == 1:
        return False
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        return True
    return False


def merge_stage(
    out_dir: str | os.PathLike,
    stage: str,
    items: Sequence[dict],
    settings: dict[str, Any] | None = None,
    seconds: float = 0.0,
    dataset: bool = False,
) -> StageReport:
    """Merge every rank's records into ``manifest.jsonl`` (kept rows in item order) and ``report.json``.

    Raises:
        RuntimeError: some item has no record yet (a shard is unfinished), naming the first.
    """
    from dreamomni2.io import atomic_write_text

    out = Path(out_dir)
    done = finished_records(out, stage)
    missing = [it["id"] for it in items if it["id"] not in done]
    if missing:
        raise RuntimeError(f"{stage}: {len(missing)} item(s) unfinished (first: {missing[0]!r}); run every shard")
    records = [done[it["id"]] for it in items]
    rows = [row for rec in records for row in rec["rows"]]
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    reasons = Counter(reason for rec in records for reason in rec["rejections"])
    report = StageReport(stage=stage, items=len(records), kept=sum(rec["status"] == "kept" for rec in records),
                         rows=len(rows), rejected=dict(sorted(reasons.items())), settings=dict(settings or {}),
                         seconds=round(seconds, 3))  # fmt: skip
    atomic_write_text(out / "report.json", json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str))
    if dataset:
        save_dataset(rows, out / "dataset")
    logger.info("%s", format_report(report))
    return report


def format_report(report: StageReport) -> str:
    """One line: ``edit-data: 10 items, 8 with rows (8 rows), 2 rows rejected (near-identical 1, vlm-no 1)``."""
    n_rej = sum(report.rejected.values())
    detail = ", ".join(f"{k} {v}" for k, v in report.rejected.items())
    tail = f" ({detail})" if detail else ""
    return (f"{report.stage}: {report.items} items, {report.kept} with rows ({report.rows} rows), "
            f"{n_rej} rows rejected{tail}")  # fmt: skip


def save_dataset(rows: Sequence[dict], folder: str | os.PathLike) -> Path:
    """Save manifest rows as a Hugging Face ``datasets`` folder (``save_to_disk``), atomically.

    Paths in the rows stay as they are: relative to the folder holding ``folder`` (where ``manifest.jsonl`` is),
    which is how :func:`dreamomni2.train.data.read_manifest` resolves them. A key missing from a row is null there.
    """
    import datasets

    from dreamomni2.io import atomic_dir

    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    columns = {k: [r.get(k) for r in rows] for k in keys}  # every row's keys (from_list reads the first row's)
    with atomic_dir(folder) as tmp:
        datasets.Dataset.from_dict(columns).save_to_disk(str(tmp))
    return Path(folder)
