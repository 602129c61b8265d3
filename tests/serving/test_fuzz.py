"""Schema-driven fuzzing of every endpoint (schemathesis against the service's OpenAPI spec): no 5xx.

Both valid (positive) and schema-violating (negative) requests are generated for every
operation of the spec, a bounded number of each, with a fixed Hypothesis seed.
"""

from __future__ import annotations

import os
import warnings

import bentoml
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from serving.store import build_store, store_path
from tests.serving.test_service_asgi import META

MAX_EXAMPLES = 30
OPERATIONS = [
    ("POST", "/offers"),
    ("POST", "/scores"),
    ("POST", "/events"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/livez"),
    ("GET", "/metrics"),
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, tiny_frames):
    serving_dir = tmp_path_factory.mktemp("fuzz") / "serving"
    build_store(tiny_frames, store_path(serving_dir), META)
    saved = {k: os.environ.get(k) for k in ("TAILOR_SERVING_DIR", "TAILOR_API_TOKEN")}
    os.environ["TAILOR_SERVING_DIR"] = str(serving_dir)
    os.environ.pop("TAILOR_API_TOKEN", None)
    try:
        from serving.service import Tailor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema = schemathesis.openapi.from_asgi("/docs.json", Tailor.to_asgi())
        yield schema
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_spec_lists_every_endpoint(api_schema):
    ops = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert ops == set(OPERATIONS)


# GET operations take no input, so they have no schema-violating variant
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if m == "POST"
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=lambda v: str(v))
def test_no_server_errors(api_schema, method, path, mode):
    op = api_schema[path][method]
    seen = []
    # schemathesis starts the app (its lifespan) anew for each test; the store is read in a
    # thread, and a 503 "still loading" before it is in would not be a server error
    api_schema["/healthz"]["GET"].Case().call()
    assert bentoml.get_current_service().wait_loaded(60), "the store did not load"

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case):
        response = case.call()
        seen.append(response.status_code)
        assert response.status_code < 500, (
            f"{method} {path} {case.body!r} -> {response.status_code}: {response.text[:300]}"
        )

    run()
    assert seen, "no request was generated"
    if mode == GenerationMode.NEGATIVE and method == "POST":
        assert any(400 <= s < 500 for s in seen), (
            "schema-violating requests must be refused with 4xx"
        )
