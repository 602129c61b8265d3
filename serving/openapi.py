"""The offer service's OpenAPI spec: BentoML's generated one, with the answers it leaves out.

BentoML 1.4 documents every API with its own error bodies: a 400 whose ``detail`` is a
string (ours is a list of field errors), and no 401 (bearer token), 413 (body too large) or
503 (no store or model yet). ``/readyz`` is documented as a bare 200. A client generated
from that spec mis-reads our errors, so :func:`complete_spec` rewrites those parts to what
the service really answers; the middleware serves the result at ``/docs.json``.
"""

from __future__ import annotations

import copy

API_PATHS = ("/offers", "/scores", "/events")
#: Paths that answer 503 while the store or one of their models is missing.
NEEDS_STORE = ("/offers", "/scores")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_REQUEST_ID = {"type": "string", "description": "the X-Request-ID header of this answer"}

SCHEMAS: dict[str, dict] = {
    "ErrorBody": {
        "type": "object",
        "title": "ErrorBody",
        "required": ["error", "request_id"],
        "properties": {"error": {"type": "string"}, "request_id": _REQUEST_ID},
    },
    "FieldError": {
        "type": "object",
        "title": "FieldError",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "description": 'where in the body, e.g. ["context", "date"]',
            },
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    },
    "InvalidArgument": {
        "type": "object",
        "title": "InvalidArgument",
        "required": ["error", "request_id"],
        "properties": {
            "error": {"type": "string"},
            "request_id": _REQUEST_ID,
            "detail": {
                "type": "array",
                "items": _ref("FieldError"),
                "description": "one entry per invalid field (absent for a body that is not JSON)",
            },
        },
        "description": "Bad Request",
    },
    "Unavailable": {
        "type": "object",
        "title": "Unavailable",
        "required": ["error", "request_id", "missing"],
        "properties": {
            "error": {"type": "string"},
            "request_id": _REQUEST_ID,
            "missing": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Readiness": {
        "type": "object",
        "title": "Readiness",
        "required": ["ready", "missing", "model_versions", "as_of", "customers"],
        "properties": {
            "ready": {"type": "boolean"},
            "missing": {
                "type": "array",
                "items": {"type": "string"},
                "description": "what is not there yet, as sentences (empty when ready)",
            },
            "model_versions": {"type": "object", "additionalProperties": {"type": "string"}},
            "as_of": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
            "customers": {"type": "integer"},
        },
    },
}


def complete_spec(spec: dict, max_body: int) -> dict:
    """``spec`` (BentoML's, as a dict) with the error answers the service really gives."""
    spec = copy.deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(copy.deepcopy(SCHEMAS))
    for name in ("NotFound", "InternalServerError"):  # ours carry the request id too
        schemas[name] = {**copy.deepcopy(SCHEMAS["ErrorBody"]), "title": name}
    for path in API_PATHS:
        op = spec.get("paths", {}).get(path, {}).get("post")
        if op is None:
            continue
        # a copy per operation, keyed by text: BentoML's dict mixes 200 and "200" keys
        responses = op["responses"] = {str(k): v for k, v in op.get("responses", {}).items()}
        responses["400"] = _json("invalid input, with a field-level detail", "InvalidArgument")
        responses["401"] = _json(
            "missing or invalid bearer token (only when TAILOR_API_TOKEN is set)", "ErrorBody"
        )
        responses["413"] = _json(f"request body over {max_body} bytes", "ErrorBody")
        responses["500"] = _json("internal error; quote the request id", "InternalServerError")
        if path == "/scores":
            responses["404"] = _json("the customer has no purchase history", "NotFound")
        else:
            responses.pop("404", None)  # BentoML's own 404 is not answered by these routes
        if path in NEEDS_STORE:
            responses["503"] = _json(
                "the lookup store or a model this endpoint needs is not loaded yet",
                "Unavailable",
            )
    ready = spec.get("paths", {}).get("/readyz", {}).get("get")
    if ready is not None:
        ready["responses"] = {
            "200": _json("ready: the store and every model are loaded", "Readiness"),
            "503": _json("not ready; `missing` says why", "Readiness"),
        }
        ready["description"] = (
            "Readiness of the service: 200 once the lookup store and every model are loaded, "
            "else 503 with what is missing (a store still loading, a model never registered)."
        )
    return spec
