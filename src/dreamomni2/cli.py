"""Command line: ``dreamomni2 edit|generate|make-tiny``. A thin layer over the Python API.

Bad input (missing or unreadable files, bad sizes or flags) prints one line on stderr and
exits with status 2; other failures print one line and exit 1. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path

logger = logging.getLogger("dreamomni2")

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UsageError(Exception):
    """Bad user input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise argparse.ArgumentTypeError(f"bad size {text!r}; expected WIDTHxHEIGHT, e.g. 1024x768")
    return int(m.group(1)), int(m.group(2))


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from dreamomni2.ids import ID_POLICIES

    p.add_argument(
        "-i", "--instruction", required=True, help="what to do, e.g. 'make the bag have the pattern of image 2'"
    )
    p.add_argument("-o", "--output", default="out.png", help="output image path (default: out.png)")
    p.add_argument("--model", help="diffusers folder of a FLUX.1-Kontext-architecture model (default: the mini model)")
    p.add_argument("--lora", action="append", default=[], help="LoRA folder (diffusers format); repeatable")
    p.add_argument(
        "--release", help="DreamOmni2 release folder (edit_lora/, gen_lora/, vlm-model/); --model is the base"
    )
    p.add_argument(
        "--planner", help="none | mini | qwen:DIR | openai:URL[#model] (default: the model's own, else none)"
    )
    p.add_argument("--memory", default="full", choices=["full", "balanced", "low", "minimal"], help="memory mode")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--steps", type=_positive_int, default=None, help="denoising steps (default: the model's, else 30)")
    p.add_argument("--guidance", type=float, default=None, help="distilled guidance (default 3.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--id-policy", default=None, choices=sorted(ID_POLICIES), help="reference ids (default dreamomni2)")
    p.add_argument(
        "--max-area",
        type=_positive_int,
        default=None,
        help="pixel cap for the output and every input image (small-memory runs)",
    )
    p.add_argument("--no-auto-resize", action="store_true", help="keep input sizes (floored to 16) instead of snapping")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dreamomni2", description="DreamOmni2 multimodal instruction-based editing and generation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    edit = sub.add_parser("edit", help="edit SOURCE following the instruction and reference images")
    edit.add_argument("images", nargs="+", metavar="IMAGE", help="the image to edit, then up to 4 references")
    edit.add_argument("--size", type=_parse_size, help="output WIDTHxHEIGHT (default: the source's size)")
    _add_run_options(edit)
    gen = sub.add_parser("generate", help="generate a new image from the instruction and reference images")
    gen.add_argument("images", nargs="+", metavar="IMAGE", help="1 to 5 reference images")
    gen.add_argument("--size", type=_parse_size, default=(1024, 1024), help="output WIDTHxHEIGHT (default 1024x1024)")
    _add_run_options(gen)
    train = sub.add_parser("train", help="fine-tune on a manifest (LoRA or full), config in YAML")
    train.add_argument("config", help="YAML job file (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-4")
    train.add_argument("--debug", action="store_true")
    from dreamomni2.train.planner_sft import add_planner_arguments

    add_planner_arguments(sub.add_parser("train-planner", help="LoRA fine-tune the Qwen2.5-VL planner (SFT)"))
    data = sub.add_parser("data", help="data tools")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    check = data_sub.add_parser("check", help="list every bad row of a manifest with its line number")
    check.add_argument("manifest")
    check.add_argument("--max-images", type=_positive_int, default=5)
    check.add_argument("--debug", action="store_true")
    from dreamomni2.bench.cli import add_bench_arguments

    add_bench_arguments(sub.add_parser("bench", help="score a model on a benchmark suite (mini: the mini world)"))
    tiny = sub.add_parser("make-tiny", help="write a tiny random pipeline folder (for trying the CLI offline)")
    tiny.add_argument("folder")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--debug", action="store_true")
    return parser


def resolve_device(name: str) -> str:
    """``auto`` -> cuda, then mps, then cpu."""
    import torch

    if name != "auto":
        if name == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available")
        if name == "mps" and not torch.backends.mps.is_available():
            raise UsageError("--device mps: MPS is not available")
        return name
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, name)


def _model_dir(args) -> Path:
    """``--model``, else the shipped mini model."""
    if args.model:
        return Path(args.model)
    from dreamomni2.mini import default_model_path

    default = default_model_path()
    if default is None:
        raise UsageError("no model given: pass --model DIR (try `dreamomni2 make-tiny DIR` for a tiny offline one)")
    return default


def model_defaults(model: Path) -> dict:
    """Per-model defaults (``dreamomni2.json`` beside ``model_index.json``), e.g. the mini model's sizes."""
    import json

    f = model / "dreamomni2.json"
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{f}: not valid JSON ({e.msg})") from None


def _quiet_loading(args) -> None:
    if args.quiet:
        import diffusers
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()


def _load_pipeline(args):
    from dreamomni2.pipeline import DreamOmni2Pipeline

    model = _model_dir(args)
    if not (model / "model_index.json").is_file():
        raise UsageError(f"--model {model}: not a diffusers pipeline folder (no model_index.json)")
    for lora in args.lora:
        if not Path(lora).exists():
            raise UsageError(f"--lora {lora}: no such file or folder")
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    _quiet_loading(args)
    pipe = DreamOmni2Pipeline.from_pretrained(os.fspath(model), dtype=dtype, local_files_only=True)
    for k, lora in enumerate(args.lora):
        pipe.load_lora_weights(lora, adapter_name=f"lora{k}")
    pipe.to(device)
    pipe.set_progress_bar_config(disable=args.quiet, desc="denoising")
    return pipe, device


def _run(args) -> int:
    from dreamomni2.images import ImageLoadError, load_image

    if len(args.images) > 5:
        raise UsageError(f"got {len(args.images)} images; at most 5 are supported")
    out = Path(args.output)
    if not out.parent.exists():
        raise UsageError(f"-o {out}: folder {out.parent} does not exist")
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg", ".webp"}:
        raise UsageError(f"-o {out}: use a .png, .jpg or .webp file name")
    try:
        images = [load_image(p) for p in args.images]
    except ImageLoadError as e:
        raise UsageError(str(e)) from None
    model = _model_dir(args)
    defaults = model_defaults(model) if (model / "model_index.json").is_file() else {}
    kwargs = {"id_policy": args.id_policy or defaults.get("id_policy", "dreamomni2")}
    for key in ("max_area", "reference_max_area"):
        if key in defaults:
            kwargs[key] = defaults[key]
    if args.size is not None:
        kwargs["width"], kwargs["height"] = args.size
    if args.max_area is not None:
        kwargs["max_area"] = kwargs["reference_max_area"] = args.max_area
    kwargs["_auto_resize"] = not args.no_auto_resize and defaults.get("auto_resize", True)
    task = "edit" if args.command == "edit" else "generate"
    steps = args.steps or defaults.get("steps", 30)
    guidance = args.guidance if args.guidance is not None else defaults.get("guidance", 3.5)
    spec = args.planner or defaults.get("planner", "none")
    start = time.perf_counter()
    try:
        if args.release:
            image, planned, device = _run_release(args, model, images, task, steps, guidance, kwargs)
        else:
            image, planned, device = _run_pipeline(args, spec, images, task, steps, guidance, kwargs)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if planned.prompt != args.instruction:
        print(f"prompt: {planned.prompt}" + (" (planner fell back to the instruction)" if planned.fell_back else ""))
    image.save(out)
    print(f"wrote {out} ({image.width}x{image.height}) in {time.perf_counter() - start:.1f}s on {device}")
    return 0


def _planner(spec: str):
    from dreamomni2.planner.base import make_planner

    try:
        return make_planner(spec)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(f"--planner {spec}: {e}") from None


def _generator(seed: int):
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)


def _run_pipeline(args, spec, images, task, steps, guidance, kwargs):
    from dreamomni2.memory import apply_memory_mode

    planner = _planner(spec)
    planned = planner.plan(images, args.instruction, task)
    pipe, device = _load_pipeline(args)
    if args.memory != "full":
        apply_memory_mode(pipe, args.memory, device)
    result = pipe(images=images, prompt=planned.prompt, task=task, num_inference_steps=steps,
                  guidance_scale=guidance, generator=_generator(args.seed), **kwargs)  # fmt: skip
    return result.images[0], planned, device


def _run_release(args, model, images, task, steps, guidance, kwargs):
    from dreamomni2.release import load_release

    device = resolve_device(args.device)
    _quiet_loading(args)
    try:
        rel = load_release(base=os.fspath(model), release=args.release, device=device,
                           dtype=resolve_dtype(args.dtype, device), memory=args.memory,
                           planner=args.planner or "auto")  # fmt: skip
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    image, planned = rel.run(images, args.instruction, task, num_inference_steps=steps, guidance_scale=guidance,
                             generator=_generator(args.seed), **kwargs)  # fmt: skip
    return image, planned, device


def _make_tiny(args) -> int:
    from dreamomni2.testing import save_tiny_pipeline

    save_tiny_pipeline(args.folder, seed=args.seed)
    print(f"wrote a tiny random pipeline to {args.folder}")
    return 0


def _train(args) -> int:
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


def _data_check(args) -> int:
    from dreamomni2.train.data import read_manifest

    try:
        samples, problems = read_manifest(args.manifest, max_images=args.max_images)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    for p in problems:
        print(f"{args.manifest}:{p}")
    rows = len(samples) + len({p.line for p in problems})
    print(f"{len(samples)} good rows, {len({p.line for p in problems})} bad rows of {rows}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        from dreamomni2.bench.cli import bench_main
        from dreamomni2.train.planner_sft import planner_main

        commands = {"make-tiny": _make_tiny, "train": _train, "data": _data_check, "bench": bench_main,
                    "train-planner": planner_main}  # fmt: skip
        return commands.get(args.command, _run)(args)
    except UsageError as e:
        print(f"dreamomni2: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dreamomni2: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the CLI never shows a traceback unless asked
        if getattr(args, "debug", False):
            raise
        print(f"dreamomni2: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
