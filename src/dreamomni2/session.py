"""The one request path: a :class:`Session` turns a typed :class:`Request` into a typed :class:`Result`.

Every surface calls it: ``dreamomni2 edit|generate``, :func:`dreamomni2.release.load_release`, the bench runner,
and the web UI / server to come. A Session is built from a model folder (the shipped mini model by default) or from
the release layout (a FLUX.1-Kontext base + ``edit_lora/`` + ``gen_lora/`` + ``vlm-model/``), plus options; it
loads lazily, once, and switches the edit/generate adapters per request::

    from dreamomni2.session import Request, Session

    session = Session()                                     # the mini model; Session("/models/x") for another
    result = session.run(Request("edit", [img1, img2], "give image 1 the colour of image 2"))
    result.images[0].save("out.png"); print(result.prompt, result.seed, result.timings)

Settings left unset in a request come from the model folder's ``dreamomni2.json``
(:class:`~dreamomni2.model_config.ModelDefaults`), then from the library defaults (30 steps, guidance 3.5).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from dreamomni2.latent_cache import DEFAULT_MAX_BYTES, LatentCache
from dreamomni2.model_config import ModelDefaults
from dreamomni2.planner.base import NonePlanner, PlannedPrompt, Planner
from dreamomni2.request import Request, Result, Settings, check_request, resolve_settings

__all__ = ["Request", "Result", "Session", "Settings"]

logger = logging.getLogger(__name__)


class Session:
    """A loaded model (lazily) and its planner; :meth:`run` does one request.

    Args:
        model: a diffusers folder of a FLUX.1-Kontext-architecture model (default: the shipped mini model); with
            ``release``, the base (a folder, or a repo id already in the local Hugging Face cache).
        release: a DreamOmni2 release folder (``edit_lora/``, ``gen_lora/``, optionally ``vlm-model/``): both
            LoRAs load once as adapters ``"edit"`` and ``"generate"``, switched per request.
        loras: further LoRA folders (diffusers format), loaded as adapters ``lora0``, ``lora1`` ... (all active).
        planner: a spec (``none``, ``mini``, ``qwen:DIR``, ``openai:URL[#model]``; with a release also ``auto``,
            ``release``), a :class:`~dreamomni2.planner.Planner`, or ``None`` (the model folder's default planner,
            else ``auto`` for a release and ``none`` otherwise).
        memory: memory mode (:data:`dreamomni2.memory.MEMORY_MODES`).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        dtype: ``auto`` (bf16 on CUDA, else fp32), a name, or a ``torch.dtype``.
        id_policy: reference id policy for every request that does not set one.
        max_area: pixel cap of the output and every input, for every request that does not set one.
        lora_scale: adapter weight of the release LoRAs.
        planner_options: options for the planner backend (``max_new_tokens``, ``api_key``, ``device`` ...).
        offload_hooks, vae_tiling: see :func:`dreamomni2.memory.apply_memory_mode`.
        progress: show diffusers' progress bar while denoising.
        latent_cache_bytes: bound of the reference-latent cache (a reference seen before is not VAE-encoded
            again; 0 turns it off).
        quantize: ``int8``, ``fp8``, ``nf4``, ``bnb-int8``, ``gguf:PATH`` or per component
            (``transformer=nf4,text_encoder_2=int8``, or a dict); see :func:`dreamomni2.knobs.parse_quantize`.
        cache: a step cache on the transformer, ``fbcache:0.05``, ``magcache``, ``taylorseer:5``, ``pab:2``
            (:data:`dreamomni2.knobs.CACHES`).
        compile: regional ``torch.compile`` of the transformer's repeated blocks.
        attention: an attention backend of diffusers' dispatcher (``native``, ``flash``, ``sage`` ...).

    The measured speed and quality cost of each knob is in ``docs/benchmarks.md``.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        release: str | os.PathLike | None = None,
        loras: Sequence[str | os.PathLike] = (),
        planner: str | Planner | None = None,
        memory: str = "full",
        device: str = "auto",
        dtype: Any = "auto",
        id_policy: str | None = None,
        max_area: int | None = None,
        lora_scale: float = 1.0,
        planner_options: dict[str, Any] | None = None,
        offload_hooks: bool | None = None,
        vae_tiling: bool | None = None,
        progress: bool = True,
        latent_cache_bytes: int = DEFAULT_MAX_BYTES,
        quantize: str | dict[str, str] | None = None,
        cache: str | None = None,
        compile: bool = False,
        attention: str | None = None,
    ) -> None:
        from dreamomni2.loading import check_options

        self.options = check_options(
            model=model, release=release, loras=loras, memory=memory, device=device, dtype=dtype,
            id_policy=id_policy, max_area=max_area,
            knobs={"quantize": quantize, "cache": cache, "compile": compile, "attention": attention},
        )  # fmt: skip
        self._setup(planner, float(lora_scale), dict(planner_options or {}), (offload_hooks, vae_tiling), progress)
        self.latent_cache = LatentCache(latent_cache_bytes)

    def _setup(self, planner: Any, lora_scale: float, planner_options: dict, hooks: tuple, progress: bool) -> None:
        """The state every Session has, from :attr:`options` (shared by ``__init__`` and :meth:`from_pipeline`)."""
        self.defaults: ModelDefaults = self.options.defaults
        self.device: str = self.options.device
        self.dtype = self.options.dtype
        self._planner_arg, self.lora_scale, self.planner_options = planner, lora_scale, planner_options
        (self.offload_hooks, self.vae_tiling), self.progress = hooks, progress
        self._pipe: Any = None
        self._planner: Planner | None = None
        self.memory_plan: Any = None
        self.task_adapters: dict[str, str] = {}
        self._shared: dict[str, Any] = {"active_task": None}  # shared with with_planner() copies (one pipeline)
        self.load_seconds = 0.0

    # ------------------------------------------------------------------ building
    @classmethod
    def from_release(cls, base: str | os.PathLike, release: str | os.PathLike, **options: Any) -> Session:
        """A Session on the release layout: ``base`` (FLUX.1-Kontext-dev) + the release folder."""
        return cls(base, release=release, **options)

    @classmethod
    def from_pipeline(
        cls, pipe: Any, planner: str | Planner | None = "none", defaults: ModelDefaults | None = None
    ) -> Session:
        """Wrap an already loaded pipeline (or any callable with its call signature, e.g. a test stub)."""
        from dreamomni2.loading import SessionOptions

        self = cls.__new__(cls)
        device = str(getattr(pipe, "device", "cpu"))
        self.options = SessionOptions(model=None, release=None, loras=(), memory="full", device=device, dtype=None,
                                      id_policy=None, max_area=None, defaults=defaults or ModelDefaults())  # fmt: skip
        self._setup(planner, 1.0, {}, (None, None), True)
        self._pipe = pipe
        self.latent_cache = LatentCache(0)  # a wrapped pipeline keeps its own behaviour
        return self

    def with_planner(self, planner: str | Planner | None) -> Session:
        """A Session sharing this one's pipeline (loaded now if it is not) but planning with ``planner``."""
        self.load()
        other = copy.copy(self)
        other._planner_arg, other._planner = planner, None
        return other

    # ------------------------------------------------------------------ loading
    @property
    def active_task(self) -> str | None:
        """The task whose adapter is active (shared by every Session on the same pipeline)."""
        return self._shared["active_task"]

    @property
    def loaded(self) -> bool:
        """Whether the pipeline is loaded."""
        return self._pipe is not None

    @property
    def pipe(self) -> Any:
        """The pipeline, loaded on first use (once)."""
        if self._pipe is None:
            self.load()
        return self._pipe

    def load(self) -> Session:
        """Load the pipeline, the LoRAs and the memory mode now (a no-op when loaded). Returns ``self``."""
        from dreamomni2.loading import load_pipeline

        if self._pipe is not None:
            return self
        start = time.perf_counter()
        self._pipe, self.task_adapters, self.memory_plan = load_pipeline(
            self.options, self.lora_scale, self.offload_hooks, self.vae_tiling
        )
        if hasattr(self._pipe, "set_progress_bar_config"):
            self._pipe.set_progress_bar_config(disable=not self.progress, desc="denoising")
        if self.latent_cache.max_bytes > 0:
            self._pipe.latent_cache = self.latent_cache
        if self.task_adapters:
            self.use_task("edit")
        self.load_seconds = time.perf_counter() - start
        logger.info("Loaded %s in %.1fs", self.options.model or "the model", self.load_seconds)
        return self

    @property
    def planner(self) -> Planner:
        """The planner, built on first use (a :class:`~dreamomni2.planner.NonePlanner` for ``none``)."""
        if self._planner is None:
            from dreamomni2.loading import build_planner

            self._planner = build_planner(self._planner_arg, self.options, self.planner_options)
        return self._planner

    def use_task(self, task: str) -> str:
        """Activate the task's adapter (release sessions; ``set_adapters``, never a reload). Returns the task."""
        from dreamomni2.tasks import normalize_task

        task = normalize_task(task)
        if self.task_adapters and task != self.active_task:
            logger.debug("Switching the LoRA adapter to %r", self.task_adapters[task])
            self.pipe.set_adapters(self.task_adapters[task], adapter_weights=self.lora_scale)
        self._shared["active_task"] = task
        return task

    # ------------------------------------------------------------------ requests
    def plan(self, images: Sequence[Any], instruction: str, task: str) -> PlannedPrompt:
        """Plan one prompt, moving models around the planning phase as the memory mode says."""
        from dreamomni2.memory import prepare_for_denoising, prepare_for_planning

        planner = self.planner
        if isinstance(planner, NonePlanner) or self.memory_plan is None:
            return planner.plan(list(images), instruction, task)
        prepare_for_planning(self._pipe, planner, self.memory_plan, self.device)
        try:
            return planner.plan(list(images), instruction, task)
        finally:
            prepare_for_denoising(self._pipe, planner, self.memory_plan, self.device)

    def _planned(self, request: Request) -> PlannedPrompt:
        if request.prompt is not None:
            return PlannedPrompt(prompt=request.prompt, raw_reply="", backend="given", fell_back=False)
        if not request.plan:
            return NonePlanner().plan(list(request.images), request.instruction, request.task)
        return self.plan(request.images, request.instruction, request.task)

    def run(self, request: Request) -> Result:
        """Plan (unless the request is already planned or planning is off), switch the adapter, draw.

        Raises:
            ValueError / TypeError: a bad request (the message names the field).
        """
        return self.run_batch([request])[0]

    def run_batch(self, requests: Sequence[Request]) -> list[Result]:
        """Run several requests; those that share task, image count and settings go through one pipeline call.

        Each request keeps its own seed (one generator each), so a batch gives the images of single calls (up to
        float rounding). Pipelines without latent stages (test stubs) run one request per call.
        """
        from dreamomni2.draw import draw

        if not requests:
            return []
        checked = [check_request(r) for r in requests]
        timings: list[dict[str, float]] = [{"load": 0.0} for _ in checked]
        planned = []
        for r, t in zip(checked, timings, strict=True):
            start = time.perf_counter()
            planned.append(self._planned(r))
            t["plan"] = time.perf_counter() - start
        if not self.loaded:
            self.load()
            timings[0]["load"] = self.load_seconds
        settings = [resolve_settings(r, self.defaults, self.options) for r in checked]
        return draw(self, checked, planned, settings, timings)
