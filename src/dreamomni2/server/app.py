"""The FastAPI app: OpenAI's images endpoints over one Session, plus ``/v1/models``, ``/health``, ``/metrics``.

Handlers stay thin: read the body (:mod:`~dreamomni2.server.upload`), decode the images
(:mod:`~dreamomni2.server.decode`), build and check the Request (:mod:`~dreamomni2.server.fields`), queue it
(:mod:`~dreamomni2.server.jobs`), wait for the result, the client leaving or the deadline, and answer in OpenAI's
shape (:mod:`~dreamomni2.server.responses`). Every refusal is an :class:`~dreamomni2.server.errors.ApiError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from dreamomni2.server.config import ServerConfig
from dreamomni2.server.decode import decode_images
from dreamomni2.server.errors import ApiError, error_body, from_request_error
from dreamomni2.server.fields import build_request
from dreamomni2.server.guard import Guard
from dreamomni2.server.jobs import Job, QueueFull, WorkQueue
from dreamomni2.server.metrics import Metrics
from dreamomni2.server.responses import images_response, models_response
from dreamomni2.server.security import check_bearer

__all__ = ["CLIENT_GONE", "ServerState", "create_app"]

logger = logging.getLogger(__name__)

#: The status recorded for a request whose client went away before its answer (nginx's convention).
CLIENT_GONE: int = 499


@dataclass
class ServerState:
    """What the handlers share: the Session, the settings, the queue and the counters."""

    session: Any
    config: ServerConfig
    metrics: Metrics = field(default_factory=Metrics)
    queue: WorkQueue = field(init=False)
    planners: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(self.session.run, self.config.queue, self.metrics)
        self.planners = frozenset({"none", self.session.planner.backend})


def _state(request: HttpRequest) -> ServerState:
    return request.app.state.server


def require_key(request: HttpRequest) -> None:
    """The bearer-key check every ``/v1`` route and ``/metrics`` depend on."""
    if not check_bearer(request.headers.get("authorization"), _state(request).config.api_key):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'", code="invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


def _submit(state: ServerState, request: Any, arrival: float) -> Job:
    try:
        return state.queue.submit(request, deadline=arrival + state.config.timeout)
    except QueueFull as e:
        wait = max(1, math.ceil((e.depth + 1) * state.metrics.typical_latency()))
        headers = {"Retry-After": str(wait)}
        raise ApiError(429, f"{e}; retry after {wait} s", code="queue_full", headers=headers) from None


async def _disconnected(request: HttpRequest) -> None:
    """Return when the client goes away (the body is read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _outcome(job: Job) -> Any:
    """The finished job's result, or its failure as an ApiError."""
    if job.future.cancelled():
        raise ApiError(503, "the server is shutting down; retry", code="unavailable")
    from dreamomni2.planner.base import PlanRefused

    err = job.future.exception()
    if isinstance(err, PlanRefused):  # the planner could not read the instruction: the prompt is at fault
        raise ApiError(400, str(err), param="prompt", code="unplannable_prompt")
    if isinstance(err, (ValueError, TypeError)):
        raise from_request_error(err, {"instruction": "prompt", "images": "image"})
    if err is not None:
        logger.error("The model failed", exc_info=err)
        raise ApiError(500, f"the model failed: {type(err).__name__}: {err}", code="model_error")
    return job.future.result()


async def _wait(state: ServerState, job: Job, request: HttpRequest) -> Any | None:
    """The job's result; ``None`` when the client went away first. Past the deadline: 504 (the job is withdrawn)."""
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        remaining = max(0.0, job.deadline - time.monotonic())
        await asyncio.wait({job.future, watcher}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if job.future.done():
        return _outcome(job)
    state.queue.cancel(job)
    if watcher.done() and not watcher.cancelled():
        logger.info("Client went away; its job was withdrawn (%s)", job.state)
        return None
    raise ApiError(504, f"the request did not finish within the server's deadline of {state.config.timeout:g} s",
                   code="deadline_exceeded")  # fmt: skip


async def _images(request: HttpRequest, task: str) -> Response:
    from dreamomni2.server.upload import read_upload

    state, arrival = _state(request), time.monotonic()
    upload = await read_upload(request)
    images = await run_in_threadpool(decode_images, upload.images)
    checked = build_request(upload.fields, images, task, state.planners, upload.image_field)
    result = await _wait(state, _submit(state, checked, arrival), request)
    if result is None:
        return Response(status_code=CLIENT_GONE)
    body = await run_in_threadpool(images_response, result)
    state.metrics.observe_latency(time.monotonic() - arrival)
    return JSONResponse(body)


def _add_routes(app: FastAPI) -> None:
    auth = [Depends(require_key)]

    @app.post("/v1/images/edits", dependencies=auth)
    async def edits(request: HttpRequest) -> Response:
        """OpenAI's image edit: multipart ``image[]`` (the image to edit first), ``prompt`` and options."""
        return await _images(request, "edit")

    @app.post("/v1/images/generations", dependencies=auth)
    async def generations(request: HttpRequest) -> Response:
        """OpenAI's image generation: JSON (reference ``images`` as data URLs) or multipart."""
        return await _images(request, "generate")

    @app.get("/v1/models", dependencies=auth)
    async def models(request: HttpRequest) -> dict:
        """The one model served."""
        state = _state(request)
        return models_response(state.config.model_id, state.metrics.started, state.session.planner.backend,
                               str(state.session.device))  # fmt: skip

    @app.get("/health")
    async def health(request: HttpRequest) -> dict:
        """Liveness (no key needed): the model is loaded and the worker is up."""
        state = _state(request)
        return {"status": "ok", "model": state.config.model_id, "loaded": bool(state.session.loaded),
                "queue_depth": state.queue.depth}  # fmt: skip

    @app.get("/metrics", dependencies=auth)
    async def metrics(request: HttpRequest) -> dict:
        """Queue depth, requests by status, job outcomes, latency p50/p95 (JSON)."""
        state = _state(request)
        return state.metrics.snapshot(state.queue.depth, state.queue.max_waiting, int(state.queue.running is not None))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: HttpRequest, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: HttpRequest, exc: HTTPException) -> JSONResponse:
        body = error_body(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None)
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def create_app(session: Any, config: ServerConfig) -> FastAPI:
    """The app for a loaded (or lazily loading) Session; the queue's worker starts with the app's lifespan.

    Args:
        session: a :class:`~dreamomni2.session.Session` (anything with ``run``, ``planner``, ``device``, ``loaded``).
        config: the server's settings.
    """
    state = ServerState(session, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.queue.start()
        try:
            yield
        finally:
            await state.queue.stop()

    app = FastAPI(title="DreamOmni2", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = state
    app.add_middleware(Guard, max_body_bytes=config.max_body_bytes, metrics=state.metrics)
    _add_routes(app)
    _add_error_handlers(app)
    return app
