"""BentoML settings of the offer service, shared with the framework-floor benchmark service.

The defaults below are the tuned ones (see the README's load table for before/after):

* ``workers: 1`` -- one uvicorn worker process. On two cores shared with the load
  generator a second worker only adds context switches; scale out with more cores.
* ``logging.access.enabled: false`` -- BentoML's per-request access log line costs more
  than the whole offer computation; request ids still go into the response headers
  and error bodies, and errors are logged.
* ``tracing.sample_rate: 0`` and the API routes in ``tracing.excluded_urls`` -- the
  OpenTelemetry ASGI middleware otherwise builds spans for every request and body chunk.
* ``metrics.enabled: false`` -- the Prometheus middleware writes multiprocess files on
  every request. Turn it back on (``TAILOR_BENTO_CONFIG='{"metrics": {"enabled": true}}'``)
  where a Prometheus scrapes ``/metrics``.
* ``traffic.timeout`` bounds a request; the event loop is uvloop and the HTTP parser
  httptools whenever they are installed (uvicorn's ``auto`` choice).
* ``timeout_fix`` (ours, not BentoML's): BentoML 1.4's ``TimeoutMiddleware`` schedules a
  timer per request and never cancels it, so every request leaves a timer, a future and
  their closures alive for ``traffic.timeout`` seconds (30 s x 2,000 requests/s = 60,000
  timers). The cyclic GC then walks that heap in its full collections: pauses of 50-160 ms
  that grow with the load and were the whole 99th-percentile tail at 16 connections, in the
  offer service and in the framework floor alike. The fix (:func:`install_timeout_fix`)
  keeps the middleware's behaviour -- a 504 when no response has started within the
  timeout -- with :func:`asyncio.timeout`, whose timer is cancelled when the response
  starts, and without the extra task per request.

Both services also call :func:`freeze_startup_heap` once they are set up: what is alive
then (BentoML, pydantic, the lookup store) is moved out of the cyclic GC's reach, so its
full collections no longer walk that heap on the request path.

The offer service's workers call :func:`exit_with_parent`: circus starts each worker in a
session of its own, so a worker whose server process is SIGKILLed would otherwise keep
serving on the inherited socket, with the old store, and a restart would fail with
"Address already in use".

``TAILOR_BENTO_CONFIG`` (a JSON object) is deep-merged over these defaults at import
time; ``TAILOR_BENTO_CONFIG='{"preset": "bentoml-defaults"}'`` starts from BentoML's own
defaults instead (what the benchmark measures as "before").
"""

from __future__ import annotations

import asyncio
import copy
import ctypes
import gc
import json
import logging
import os
import signal
import sys

from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)

ENV = "TAILOR_BENTO_CONFIG"
API_ROUTES = ("/offers", "/scores", "/events")

TUNED: dict = {
    "timeout_fix": True,
    "workers": 1,
    "traffic": {"timeout": 30},
    "logging": {"access": {"enabled": False}},
    "metrics": {"enabled": False},
    "tracing": {"sample_rate": 0.0, "excluded_urls": list(API_ROUTES)},
}
BENTOML_DEFAULTS: dict = {"workers": 1, "traffic": {"timeout": 30}}
PRESETS = {"tuned": TUNED, "bentoml-defaults": BENTOML_DEFAULTS}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def service_config(raw: str | None = None) -> dict:
    """The ``@bentoml.service`` keyword arguments: a preset, then the overrides of ``raw`` (JSON)."""
    raw = os.environ.get(ENV, "") if raw is None else raw
    over = json.loads(raw) if raw.strip() else {}
    if not isinstance(over, dict):
        raise ValueError(f"{ENV} must be a JSON object, got {raw!r}")
    preset = over.pop("preset", "tuned")
    if preset not in PRESETS:
        raise ValueError(f"{ENV}: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    config = _merge(PRESETS[preset], over)
    if config.pop("timeout_fix", False):
        install_timeout_fix()
    return config


#: BentoML's logger of request exceptions (``log_exception``).
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


class ClientErrorFilter(logging.Filter):
    """Log a request BentoML rejected as invalid (pydantic ``ValidationError``, answered 400)
    or cut off as too large (answered 413 by the middleware) as one INFO line, not an ERROR
    with the framework's traceback: a bad client is not a server fault, and its tracebacks
    would bury the real errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "ValidationError":
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = f"{record.getMessage()}: 400, {exc.error_count()} validation error(s)"
            record.args = None
            record.exc_info = record.exc_text = None
        elif exc is not None and type(exc).__name__ == "BodyTooLarge":  # serving.middleware
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = f"{record.getMessage()}: 413, a body of at least {exc.args[0]} bytes"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorFilter` once on BentoML's request-exception logger."""
    log = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in log.filters):
        log.addFilter(ClientErrorFilter())


def freeze_startup_heap() -> None:
    """Collect once, then ``gc.freeze()`` everything alive (call at the end of a service's setup).

    The frozen objects are never walked by later collections: with a large read-only heap
    (the framework's modules, the lookup store) each full collection was otherwise a latency
    spike of tens of milliseconds.
    """
    gc.collect()
    gc.freeze()


async def _timeout_middleware_call(self, scope, receive, send) -> None:
    """``TimeoutMiddleware.__call__`` with the request's timer cancelled (see the module docstring)."""
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    started = False
    deadline = None

    async def _send(message) -> None:
        nonlocal started
        if not started:
            started = True
            deadline.reschedule(None)  # the response has started: no deadline any more
        await send(message)

    try:
        async with asyncio.timeout(self.timeout) as deadline:
            await self.app(scope, receive, _send)
    except TimeoutError:
        if started:  # cannot happen (the deadline is gone once started); never send twice
            raise
        await JSONResponse(
            {"error": f"Not able to process the request in {self.timeout} seconds"},
            status_code=504,
        )(scope, receive, send)


def install_timeout_fix() -> bool:
    """Replace BentoML's ``TimeoutMiddleware.__call__`` by :func:`_timeout_middleware_call` (idempotent).

    Returns False (and changes nothing) when the BentoML installed has no such middleware.
    """
    try:
        from bentoml._internal.server.http import traffic
    except ImportError:  # a BentoML without it: nothing to fix
        return False
    cls = getattr(traffic, "TimeoutMiddleware", None)
    if cls is None:
        return False
    cls.__call__ = _timeout_middleware_call
    return True


#: ``prctl`` option: the signal the kernel sends this process when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def exit_with_parent(sig: int = signal.SIGTERM, force: bool = False) -> bool:
    """In a BentoML worker on Linux, have the kernel send ``sig`` when the server process dies.

    SIGTERM lets the worker shut down as on a normal stop (its exposure journal is moved into
    the log). Does nothing outside a BentoML worker (tests, notebooks) unless ``force``;
    returns True if the signal is armed.
    """
    if not sys.platform.startswith("linux"):
        return False
    if not force:
        from bentoml._internal.context import server_context

        if server_context.worker_index is None:
            return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as exc:  # only the orphan protection is lost
        logger.warning("worker %d will not stop with its server: %s", os.getpid(), exc)
        return False
    return True
