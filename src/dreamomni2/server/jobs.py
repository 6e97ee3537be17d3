"""The bounded queue in front of the model and its one worker: model work is serialized, waiting is bounded.

:meth:`WorkQueue.submit` admits a request while fewer than ``max_waiting`` jobs wait, else raises
:class:`QueueFull` at once (the app answers 429). One worker coroutine takes jobs in arrival order and runs each in
the same dedicated thread, so the Session is only ever used from that thread and one request at a time. A job
waiting when its client goes away (or its deadline passes) is removed and never runs; a running job is stopped at
its next denoising step (the request's ``progress`` hook raises :class:`JobCancelled`).

Everything but the ``progress`` hook runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from dreamomni2.request import Request
from dreamomni2.server.metrics import Metrics

__all__ = ["Job", "JobCancelled", "QueueFull", "WorkQueue"]

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """A running job was stopped at a denoising step (its client went away or its deadline passed)."""


class QueueFull(Exception):
    """The queue holds ``max_waiting`` jobs already."""

    def __init__(self, depth: int) -> None:
        super().__init__(f"the queue is full ({depth} requests waiting)")
        self.depth = depth


@dataclass(eq=False)
class Job:
    """One admitted request: ``state`` goes ``waiting`` -> ``running`` -> ``done``, or ``waiting`` ->
    ``cancelled``; ``future`` gets the Session's result (or its exception)."""

    request: Request
    deadline: float
    future: asyncio.Future
    abort: threading.Event = field(default_factory=threading.Event)
    state: str = "waiting"
    steps_done: int = 0

    def step(self, step: int, total: int) -> None:
        """The request's progress hook (model thread): record the step, stop here if the job was aborted."""
        self.steps_done = step
        if self.abort.is_set():
            raise JobCancelled(f"stopped after step {step} of {total}")


class WorkQueue:
    """A FIFO of at most ``max_waiting`` jobs and one worker running ``run(request)`` in one thread.

    Args:
        run: the model call (``Session.run``); it is only ever called from the worker thread.
        max_waiting: most jobs waiting (the running one is not counted).
        metrics: where job outcomes and the depth peak are counted.
    """

    def __init__(self, run: Callable[[Request], Any], max_waiting: int, metrics: Metrics) -> None:
        self._run, self.max_waiting, self.metrics = run, max_waiting, metrics
        self._waiting: deque[Job] = deque()
        self.running: Job | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting the running one)."""
        return len(self._waiting)

    def start(self) -> None:
        """Start the worker (call on the running event loop)."""
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dreamomni2-model")
        self._task = asyncio.get_running_loop().create_task(self._work(), name="dreamomni2-worker")

    async def stop(self) -> None:
        """Cancel the waiting jobs, stop the running one at its next step, end the worker."""
        for job in list(self._waiting):
            self.cancel(job)
        if self.running is not None:
            self.running.abort.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, request: Request, deadline: float) -> Job:
        """Queue a checked request; ``deadline`` is a ``time.monotonic()`` time.

        Raises:
            QueueFull: ``max_waiting`` jobs are waiting already (nothing is queued).
        """
        if self._wake is None:
            raise RuntimeError("the queue is not started")
        if len(self._waiting) >= self.max_waiting:
            self.metrics.count_job("rejected_full")
            raise QueueFull(len(self._waiting))
        job = Job(request=request, deadline=deadline, future=asyncio.get_running_loop().create_future())
        job.request = replace(request, progress=job.step)
        self._waiting.append(job)
        self.metrics.count_job("submitted")
        self.metrics.observe_depth(len(self._waiting))
        self._wake.set()
        return job

    def cancel(self, job: Job) -> None:
        """Withdraw a job: a waiting one is removed (it never runs); a running one stops at its next step."""
        if job.state == "waiting":
            self._waiting.remove(job)
            job.state = "cancelled"
            job.future.cancel()
            self.metrics.count_job("cancelled_waiting")
        elif job.state == "running" and not job.abort.is_set():
            job.abort.set()
            self.metrics.count_job("aborted_running")

    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            while not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            await self._run_one(self._waiting.popleft())

    async def _run_one(self, job: Job) -> None:
        job.state, self.running = "running", job
        self.metrics.count_job("started")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self._run, job.request)
        except JobCancelled as e:
            logger.info("Job stopped: %s", e)
            job.future.cancel()
        except Exception as e:  # handed to the waiting handler, which answers 4xx/5xx
            self.metrics.count_job("failed")
            if job.abort.is_set():
                job.future.cancel()
            elif not job.future.done():
                job.future.set_exception(e)
        else:
            self.metrics.count_job("completed")
            if not job.future.done():
                job.future.set_result(result)
        finally:
            job.state, self.running = "done", None
