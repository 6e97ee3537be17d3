"""Checking a Session's options, loading its pipeline (model folder or release layout) and building its planner.

Everything is checked before anything heavy loads; errors are ``ValueError`` / ``FileNotFoundError`` that name the
option (``--model``, ``--lora``, ``--release``, ``--memory``, ``--planner`` ...), so the CLI prints them as they are.
Nothing is ever downloaded: every ``from_pretrained`` runs with ``local_files_only=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dreamomni2.model_config import ModelDefaults
from dreamomni2.planner.base import NonePlanner, Planner

__all__ = [
    "LORA_FILES",
    "LORA_WEIGHT_NAME",
    "RELEASE_LORAS",
    "VLM_DIR",
    "SessionOptions",
    "build_planner",
    "check_options",
    "check_release_folder",
    "load_pipeline",
    "model_dir",
]

logger = logging.getLogger(__name__)

#: The file name of a diffusers-format LoRA.
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
#: Task -> the release's LoRA folder; each loads as the adapter named after its task.
RELEASE_LORAS: dict[str, str] = {"edit": "edit_lora", "generate": "gen_lora"}
#: The release's planner folder (a Qwen2.5-VL in transformers format).
VLM_DIR = "vlm-model"


#: Task -> the release's LoRA file, relative to the release folder.
LORA_FILES: dict[str, str] = {task: f"{sub}/{LORA_WEIGHT_NAME}" for task, sub in RELEASE_LORAS.items()}


def check_release_folder(release: str | os.PathLike, require_vlm: bool = False) -> dict[str, Path | None]:
    """Check the release folder layout and return its parts.

    Args:
        release: the release folder (holding ``edit_lora/``, ``gen_lora/`` and optionally ``vlm-model/``).
        require_vlm: also require ``vlm-model/config.json`` (when the planner is requested).

    Returns:
        ``{"edit": Path, "generate": Path, "vlm": Path | None}``: the two LoRA folders and the VLM folder
        (``None`` when absent and not required).

    Raises:
        FileNotFoundError: naming the exact missing folder or file.
    """
    root = Path(release)
    if not root.is_dir():
        raise FileNotFoundError(f"DreamOmni2 release folder {str(root)!r} does not exist.")
    parts: dict[str, Path | None] = {}
    for task, rel in LORA_FILES.items():
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: a DreamOmni2 release folder needs {' and '.join(LORA_FILES.values())} "
                "(diffusers-format LoRAs)."
            )
        parts[task] = path.parent
    vlm = root / VLM_DIR
    if (vlm / "config.json").is_file():
        parts["vlm"] = vlm
    elif require_vlm:
        missing = vlm if not vlm.is_dir() else vlm / "config.json"
        raise FileNotFoundError(
            f"{missing} is missing: the planner needs the release's {VLM_DIR}/ (a Qwen2.5-VL folder); "
            "pass planner='none' to run without it."
        )
    else:
        parts["vlm"] = None
    return parts


def _check_weight_headers(loras: Sequence[str | os.PathLike], release: str | os.PathLike | None) -> None:
    """Read the header of every LoRA file (cheap), so a damaged or truncated one is named before anything loads."""
    from safetensors import safe_open

    files: list[tuple[str, Path]] = []
    for lora in loras:
        path = Path(lora)
        files += [(f"--lora {lora}", f) for f in (sorted(path.glob("*.safetensors")) if path.is_dir() else [path])]
    if release is not None:
        files += [(f"--release {release}", Path(release) / rel) for rel in LORA_FILES.values()]
    for flag, file in files:
        if file.suffix != ".safetensors" or not file.is_file():
            continue
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except Exception as e:  # safetensors raises its own error type (and OSError) on a damaged header
            why = " ".join(str(e).split())
            raise ValueError(f"{flag}: {file.name} is not a readable safetensors file ({why})") from None


@dataclass(frozen=True)
class SessionOptions:
    """A Session's checked options (see :class:`dreamomni2.session.Session` for their meaning)."""

    model: str | None
    release: str | None
    loras: tuple[str, ...]
    memory: str
    device: str
    dtype: Any
    id_policy: str | None
    max_area: int | None
    defaults: ModelDefaults
    #: component -> quantizer (:func:`dreamomni2.knobs.parse_quantize`); empty: none.
    quantize: dict[str, str] = field(default_factory=dict)
    #: the step cache (:func:`dreamomni2.knobs.parse_cache`), or ``None``.
    cache: Any = None
    #: regional ``torch.compile`` of the transformer blocks.
    compile: bool = False
    #: attention backend (:func:`dreamomni2.knobs.check_attention`), ``None``: diffusers' default.
    attention: str | None = None


def model_dir(model: str | os.PathLike | None) -> Path:
    """``model``, else the shipped mini model's folder.

    Raises:
        ValueError: no model given and the mini model is not installed.
    """
    if model is not None:
        return Path(model)
    from dreamomni2.mini import default_model_path

    default = default_model_path()
    if default is None:
        raise ValueError("no model given: pass --model DIR (try `dreamomni2 make-tiny DIR` for a tiny offline one)")
    return default


def check_options(
    model: str | os.PathLike | None,
    release: str | os.PathLike | None,
    loras: Sequence[str | os.PathLike],
    memory: str,
    device: str,
    dtype: Any,
    id_policy: str | None,
    max_area: int | None,
    *,
    knobs: dict[str, Any] | None = None,
) -> SessionOptions:
    """Check every option and read the model folder's defaults; nothing heavy is loaded.

    ``knobs``: ``quantize``, ``cache``, ``compile``, ``attention`` (see :mod:`dreamomni2.knobs`).
    """
    from dreamomni2.devices import resolve_device, resolve_dtype
    from dreamomni2.ids import get_policy
    from dreamomni2.knobs import check_quantize
    from dreamomni2.memory import check_memory_mode

    check_memory_mode(memory)
    knob_options = _check_knobs(knobs or {})
    if id_policy is not None:
        get_policy(id_policy)
    if max_area is not None and (not isinstance(max_area, int) or max_area < 256):
        raise ValueError(f"--max-area {max_area}: must be an integer of at least 256 pixels")
    if release is not None and model is None:
        raise ValueError("--release needs --model: the FLUX.1-Kontext-dev base folder")
    folder = model_dir(model)
    if release is None and not (folder / "model_index.json").is_file():
        raise ValueError(f"--model {folder}: not a diffusers pipeline folder (no model_index.json)")
    for lora in loras:
        if not Path(lora).exists():
            raise ValueError(f"--lora {lora}: no such file or folder")
    if release is not None:
        check_release_folder(release)
    defaults = ModelDefaults.read(folder) if (folder / "model_index.json").is_file() else ModelDefaults()
    dev = resolve_device(device)
    check_quantize(knob_options["quantize"], dev)
    return SessionOptions(
        model=os.fspath(folder), release=None if release is None else os.fspath(release),
        loras=tuple(os.fspath(x) for x in loras), memory=memory, device=dev, dtype=resolve_dtype(dtype, dev),
        id_policy=id_policy, max_area=max_area, defaults=defaults, **knob_options,
    )  # fmt: skip


def _check_knobs(knobs: dict[str, Any]) -> dict[str, Any]:
    """Parse the speed/memory knobs (:mod:`dreamomni2.knobs`); the device checks come once it is resolved."""
    from dreamomni2.knobs import check_attention, parse_cache, parse_quantize

    unknown = set(knobs) - {"quantize", "cache", "compile", "attention"}
    if unknown:
        raise TypeError(f"unknown knob(s): {', '.join(sorted(unknown))}")
    return {
        "quantize": parse_quantize(knobs.get("quantize")),
        "cache": parse_cache(knobs.get("cache")),
        "compile": bool(knobs.get("compile", False)),
        "attention": check_attention(knobs.get("attention")),
    }


def _from_pretrained(options: SessionOptions) -> Any:
    from dreamomni2.pipeline import DreamOmni2Pipeline

    try:
        return DreamOmni2Pipeline.from_pretrained(options.model, dtype=options.dtype, local_files_only=True,
                                                  **_quantized_parts(options))  # fmt: skip
    except (OSError, ValueError) as err:
        if "safetensors" in str(err) and os.path.isdir(options.model):
            raise ValueError(f"--model {options.model}: {err} (weights load from safetensors only; pickle .bin "
                             "files are never loaded)") from None  # fmt: skip
        if options.release is None or (isinstance(err, ValueError) and os.path.isdir(options.model)):
            raise  # a real folder with a bad config: not a "missing" error
        raise FileNotFoundError(
            f"Cannot load the base model {options.model!r} locally (a FLUX.1-Kontext-dev diffusers folder, or a "
            f"repo id already in the Hugging Face cache; nothing is downloaded): {err}"
        ) from err


def _quantized_parts(options: SessionOptions) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for ``--quantize``: a quantization config and/or a GGUF transformer."""
    from dreamomni2.knobs import load_gguf_transformer, quantization_config

    if not options.quantize:
        return {}
    kwargs: dict[str, Any] = {}
    config = quantization_config(options.quantize, options.dtype)
    if config is not None:
        kwargs["quantization_config"] = config
    gguf = options.quantize.get("transformer", "")
    if gguf.startswith("gguf:"):
        logger.info("Loading the transformer from %s", gguf[5:])
        kwargs["transformer"] = load_gguf_transformer(gguf[5:], options.model, options.dtype)
    return kwargs


def load_pipeline(
    options: SessionOptions, lora_scale: float = 1.0, offload_hooks: bool | None = None, vae_tiling: bool | None = None
) -> tuple[Any, dict[str, str], Any]:
    """Load the pipeline once, its LoRAs once, and apply the memory mode.

    Returns:
        ``(pipe, task_adapters, memory_plan)``; ``task_adapters`` maps ``edit``/``generate`` to the release's
        adapter names (empty without a release).
    """
    from dreamomni2.memory import apply_memory_mode

    _check_weight_headers(options.loras, options.release)  # a damaged LoRA is named before the base loads
    logger.info("Loading the pipeline from %s (%s)", options.model, options.dtype)
    pipe = _from_pretrained(options)
    adapters: dict[str, str] = {}
    if options.release is not None:
        for task, sub in RELEASE_LORAS.items():
            folder = Path(options.release) / sub
            logger.info("Loading the %s LoRA from %s as adapter %r", task, folder, task)
            pipe.load_lora_weights(os.fspath(folder), weight_name=LORA_WEIGHT_NAME, adapter_name=task)
            adapters[task] = task
    for k, lora in enumerate(options.loras):
        pipe.load_lora_weights(lora, adapter_name=f"lora{k}")
    plan = apply_memory_mode(pipe, options.memory, device=options.device, offload_hooks=offload_hooks,
                             vae_tiling=vae_tiling)  # fmt: skip
    if options.cache is not None or options.compile or options.attention is not None:
        from dreamomni2.knobs import apply_speed_knobs

        apply_speed_knobs(pipe, options.cache, options.compile, options.attention)
    return pipe, adapters, plan


def _release_spec(spec: str, release: str | None) -> str | None:
    """``auto``/``release``/``qwen`` with a release -> ``qwen:<release>/vlm-model`` (``None``: no planner)."""
    if release is None or spec.lower() not in ("auto", "release", "qwen"):
        return spec
    vlm = Path(release) / VLM_DIR
    if (vlm / "config.json").is_file():
        return f"qwen:{vlm}"
    if spec.lower() == "auto":
        logger.info("No %s/ in the release folder: running without a planner.", VLM_DIR)
        return None
    missing = vlm if not vlm.is_dir() else vlm / "config.json"
    raise FileNotFoundError(
        f"{missing} is missing: the planner needs the release's {VLM_DIR}/ (a Qwen2.5-VL folder); "
        "pass planner='none' to run without it."
    )


def build_planner(planner: str | Planner | None, options: SessionOptions, planner_options: dict[str, Any]) -> Planner:
    """The session's planner: a given instance, a spec, or the model folder's default (``none`` without one).

    Local planners default to the session's device and dtype (``planner_options`` may override both).
    """
    from dreamomni2.planner.factory import make_planner

    if isinstance(planner, Planner) or (planner is not None and callable(getattr(planner, "plan", None))):
        return planner  # a planner instance (or any object with Planner.plan's signature)
    if planner is not None and not isinstance(planner, str):
        raise TypeError(f"planner must be a spec string or a Planner, got {type(planner).__name__}")
    if planner is None:
        planner = options.defaults.planner or ("auto" if options.release else "none")
    spec = _release_spec(planner.strip(), options.release)
    if spec is None or spec.lower() == "none":
        return NonePlanner()
    kwargs = {"device": options.device, "dtype": options.dtype, **planner_options}
    return make_planner(spec, **kwargs)
