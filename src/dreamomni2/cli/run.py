"""``dreamomni2 edit`` and ``dreamomni2 generate``: one request through the :class:`~dreamomni2.session.Session`."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from dreamomni2.cli.errors import UsageError, parse_size, positive_int

__all__ = ["add_knob_arguments", "add_run_arguments", "add_session_arguments", "run_main", "session_from_args"]


def add_session_arguments(p: argparse.ArgumentParser, planner_default: str | None = None) -> None:
    """The options that build a Session: model, LoRAs, release, planner, memory, device, dtype."""
    from dreamomni2.devices import DEVICE_CHOICES, DTYPE_CHOICES
    from dreamomni2.memory import MEMORY_MODES
    from dreamomni2.planner.factory import planner_choices

    p.add_argument("--model", help="diffusers folder of a FLUX.1-Kontext-architecture model (default: the mini model)")
    p.add_argument("--lora", action="append", default=[], help="LoRA folder (diffusers format); repeatable")
    p.add_argument(
        "--release", help="DreamOmni2 release folder (edit_lora/, gen_lora/, vlm-model/); --model is the base"
    )
    default = f"default: {planner_default}" if planner_default else "default: the model's own, else none"
    p.add_argument("--planner", default=planner_default, help=f"{planner_choices()} ({default})")
    p.add_argument("--memory", default="full", choices=list(MEMORY_MODES), help="memory mode")
    p.add_argument("--device", default="auto", choices=list(DEVICE_CHOICES))
    p.add_argument("--dtype", default="auto", choices=list(DTYPE_CHOICES))
    add_knob_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def add_knob_arguments(p: argparse.ArgumentParser) -> None:
    """The speed and memory knobs (:mod:`dreamomni2.knobs`); checked by the Session, so a bad value exits 2."""
    from dreamomni2.knobs import CACHES, QUANTIZERS

    p.add_argument(
        "--quantize", default=None, metavar="SPEC",
        help=f"{'|'.join(QUANTIZERS)}|gguf:PATH, or per component: transformer=nf4,text_encoder_2=int8",
    )  # fmt: skip
    p.add_argument("--cache", default=None, metavar="NAME[:VALUE]", help=f"step cache: {', '.join(CACHES)}")
    p.add_argument("--compile", action="store_true", help="regional torch.compile of the transformer blocks")
    p.add_argument("--attention", default=None, metavar="BACKEND", help="attention backend (native, flash, sage ...)")


def _knob_kwargs(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k, None) for k in ("quantize", "cache", "attention")} | {
        "compile": bool(getattr(args, "compile", False))
    }


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The ``edit``/``generate`` options."""
    from dreamomni2.ids import ID_POLICIES

    p.add_argument(
        "-i", "--instruction", required=True, help="what to do, e.g. 'make the bag have the pattern of image 2'"
    )
    p.add_argument("-o", "--output", default="out.png", help="output image path (default: out.png)")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    add_session_arguments(p)
    p.add_argument("--steps", type=positive_int, default=None, help="denoising steps (default: the model's, else 30)")
    p.add_argument("--guidance", type=float, default=None, help="distilled guidance (default 3.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--id-policy", default=None, choices=sorted(ID_POLICIES), help="reference ids (default dreamomni2)")
    p.add_argument(
        "--max-area", type=positive_int, default=None,
        help="pixel cap for the output and every input image (small-memory runs)",
    )  # fmt: skip
    p.add_argument("--no-auto-resize", action="store_true", help="keep input sizes (floored to 16) instead of snapping")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``edit`` and ``generate`` subcommands."""
    edit = sub.add_parser("edit", help="edit SOURCE following the instruction and reference images")
    edit.add_argument("images", nargs="+", metavar="IMAGE", help="the image to edit, then up to 4 references")
    edit.add_argument("--size", type=parse_size, help="output WIDTHxHEIGHT (default: the source's size)")
    add_run_arguments(edit)
    gen = sub.add_parser("generate", help="generate a new image from the instruction and reference images")
    gen.add_argument("images", nargs="+", metavar="IMAGE", help="1 to 5 reference images")
    gen.add_argument("--size", type=parse_size, default=(1024, 1024), help="output WIDTHxHEIGHT (default 1024x1024)")
    add_run_arguments(gen)


def quiet_loading(quiet: bool) -> None:
    """Silence diffusers' and transformers' loading bars."""
    if quiet:
        import diffusers
        import transformers

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()


def session_from_args(args: argparse.Namespace, planner: str | None = None):
    """Build the Session the options describe (nothing heavy loads yet); bad options -> :class:`UsageError`."""
    from dreamomni2.session import Session

    quiet_loading(args.quiet)
    spec = planner if planner is not None else args.planner
    try:
        session = Session(args.model, release=args.release, loras=args.lora, planner=spec, memory=args.memory,
                          device=args.device, dtype=args.dtype, progress=not args.quiet,
                          **_knob_kwargs(args))  # fmt: skip
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    try:
        session.planner  # noqa: B018  (a bad --planner is reported before anything loads)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(f"--planner {spec}: {e}" if spec else str(e)) from None
    return session


def _check_output(args: argparse.Namespace) -> Path:
    from dreamomni2.images import OUTPUT_FORMATS

    out = Path(args.output)
    if not out.parent.exists():
        raise UsageError(f"-o {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise UsageError(f"-o {out}: is a folder; name an image file, e.g. -o {out / 'out.png'}")
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"-o {out}: use a .png, .jpg or .webp file name")
    if out.exists() and not args.force:
        raise UsageError(f"-o {out}: the file exists; pass --force to overwrite it")
    return out


#: Request field -> the flag that sets it (so a refused request names the flag, not only the field).
_FLAGS = {"images": "IMAGE", "instruction": "-i/--instruction", "steps": "--steps", "guidance": "--guidance",
          "seed": "--seed", "size": "--size", "max_area": "--max-area", "id_policy": "--id-policy"}  # fmt: skip


def _flag_of(message: str) -> str | None:
    """The flag a :func:`~dreamomni2.request.check_request` message is about (``Request.steps ...`` -> ``--steps``)."""
    m = re.match(r"Request\.(\w+)", message)
    return _FLAGS.get(m.group(1)) if m else None


def _request(args: argparse.Namespace):
    from dreamomni2.images import ImageLoadError, load_image
    from dreamomni2.request import Request, check_request
    from dreamomni2.tasks import MAX_IMAGES

    if len(args.images) > MAX_IMAGES:
        raise UsageError(f"got {len(args.images)} images; at most {MAX_IMAGES} are supported")
    try:
        images = [load_image(p) for p in args.images]
    except ImageLoadError as e:
        raise UsageError(str(e)) from None
    request = Request(
        "edit" if args.command == "edit" else "generate", images, args.instruction, steps=args.steps,
        guidance=args.guidance, seed=args.seed, size=args.size, id_policy=args.id_policy, max_area=args.max_area,
        auto_resize=False if args.no_auto_resize else None,
    )  # fmt: skip
    try:
        check_request(request)  # refused before anything loads, naming the flag
    except (ValueError, TypeError) as e:
        flag = _flag_of(str(e))
        raise UsageError(f"{flag}: {e}" if flag else str(e)) from None
    return request


def run_main(args: argparse.Namespace) -> int:
    """Run ``edit``/``generate``: check everything, plan, draw, write the image atomically."""
    from dreamomni2.images import save_image

    out = _check_output(args)
    request = _request(args)
    start = time.perf_counter()
    session = session_from_args(args)
    try:
        result = session.run(request)
    except ValueError as e:
        raise UsageError(str(e)) from None
    planned = result.planned
    if result.prompt != args.instruction:
        print(f"prompt: {result.prompt}" + (" (planner fell back to the instruction)" if planned.fell_back else ""))
    image = result.image
    save_image(image, out)
    print(f"wrote {out} ({image.width}x{image.height}) in {time.perf_counter() - start:.1f}s on {session.device}")
    return 0
