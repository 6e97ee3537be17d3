"""``dreamomni2 train`` (diffusion model) and ``dreamomni2 train-planner`` (the Qwen2.5-VL planner)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers", "check_job_inputs", "check_train_paths", "train_main"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``train-planner`` subcommands."""
    from dreamomni2.train.planner_sft import add_planner_arguments

    train = sub.add_parser("train", help="fine-tune on a manifest (LoRA or full), config in YAML")
    train.add_argument("config", help="YAML job file (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-4")
    train.add_argument("--debug", action="store_true")
    add_planner_arguments(sub.add_parser("train-planner", help="LoRA fine-tune the Qwen2.5-VL planner (SFT)"))


#: The weight dtypes ``model.dtype`` may name (those the trainer maps to torch dtypes).


class _HeldRecords(logging.Filter):
    """Holds back a logger's records (for re-emitting them later) instead of letting them through."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def check_job_inputs(args: argparse.Namespace) -> None:
    """Before the config is parsed: the file is UTF-8 text and every ``--set`` value is valid YAML (naming it)."""
    import yaml

    config = Path(args.config)
    if config.is_file():
        try:
            config.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"{config}: not UTF-8 text (byte {e.start})") from None
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            continue  # the config loader names it
        try:
            yaml.safe_load(raw)
        except yaml.YAMLError as e:
            why = getattr(e, "problem", None) or str(e)
            raise UsageError(f"--set {key.strip()}: not a valid YAML value {raw!r} ({_one_line(why)})") from None


def check_train_paths(cfg) -> None:
    """Everything a long run needs, checked before the first step; raises :class:`UsageError` naming the key."""
    from dreamomni2.images import ImageLoadError, load_image

    if not Path(cfg.data.manifest).is_file():
        raise UsageError(f"data.manifest {cfg.data.manifest}: no such file")
    if cfg.model.pretrained and not (Path(cfg.model.pretrained) / "model_index.json").is_file():
        raise UsageError(f"model.pretrained {cfg.model.pretrained}: not a diffusers pipeline folder")
    resume = cfg.train.resume
    if resume not in (None, "auto") and not (Path(resume) / "state.json").is_file():
        raise UsageError(f"train.resume {resume}: not a complete checkpoint (no state.json)")
    if cfg.validation.every > 0:
        for k, case in enumerate(cfg.validation.cases):
            for j, image in enumerate(case.images):
                try:
                    load_image(image)
                except ImageLoadError as e:
                    raise UsageError(f"validation.cases[{k}].images[{j}]: {e}") from None


def train_main(args: argparse.Namespace) -> int:
    """Run ``dreamomni2 train``: check the config and its paths, set up (data, model), train, report."""
    from dreamomni2.train.config import ConfigError, load_config
    from dreamomni2.train.loop import Trainer

    check_job_inputs(args)
    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    check_train_paths(cfg)
    held = _HeldRecords()  # the set-up's warnings (skipped rows) are shown only if it succeeds: one line otherwise
    setup_logger = logging.getLogger("dreamomni2.train.loop")
    setup_logger.addFilter(held)
    try:
        trainer = Trainer(cfg)  # reads the manifest and builds the model: bad rows, no usable rows, bad targets
    except ValueError as e:
        message = _one_line(e)
        if message.startswith("Target modules"):  # peft's words for network.targets matching no module
            message = f"network.targets: {message}"
        hint = f"; `dreamomni2 data check {cfg.data.manifest}` lists every bad row" if held.records else ""
        raise UsageError(message + hint) from None
    finally:
        setup_logger.removeFilter(held)
    for record in held.records:
        setup_logger.handle(record)
    result = trainer.train()
    first, last = (result.losses[0], result.losses[-1]) if result.losses else (float("nan"),) * 2
    print(f"trained {result.steps} steps (loss {first:.4f} -> {last:.4f}); wrote {result.output}")
    return 0


def train_planner_main(args: argparse.Namespace) -> int:
    """Run ``dreamomni2 train-planner``."""
    from dreamomni2.train.planner_sft import planner_main

    check_job_inputs(args)
    return planner_main(args)
