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

``TAILOR_BENTO_CONFIG`` (a JSON object) is deep-merged over these defaults at import
time; ``TAILOR_BENTO_CONFIG='{"preset": "bentoml-defaults"}'`` starts from BentoML's own
defaults instead (what the benchmark measures as "before").
"""

from __future__ import annotations

import copy
import json
import os

ENV = "TAILOR_BENTO_CONFIG"
API_ROUTES = ("/offers", "/scores", "/events")

TUNED: dict = {
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
    return _merge(PRESETS[preset], over)
