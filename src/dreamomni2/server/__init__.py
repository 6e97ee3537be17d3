"""``dreamomni2 serve``: an OpenAI-compatible REST server over one :class:`~dreamomni2.session.Session`.

A thin HTTP layer (FastAPI + uvicorn, the ``[serve]`` extra) in modules by concept:

* :mod:`~dreamomni2.server.config` — the server's settings (:class:`ServerConfig`);
* :mod:`~dreamomni2.server.security` — the loopback rule for binding without a key, bearer-key checks;
* :mod:`~dreamomni2.server.errors` — :class:`ApiError` and OpenAI's error shape, ``Request.X`` -> field ``X``;
* :mod:`~dreamomni2.server.upload` — reading a multipart or JSON body into fields and image bytes;
* :mod:`~dreamomni2.server.decode` — uploaded bytes and data URLs -> PIL images (the CLI's loading rules);
* :mod:`~dreamomni2.server.fields` — HTTP fields -> a checked :class:`~dreamomni2.request.Request`;
* :mod:`~dreamomni2.server.jobs` — the bounded queue and the one model worker thread;
* :mod:`~dreamomni2.server.metrics` — counters and latency percentiles for ``GET /metrics``;
* :mod:`~dreamomni2.server.guard` — ASGI middleware: body-bytes limit, requests counted by status;
* :mod:`~dreamomni2.server.responses` — results -> OpenAI's images response;
* :mod:`~dreamomni2.server.app` — the FastAPI app and its routes;
* :mod:`~dreamomni2.server.listen` — binding, warming up and running uvicorn.

Nothing here is imported by ``import dreamomni2`` or by the other CLI commands; fastapi is imported only in this
package.
"""
