"""Speed and memory knobs: quantization, step caches, regional compile and the attention backend.

Every knob is an option of :class:`~dreamomni2.session.Session` (and a flag of every command that builds one,
:func:`dreamomni2.cli.run.add_session_arguments`); this module parses and checks them (pure, before anything
loads) and applies them to a loaded pipeline. All of them call diffusers:

* ``quantize``: ``int8`` (torchao int8 weight-only; CPU and CUDA), ``fp8`` (torchao float8 weight-only; CUDA with
  compute capability 8.9+), ``nf4`` / ``bnb-int8`` (bitsandbytes 4-bit NF4 / LLM.int8; CUDA only) -- by default on
  the transformer and the T5 encoder, or per component (``transformer=nf4,text_encoder_2=int8``) -- and
  ``gguf:PATH`` (a single-file GGUF transformer, e.g. a Q4/Q8 FLUX.1-Kontext-dev file, loaded with diffusers'
  ``from_single_file`` and ``GGUFQuantizationConfig``).
* ``cache``: a diffusers step cache on the transformer -- ``fbcache:T`` (First-Block-Cache, residual threshold T),
  ``magcache:T`` (MagCache with diffusers' FLUX.1 magnitude ratios), ``taylorseer:N`` (TaylorSeer, full step every
  N steps), ``pab:N`` (Pyramid Attention Broadcast, attention reused for N steps). (diffusers' SeaCache needs a
  model-specific raw-latent callback and FasterCache targets CFG video models; they are not offered.) The
  cache state is reset at the start and the end of every pipeline call, so images and batches never share it.
* ``compile``: regional ``torch.compile`` of the transformer's repeated blocks (diffusers'
  ``compile_repeated_blocks``).
* ``attention``: an attention backend of diffusers' dispatcher (``native``, ``_native_math``, ``flash``,
  ``sage`` ...; ``set_attention_backend``).

Errors are ``ValueError`` naming the option (``--quantize``, ``--cache``, ``--attention``), so the CLI prints them
as they are. The measured speed and quality cost of each knob on the mini bench is in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CACHES",
    "QUANTIZERS",
    "QUANT_COMPONENTS",
    "CacheSpec",
    "StepCache",
    "apply_speed_knobs",
    "attention_backends",
    "cache_context",
    "check_attention",
    "check_quantize",
    "load_gguf_transformer",
    "parse_cache",
    "parse_quantize",
    "quantization_config",
]

logger = logging.getLogger(__name__)

#: Quantizer name -> (backend package, devices it runs on, what it is).
QUANTIZERS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "int8": ("torchao", ("cpu", "cuda"), "torchao int8 weight-only"),
    "fp8": ("torchao", ("cuda",), "torchao float8 weight-only (compute capability 8.9+)"),
    "nf4": ("bitsandbytes", ("cuda",), "bitsandbytes 4-bit NF4"),
    "bnb-int8": ("bitsandbytes", ("cuda",), "bitsandbytes LLM.int8"),
}
#: Components ``--quantize`` may name (``gguf:PATH`` is for the transformer only).
QUANT_COMPONENTS: tuple[str, ...] = ("transformer", "text_encoder_2", "text_encoder")
#: What a bare quantizer name (``--quantize nf4``) quantizes: the two big models.
DEFAULT_QUANT_COMPONENTS: tuple[str, ...] = ("transformer", "text_encoder_2")
#: Cache name -> (value meaning, default value, value type).
CACHES: dict[str, tuple[str, float, type]] = {
    "fbcache": ("relative residual threshold of the first block", 0.05, float),
    "magcache": ("accumulated magnitude-error threshold", 0.06, float),
    "taylorseer": ("full transformer step every N steps", 5, int),
    "pab": ("attention reused for N steps (in timesteps 100-800)", 2, int),
}
_EXTRA = "pip install 'dreamomni2[quant]'"


# ------------------------------------------------------------------------------------------- quantize


def _parse_method(item: str, method: str, component: str) -> str:
    method = method.strip()
    if method.lower().startswith("gguf:"):
        if component != "transformer":
            raise ValueError(f"--quantize {item}: gguf files hold the transformer only, not {component}")
        path = method[5:].strip()
        if not path:
            raise ValueError(f"--quantize {item}: name the file, gguf:PATH")
        return "gguf:" + path
    if method.lower() not in QUANTIZERS:
        raise ValueError(f"--quantize {item}: unknown quantizer {method!r}; use {', '.join(QUANTIZERS)} or gguf:PATH")
    return method.lower()


def parse_quantize(spec: str | dict[str, str] | None) -> dict[str, str]:
    """Parse ``--quantize``: component -> quantizer (``int8``, ``fp8``, ``nf4``, ``bnb-int8``, ``gguf:PATH``).

    ``NAME`` quantizes :data:`DEFAULT_QUANT_COMPONENTS` (``gguf:PATH``: the transformer); ``comp=NAME,...`` names
    each component (a dict of the same form is accepted too). ``None``, ``""`` and ``none`` mean no quantization.

    Args:
        spec: the option's value.

    Returns:
        ``{component: quantizer}`` (empty for none).

    Raises:
        ValueError: naming ``--quantize`` and the bad item.
    """
    if spec is None:
        return {}
    if isinstance(spec, dict):
        items = [f"{k}={v}" for k, v in spec.items()]
    elif isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        raise ValueError(f"--quantize: expected a string or a dict, got {type(spec).__name__}")
    if not items or (len(items) == 1 and items[0].lower() == "none"):
        return {}
    out: dict[str, str] = {}
    for item in items:
        comp, sep, method = item.partition("=")
        if not sep:
            if len(items) > 1:
                raise ValueError(f"--quantize {spec}: name each component when giving several (transformer=int8,...)")
            method = _parse_method(item, item, "transformer")
            comps = ("transformer",) if method.startswith("gguf:") else DEFAULT_QUANT_COMPONENTS
            return dict.fromkeys(comps, method)
        comp = comp.strip()
        if comp not in QUANT_COMPONENTS:
            raise ValueError(f"--quantize {item}: unknown component {comp!r}; use {', '.join(QUANT_COMPONENTS)}")
        if comp in out:
            raise ValueError(f"--quantize {item}: {comp} is given twice")
        out[comp] = _parse_method(item, method, comp)
    return out


def _cuda_capability(device: str) -> tuple[int, int]:
    import torch

    return torch.cuda.get_device_capability(torch.device(device))


def check_quantize(plan: dict[str, str], device: str) -> None:
    """Check every quantizer of ``plan`` can run: its backend is installed and the device supports it.

    Args:
        plan: :func:`parse_quantize`'s result.
        device: the resolved device (``cpu``, ``cuda``, ``cuda:N``, ``mps``).

    Raises:
        ValueError: one line naming ``--quantize``, the quantizer and what is missing.
    """
    base = str(device).split(":", 1)[0]
    for comp, method in plan.items():
        if method.startswith("gguf:"):
            path = Path(method[5:])
            if not path.is_file():
                raise ValueError(f"--quantize {method}: no such file")
            if path.suffix.lower() != ".gguf":
                raise ValueError(f"--quantize {method}: not a .gguf file")
            package, devices, what = "gguf", ("cpu", "cuda"), "GGUF"
        else:
            package, devices, what = QUANTIZERS[method]
        if base not in devices:
            raise ValueError(f"--quantize {method}: {what} runs on {' or '.join(devices)} only, not on {device}")
        if importlib.util.find_spec(package) is None:
            raise ValueError(f"--quantize {method}: {what} needs the {package} package ({_EXTRA})")
        if method == "fp8" and (capability := _cuda_capability(device)) < (8, 9):
            major, minor = capability
            raise ValueError(f"--quantize fp8: needs a GPU of compute capability 8.9+ (Ada/Hopper), this one is "
                             f"{major}.{minor}; use int8 or nf4")  # fmt: skip
        logger.debug("quantize %s with %s", comp, method)


def _config_for(method: str, library: str, dtype: Any) -> Any:
    """The quantization config of ``method`` from ``library`` (``diffusers`` or ``transformers``)."""
    lib = importlib.import_module(library)
    if method in ("int8", "fp8"):
        from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig

        return lib.TorchAoConfig(Int8WeightOnlyConfig() if method == "int8" else Float8WeightOnlyConfig())
    if method == "nf4":
        return lib.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
    return lib.BitsAndBytesConfig(load_in_8bit=True)


def quantization_config(plan: dict[str, str], dtype: Any) -> Any:
    """diffusers' ``PipelineQuantizationConfig`` for the non-GGUF entries of ``plan`` (``None`` when there are none).

    Args:
        plan: :func:`parse_quantize`'s result (checked with :func:`check_quantize`).
        dtype: the compute dtype (NF4's ``bnb_4bit_compute_dtype``).
    """
    from diffusers import PipelineQuantizationConfig

    mapping = {
        comp: _config_for(method, "diffusers" if comp == "transformer" else "transformers", dtype)
        for comp, method in plan.items()
        if not method.startswith("gguf:")
    }
    return PipelineQuantizationConfig(quant_mapping=mapping) if mapping else None


def load_gguf_transformer(path: str | Path, model: str | Path, dtype: Any) -> Any:
    """Load a single-file GGUF FLUX transformer (diffusers' ``from_single_file`` + ``GGUFQuantizationConfig``).

    Args:
        path: the ``.gguf`` file (original BFL key names, or diffusers names).
        model: the model folder whose ``transformer/config.json`` describes the architecture (nothing downloads).
        dtype: the compute dtype.

    Returns:
        The ``FluxTransformer2DModel`` (weights stay quantized; dequantized layer by layer when run).

    Raises:
        ValueError: the file cannot be read as a GGUF transformer of that architecture.
    """
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig

    try:
        return FluxTransformer2DModel.from_single_file(
            str(path), quantization_config=GGUFQuantizationConfig(compute_dtype=dtype), config=str(model),
            subfolder="transformer", local_files_only=True, torch_dtype=dtype,
        )  # fmt: skip
    except Exception as e:  # gguf / diffusers raise several types for a bad or mismatched file
        why = " ".join(str(e).split())[:300]
        raise ValueError(f"--quantize gguf:{path}: cannot load it as this model's transformer ({why})") from None


# ------------------------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class CacheSpec:
    """A parsed ``--cache`` value: the hook's name and its value (threshold or step count)."""

    name: str
    value: float

    def __str__(self) -> str:
        return f"{self.name}:{self.value:g}"

    def config(self, num_steps: int, pipe: Any = None) -> Any:
        """The diffusers config of this cache for a run of ``num_steps`` steps."""
        from diffusers import hooks

        if self.name == "fbcache":
            return hooks.FirstBlockCacheConfig(threshold=self.value)
        if self.name == "magcache":
            from diffusers.hooks.mag_cache import FLUX_MAG_RATIOS

            return hooks.MagCacheConfig(threshold=self.value, num_inference_steps=num_steps, mag_ratios=FLUX_MAG_RATIOS)
        if self.name == "taylorseer":
            return hooks.TaylorSeerCacheConfig(cache_interval=int(self.value), taylor_factors_dtype=_dtype_of(pipe))
        if self.name == "pab":
            return hooks.PyramidAttentionBroadcastConfig(
                spatial_attention_block_skip_range=int(self.value), current_timestep_callback=lambda: _timestep(pipe)
            )
        raise ValueError(f"--cache {self.name}: unknown cache")


def _dtype_of(pipe: Any) -> Any:
    import torch

    return getattr(getattr(pipe, "transformer", None), "dtype", torch.float32)


def _timestep(pipe: Any) -> float:
    t = getattr(pipe, "current_timestep", None)
    return -1.0 if t is None else float(t)


def parse_cache(spec: str | None) -> CacheSpec | None:
    """Parse ``--cache``: ``NAME`` or ``NAME:VALUE`` (:data:`CACHES`); ``None``/``""``/``none``/``off`` -> ``None``.

    Raises:
        ValueError: naming ``--cache`` and what is wrong.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none", "off")):
        return None
    if not isinstance(spec, str):
        raise ValueError(f"--cache: expected a string, got {type(spec).__name__}")
    name, sep, raw = spec.strip().partition(":")
    name = name.lower()
    if name not in CACHES:
        raise ValueError(f"--cache {spec}: unknown cache {name!r}; use one of {', '.join(CACHES)} (NAME or NAME:VALUE)")
    meaning, default, kind = CACHES[name]
    if not sep:
        return CacheSpec(name, float(default))
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"--cache {spec}: {raw!r} is not {what} ({meaning})") from None
    if value < 1 if kind is int else not 0 <= value < float("inf"):  # (NaN fails the float test too)
        raise ValueError(f"--cache {spec}: the value must be {'>= 0' if kind is float else '>= 1'} ({meaning})")
    return CacheSpec(name, float(value))


class StepCache:
    """Keeps one diffusers cache hook on a pipeline's transformer, fresh for every pipeline call.

    :class:`~dreamomni2.pipeline.DreamOmni2Pipeline` calls :meth:`begin` before its denoising loop (the pipeline's
    ``step_cache`` attribute) and wraps each transformer call in :func:`cache_context`; diffusers resets the hook
    state again at the end of the call (``maybe_free_model_hooks``).
    """

    def __init__(self, spec: CacheSpec) -> None:
        self.spec = spec
        self._steps: int | None = None

    def begin(self, pipe: Any, num_steps: int) -> None:
        """Enable the hook (again, when its config depends on the step count) and reset its state."""
        transformer = pipe.transformer
        if self._steps is None or (self.spec.name == "magcache" and num_steps != self._steps):
            if getattr(transformer, "is_cache_enabled", False):
                transformer.disable_cache()
            transformer.enable_cache(self.spec.config(num_steps, pipe))
            self._steps = num_steps
        transformer._reset_stateful_cache()


def cache_context(transformer: Any, name: str, step: int, num_steps: int, timestep: Any) -> Any:
    """diffusers' ``transformer.cache_context`` for one call when a cache hook is on, else a no-op context."""
    if not getattr(transformer, "is_cache_enabled", False):
        return contextlib.nullcontext()
    sigma = float(timestep) / 1000.0
    return transformer.cache_context(name, step_index=step, num_inference_steps=num_steps, timestep=timestep,
                                     sigma=sigma)  # fmt: skip


# ------------------------------------------------------------------------------------------- attention, apply


def attention_backends() -> tuple[str, ...]:
    """The attention backend names diffusers' dispatcher knows (not all are installed or run on every device)."""
    from diffusers.models.attention_dispatch import AttentionBackendName

    return tuple(b.value for b in AttentionBackendName)


def check_attention(name: str | None) -> str | None:
    """Check ``--attention`` is a backend name (``None``/``""``/``default``: keep diffusers' default).

    Raises:
        ValueError: naming ``--attention`` and listing the names.
    """
    if name is None or (isinstance(name, str) and name.strip().lower() in ("", "default")):
        return None
    names = attention_backends()
    if not isinstance(name, str) or name.strip().lower() not in names:
        raise ValueError(f"--attention {name}: unknown backend; use one of {', '.join(names)}")
    return name.strip().lower()


def apply_speed_knobs(pipe: Any, cache: CacheSpec | None, compile_blocks: bool, attention: str | None) -> None:
    """Apply the attention backend, the step cache and regional compile to a loaded pipeline (in that order).

    Raises:
        ValueError: the attention backend is not usable here (not installed, or not for this device).
    """
    transformer = pipe.transformer
    if attention is not None:
        try:
            transformer.set_attention_backend(attention)
        except Exception as e:  # diffusers raises RuntimeError/ImportError/ValueError for unusable backends
            raise ValueError(f"--attention {attention}: {' '.join(str(e).split())[:300]}") from None
    if cache is not None:
        pipe.step_cache = StepCache(cache)
    if compile_blocks:
        # diffusers' regional compile: each repeated block (FluxTransformerBlock, FluxSingleTransformerBlock)
        # compiles once and is reused, so compile time does not grow with the depth.
        transformer.compile_repeated_blocks(dynamic=True)
    logger.info("Speed knobs: attention=%s cache=%s compile=%s", attention or "default", cache, compile_blocks)
