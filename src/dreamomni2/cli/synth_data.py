"""``dreamomni2 synth extract, edit-data, gen-data``: extraction, editing and generation data."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from dreamomni2.cli.errors import UsageError, parse_size, positive_int

__all__ = ["add_parsers"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _common(p: argparse.ArgumentParser) -> None:
    from dreamomni2.cli.run import add_session_arguments

    add_session_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="first seed (item i: seed + i)")
    p.add_argument("--steps", type=positive_int, default=None, help="denoising steps (default: the model's)")


def _stage_args(p: argparse.ArgumentParser, per_item: int) -> None:
    p.add_argument("source", help="a folder of images, or items: JSONL / datasets folder / .parquet (id, image or "
                                  "prompt, optional keywords)")  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="output folder (manifest.jsonl, report.json, items/)")
    p.add_argument("--keyword", action="append", default=[], help="keyword for items naming none; repeatable")
    p.add_argument("--keywords-per-item", type=positive_int, default=per_item, help=f"default {per_item}")
    p.add_argument("--extract-lora", help="the extraction LoRA (default: the model itself extracts: folded in)")
    p.add_argument("--vlm", help="planner spec used as the VLM (keywords, yes/no checks); 'mini': the analyzer")
    p.add_argument("--mini", action="store_true", help="mini-world parts: canonical templates, the mini editor, "
                                                       "the analyzer as VLM")  # fmt: skip
    p.add_argument("--size", type=parse_size, default=None, help="text-to-image WIDTHxHEIGHT for prompt items")
    p.add_argument("--identical", type=float, default=0.995, help="similarity at or above which a pair is a copy")
    p.add_argument("--unrelated", type=float, default=0.5, help="similarity below which a pair is unrelated")
    p.add_argument("--dataset", action="store_true", help="also save the rows as a datasets folder OUT/dataset")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder that holds no run")
    _common(p)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register extract, edit-data, gen-data under ``synth``."""
    ex = sub.add_parser("extract", help="extract objects or attributes of images into reference images")
    ex.add_argument("images", nargs="+", metavar="IMAGE")
    ex.add_argument("--keyword", action="append", required=True, help="object or attribute to extract; repeatable")
    ex.add_argument("-o", "--output", required=True, help="output folder")
    ex.add_argument("--task", choices=("generate", "edit"), default="generate")
    ex.add_argument("--force", action="store_true", help="overwrite existing outputs")
    _common(ex)
    ex.set_defaults(synth_func=extract_main)
    ed = sub.add_parser("edit-data", help="editing rows: target -> keyword -> reference; an edit makes the source")
    _stage_args(ed, 1)
    ed.set_defaults(synth_func=edit_data_main)
    gen = sub.add_parser("gen-data", help="generation rows: references extracted from each image -> the image")
    _stage_args(gen, 2)
    gen.set_defaults(synth_func=gen_data_main)


def _load_images(paths: list[str]) -> list:
    from dreamomni2.images import load_image

    images = []
    for p in paths:
        try:
            images.append(load_image(p))
        except (OSError, ValueError) as e:
            raise UsageError(f"{p}: {e}" if p not in str(e) else str(e)) from None
    return images


def _slug(text: str) -> str:
    from dreamomni2.bench.suite import case_folder_name

    return case_folder_name(text.lower())


def extract_main(args: argparse.Namespace) -> int:
    """``synth extract``: one reference per (image, keyword) in the output folder, plus ``extract.jsonl``."""
    from dreamomni2.cli.run import session_from_args
    from dreamomni2.images import save_image
    from dreamomni2.io import atomic_write_text
    from dreamomni2.synth.extract import check_keyword, extract, extraction_seed

    try:
        keywords = [check_keyword(k) for k in args.keyword]
    except ValueError as e:
        raise UsageError(f"--keyword: {e}") from None
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a folder")
    names = [
        [out / f"{i:03d}_{_slug(Path(p).stem)}_{_slug(k)}.png" for k in keywords] for i, p in enumerate(args.images)
    ]
    taken = [n for row in names for n in row if n.exists()]
    if taken and not args.force:
        raise UsageError(f"{taken[0]} exists (use --force to overwrite)")
    images = _load_images(args.images)
    refs = extract(session_from_args(args), images, keywords, seed=args.seed, steps=args.steps, task=args.task)
    rows = []
    for i, (path, per_image) in enumerate(zip(args.images, refs, strict=True)):
        for k, (kw, ref) in enumerate(zip(keywords, per_image, strict=True)):
            save_image(ref, names[i][k])
            rows.append({"image": str(path), "keyword": kw, "output": names[i][k].name,
                         "seed": extraction_seed(args.seed, i, k, len(keywords))})  # fmt: skip
    atomic_write_text(out / "extract.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} reference(s) in {out}")
    return 0


def _items(source: str) -> list[dict]:
    """Items of a folder of images, or of an item file / datasets folder (relative image paths: from its folder)."""
    from dreamomni2.synth.orchestrate import read_items
    from dreamomni2.train.data import is_dataset_folder

    src = Path(source)
    if not src.exists():
        raise UsageError(f"{src}: no such file or folder")
    if src.is_dir() and not is_dataset_folder(src):
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise UsageError(f"{src}: no images ({', '.join(_IMAGE_SUFFIXES)}) in this folder")
        return [{"id": p.stem, "image": str(p)} for p in files]
    try:
        items = read_items(src)
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from None
    root = src.parent
    for it in items:
        if isinstance(it.get("image"), str) and it["image"] and not os.path.isabs(it["image"]):
            it["image"] = str(root / it["image"])
    if not items:
        raise UsageError(f"{src}: no items")
    return items


def _check_out(args: argparse.Namespace) -> Path:
    from dreamomni2.synth.orchestrate import RECORDS_DIR

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORDS_DIR).is_dir() and not args.force:
        raise UsageError(f"-o {out}: a non-empty folder that holds no synth run (use --force to write into it)")
    if not 0.0 <= args.unrelated <= args.identical <= 1.0:
        raise UsageError(f"--unrelated {args.unrelated} / --identical {args.identical}: want 0 <= unrelated <= "
                         "identical <= 1")  # fmt: skip
    return out


def _vlm(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(proposer, verifier)`` from ``--vlm`` (``mini``: the analyzer) or ``--mini``; ``(None, None)`` without."""
    from dreamomni2.synth.edit_data import planner_proposer
    from dreamomni2.synth.filters import planner_verifier
    from dreamomni2.synth.mini import MiniVLM

    if args.vlm == "mini" or (args.mini and not args.vlm):
        vlm = MiniVLM()
        return vlm.keywords, vlm
    if not args.vlm:
        return None, None
    from dreamomni2.planner.factory import make_planner

    try:
        planner = make_planner(args.vlm)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise UsageError(f"--vlm {args.vlm}: {e}") from None
    return planner_proposer(planner), planner_verifier(planner)


def _sessions(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(main session, extraction session)``: the extraction LoRA on the same base, or the main one (folded)."""
    from dreamomni2.cli.run import session_from_args

    main = session_from_args(args, planner="none")
    if not args.extract_lora:
        return main, main
    if not Path(args.extract_lora).is_dir():
        raise UsageError(f"--extract-lora {args.extract_lora}: no such folder")
    saved = args.lora
    args.lora = [*saved, args.extract_lora]
    try:
        return main, session_from_args(args, planner="none")
    finally:
        args.lora = saved


def _parts(args: argparse.Namespace, kind: str) -> Any:
    from dreamomni2.synth import edit_data as ed
    from dreamomni2.synth import gen_data as gd
    from dreamomni2.synth import mini
    from dreamomni2.synth.filters import QualityFilter

    main, extractor = _sessions(args)
    proposer, verifier = _vlm(args)
    common = {
        "extractor": ed.session_extractor(extractor, steps=args.steps),
        "keywords": list(args.keyword),
        "proposer": proposer,
        "target_session": main,
        "size": args.size,
        "steps": args.steps,
        "filt": QualityFilter(args.identical, args.unrelated, verifier=verifier),
        "seed": args.seed,
        "model": {"model": args.model or "mini", "lora": list(args.lora), "extract_lora": args.extract_lora},
    }
    k = args.keywords_per_item
    if kind == "edit":
        editor = mini.MiniEditor(main, steps=args.steps) if args.mini else ed.session_editor(main, steps=args.steps)
        extra = {"instruction": mini.edit_instruction} if args.mini else {}
        chooser = mini.edit_chooser if args.mini else (lambda kws, rng: ed.choose_keywords(kws, rng, k))
        return ed.EditDataParts(editor=editor, chooser=chooser, **extra, **common)
    if args.mini:
        vlm = mini.MiniVLM()
        return gd.GenDataParts(instruction=lambda kws, t: mini.gen_instruction(kws, vlm.describe(t)),
                               chooser=mini.gen_chooser, **common)  # fmt: skip
    return gd.GenDataParts(chooser=lambda kws, rng: ed.choose_keywords(kws, rng, k), **common)


def _run(args: argparse.Namespace, kind: str) -> int:
    from dreamomni2.synth.edit_data import edit_data
    from dreamomni2.synth.gen_data import gen_data
    from dreamomni2.synth.orchestrate import format_report

    out = _check_out(args)
    items = _items(args.source)
    parts = _parts(args, kind)
    stage = edit_data if kind == "edit" else gen_data
    try:
        report = stage(items, out, parts, progress=not args.quiet, dataset=args.dataset)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if report is None:
        print(f"this shard is done; the last shard to finish writes {out / 'manifest.jsonl'}")
    else:
        print(format_report(report))
        print(f"wrote {out / 'manifest.jsonl'} and {out / 'report.json'}")
    return 0


def edit_data_main(args: argparse.Namespace) -> int:
    """``synth edit-data``."""
    return _run(args, "edit")


def gen_data_main(args: argparse.Namespace) -> int:
    """``synth gen-data``."""
    return _run(args, "gen")
