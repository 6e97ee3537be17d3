"""The server's settings, checked once at start."""

from __future__ import annotations

from dataclasses import dataclass

from dreamomni2 import limits

__all__ = ["DEFAULT_QUEUE", "DEFAULT_TIMEOUT", "ServerConfig"]

#: Default number of requests that may wait for the model (besides the one running).
DEFAULT_QUEUE: int = 16
#: Default per-request deadline in seconds, from arrival to response (queueing included).
DEFAULT_TIMEOUT: float = 300.0


@dataclass(frozen=True)
class ServerConfig:
    """What the HTTP layer needs besides the Session.

    Attributes:
        model_id: the name ``GET /v1/models`` lists (requests may name any model; it is not used).
        api_key: the bearer key every ``/v1`` and ``/metrics`` request must carry; ``None``: no auth.
        queue: most requests waiting for the model; one more gets 429 at once.
        timeout: per-request deadline in seconds (queueing included); past it the client gets 504 and the job
            stops at its next denoising step.
        max_body_bytes: largest request body read; larger ones get 413.
    """

    model_id: str = "dreamomni2"
    api_key: str | None = None
    queue: int = DEFAULT_QUEUE
    timeout: float = DEFAULT_TIMEOUT
    max_body_bytes: int = limits.MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.queue, int) or self.queue < 1:
            raise ValueError(f"--queue must be a positive integer, got {self.queue!r}")
        if not self.timeout > 0:
            raise ValueError(f"--timeout must be a positive number of seconds, got {self.timeout!r}")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise ValueError(f"--max-body-bytes must be an integer of at least 1024, got {self.max_body_bytes!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("--api-key is empty")
