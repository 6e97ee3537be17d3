"""``dreamomni2 train`` (diffusion model) and ``dreamomni2 train-planner`` (the Qwen2.5-VL planner)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers", "train_main"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``train-planner`` subcommands."""
    from dreamomni2.train.planner_sft import add_planner_arguments

    train = sub.add_parser("train", help="fine-tune on a manifest (LoRA or full), config in YAML")
    train.add_argument("config", help="YAML job file (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-4")
    train.add_argument("--debug", action="store_true")
    add_planner_arguments(sub.add_parser("train-planner", help="LoRA fine-tune the Qwen2.5-VL planner (SFT)"))


def train_main(args: argparse.Namespace) -> int:
    """Run ``dreamomni2 train``: check the config and its paths, train, report."""
    from dreamomni2.train.config import ConfigError, load_config
    from dreamomni2.train.loop import train

    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if not Path(cfg.data.manifest).is_file():
        raise UsageError(f"data.manifest {cfg.data.manifest}: no such file")
    if cfg.model.pretrained and not (Path(cfg.model.pretrained) / "model_index.json").is_file():
        raise UsageError(f"model.pretrained {cfg.model.pretrained}: not a diffusers pipeline folder")
    result = train(cfg)
    first, last = (result.losses[0], result.losses[-1]) if result.losses else (float("nan"),) * 2
    print(f"trained {result.steps} steps (loss {first:.4f} -> {last:.4f}); wrote {result.output}")
    return 0


def train_planner_main(args: argparse.Namespace) -> int:
    """Run ``dreamomni2 train-planner``."""
    from dreamomni2.train.planner_sft import planner_main

    return planner_main(args)
