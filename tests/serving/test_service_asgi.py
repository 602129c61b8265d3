"""The offer service through its ASGI app (Service.to_asgi) with Starlette's test client."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from datetime import date

import pytest

from serving.config import load_config
from serving.eventlog import read_log
from serving.experiments import in_universal_control
from serving.store import build_store, store_path
from tests.serving.conftest import AS_OF

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

META = {
    "as_of": str(AS_OF.date()),
    "model_versions": {"next_purchase": "3", "cross_sell": "2", "churn": "5", "value": "1"},
    "missing": {},
}


@pytest.fixture
def serving_dir(tmp_path, monkeypatch):
    d = tmp_path / "serving"
    monkeypatch.setenv("TAILOR_SERVING_DIR", str(d))
    monkeypatch.delenv("TAILOR_API_TOKEN", raising=False)
    return d


@contextmanager
def _client(serving_dir, frames=None, meta=META, wait=True):
    """A test client of the service; with ``wait``, once its store has been read (in a thread)."""
    if frames is not None:
        build_store(frames, store_path(serving_dir), meta)
    import bentoml

    from serving.service import Tailor

    with TestClient(Tailor.to_asgi(), raise_server_exceptions=False) as c:
        if wait:
            assert bentoml.get_current_service().wait_loaded(60), "the store did not load"
        yield c


@pytest.fixture
def client(serving_dir, tiny_frames):
    with _client(serving_dir, tiny_frames) as c:
        yield c


def _exposures(serving_dir):
    import bentoml

    bentoml.get_current_service().eventlog.flush()  # exposures reach the table from a journal
    return read_log(serving_dir / "events.sqlite")[0]


def test_health_and_ready(client):
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["ready"] is True and r.json()["model_versions"]["churn"] == "5"
    assert len(r.headers["x-request-id"]) == 32


def test_offers_for_a_known_customer(client, serving_dir):
    r = client.post(
        "/offers", json={"customer_id": 1, "n": 4, "context": {"channel": "app", "basket": [201]}}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["personalised"] is True and body["cold_start"] is False
    assert body["experiment"] == "default" and body["arm"] == "personalised"
    assert body["date"] == "2017-03-01"
    offers = body["offers"]
    assert len(offers) == 4 and [o["rank"] for o in offers] == [1, 2, 3, 4]
    assert 201 not in [o["product_id"] for o in offers]  # in the basket
    evs = [o["expected_value"] for o in offers]
    assert evs == sorted(evs, reverse=True)
    top = offers[0]  # planted: 0.1 churn x 480 CLV = 48 at risk -> retention incentive on milk 101
    assert top["product_id"] == 101 and top["kind"] == "retention" and top["discount"] == 0.25
    assert top["deal"] == {
        "coupon_id": 11,
        "campaign_id": 1,
        "campaign_type": "Type A",
        "valid_from": "2017-02-20",
        "valid_to": "2017-03-10",
    }
    assert top["description"] == "Whole Milk (1 GAL)"
    assert any(o["reason"] == "coffee drinkers like you buy this" for o in offers)
    exp = _exposures(serving_dir)
    assert exp["request_id"].eq(body["request_id"]).all()
    assert exp.sort_values("rank")["product_id"].tolist() == [o["product_id"] for o in offers]
    assert exp["kind"].tolist()[0] == "retention" and exp["arm"].eq("personalised").all()


def test_deals_depend_on_the_date(client):
    r = client.post("/offers", json={"customer_id": 1, "context": {"date": "2017-03-11"}})
    assert r.status_code == 200
    assert all(o["deal"] is None for o in r.json()["offers"])  # campaign 1 ended on 2017-03-10


def test_below_zero_customer_gets_no_discount(client):
    r = client.post("/offers", json={"customer_id": 6})  # tier below_zero, churn 0.9
    body = r.json()
    assert body["personalised"] is True and {o["product_id"] for o in body["offers"]} == {502, 302}
    assert all(o["discount"] == 0 and o["kind"] != "retention" for o in body["offers"])
    assert next(o for o in body["offers"] if o["product_id"] == 302)["deal"]["coupon_id"] == 12


def test_unknown_customer_gets_cold_start_offers(client):
    r = client.post("/offers", json={"customer_id": 424242, "n": 3})
    body = r.json()
    assert r.status_code == 200 and body["cold_start"] is True and body["personalised"] is False
    assert len(body["offers"]) == 3
    assert body["offers"][0]["deal"] is not None  # popular items with deals first
    assert all(o["kind"] == "discover" and o["discount"] == 0 for o in body["offers"])


def test_universal_control_gets_non_personalised_offers(client):
    cfg = load_config().experiments
    ucg = next(i for i in range(1, 1000) if in_universal_control(i, cfg))
    r = client.post("/offers", json={"customer_id": ucg, "experiment": "personalisation"})
    assert r.json()["arm"] == "universal_control" and r.json()["personalised"] is False
    assert r.json()["experiment"] == "personalisation"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"customer_id": 1, "n": 0}, "n"),
        ({"customer_id": 1, "n": 51}, "n"),
        ({"n": 5}, "customer_id"),
        ({"customer_id": "abc"}, "customer_id"),
        ({"customer_id": -1}, "customer_id"),
        ({"customer_id": 1, "colour": "red"}, "colour"),
        ({"customer_id": 1, "context": {"date": "not-a-date"}}, "date"),
        ({"customer_id": 1, "context": {"basket": ["x"]}}, "basket"),
        # ids and n are strict JSON integers, a date is text, and near the store's as-of date
        ({"customer_id": "1"}, "customer_id"),
        ({"customer_id": True}, "customer_id"),
        ({"customer_id": 1.0}, "customer_id"),
        ({"customer_id": 1, "n": True}, "n"),
        ({"customer_id": 1, "context": {"date": 1488326400}}, "date"),
        # text of digits is not a Unix time, and a date has no time of day
        ({"customer_id": 1, "context": {"date": "1488326400"}}, "date"),
        ({"customer_id": 1, "context": {"date": "20170301"}}, "date"),
        ({"customer_id": 1, "context": {"date": "2017-03-01T00:00:00Z"}}, "date"),
        ({"customer_id": 1, "context": {"date": "2999-01-01"}}, "date"),
        ({"customer_id": 1, "context": {"date": "2015-03-01"}}, "date"),
    ],
)
def test_malformed_offers_requests_get_field_level_4xx(client, payload, field):
    r = client.post("/offers", json=payload)
    assert r.status_code == 400, r.text
    body = r.json()
    assert any(field in map(str, d["loc"]) for d in body["detail"]), body
    # the id a client quotes is in the body as well as the header
    assert body["request_id"] == r.headers["x-request-id"]
    assert int(r.headers["content-length"]) == len(r.content)


def test_a_client_error_is_one_info_line_not_an_error_traceback(client, caplog):
    from serving.bento_config import BENTOML_REQUEST_LOGGER

    with caplog.at_level("INFO", logger=BENTOML_REQUEST_LOGGER):
        r = client.post("/offers", json={"customer_id": 1, "n": -3})
    assert r.status_code == 400
    recs = [x for x in caplog.records if x.name == BENTOML_REQUEST_LOGGER]
    assert recs and all(x.levelname == "INFO" and x.exc_info is None for x in recs)
    assert "/offers" in recs[0].getMessage() and "400, 1 validation error" in recs[0].getMessage()
    assert "Traceback" not in caplog.text


def test_invalid_json_and_unknown_experiment(client):
    r = client.post("/offers", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/offers", json={"customer_id": 1, "experiment": "nope"})
    assert r.status_code == 400
    assert (
        r.json()["detail"][0]["loc"] == ["experiment"]
        and "configured experiments" in r.json()["error"]
    )


def test_scores(client):
    r = client.post("/scores", json={"customer_id": 2})
    assert r.status_code == 200
    s = r.json()
    assert s["churn_probability"] == 0.6 and s["churn_reasons"] == [
        "visits less often",
        "spend down 40%",
    ]
    assert (
        s["value_tier"] == "most_growable"
        and s["grid_cell"] == "high/high"
        and s["treatment"] == "retain"
    )
    assert s["lifecycle_stage"] and s["rfm_segment"] and s["as_of"] == "2017-03-01"
    assert s["model_versions"]["value"] == "1"
    r = client.post("/scores", json={"customer_id": 99})
    assert r.status_code == 404 and "no purchase history" in r.json()["error"]


def test_events_are_logged(client, serving_dir):
    rid = client.post("/offers", json={"customer_id": 2}).json()["request_id"]
    r = client.post(
        "/events",
        json={
            "request_id": rid,
            "customer_id": 2,
            "product_id": 301,
            "type": "purchased",
            "value": 8.0,
        },
    )
    assert r.status_code == 200 and r.json()["status"] == "logged"
    ev = read_log(serving_dir / "events.sqlite")[1]
    assert ev.iloc[-1][["request_id", "customer_id", "product_id", "type", "value"]].tolist() == [
        rid,
        2,
        301,
        "purchased",
        8.0,
    ]
    assert ev.iloc[-1]["event_id"] == r.json()["event_id"]
    r = client.post(
        "/events", json={"request_id": rid, "customer_id": 2, "product_id": 301, "type": "bought"}
    )
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["type"]


def test_internal_error_returns_5xx_with_request_id_and_no_trace(client, monkeypatch):
    import bentoml

    svc = bentoml.get_current_service()

    def boom(*a, **k):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(svc.engine, "offer_list", boom)
    r = client.post("/offers", json={"customer_id": 1})
    assert r.status_code == 500
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert "secret" not in r.text and "Traceback" not in r.text


def test_probes_answer_while_the_store_loads(serving_dir, tiny_frames, monkeypatch):
    """The store is read in a thread: /healthz is 200 and the rest a 503 saying so meanwhile."""
    import threading

    import bentoml

    import serving.service as service

    gate, real = threading.Event(), service.load_store

    def slow_load(path):
        assert gate.wait(60)
        return real(path)

    monkeypatch.setattr(service, "load_store", slow_load)
    with _client(serving_dir, tiny_frames, wait=False) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["missing"] == [service.STORE_LOADING]
        for path in ("/offers", "/scores"):
            r = c.post(path, json={"customer_id": 1})
            assert r.status_code == 503 and "still loading" in r.json()["error"], path
        gate.set()
        assert bentoml.get_current_service().wait_loaded(60)
        assert c.get("/readyz").status_code == 200
        assert c.post("/offers", json={"customer_id": 1}).json()["offers"]


def test_with_several_workers_each_reads_its_store_before_taking_requests(
    serving_dir, tiny_frames, monkeypatch
):
    """A loading worker must not answer 503 while a ready sibling on the same socket could serve."""
    import time

    import bentoml

    import serving.service as service

    real = service.load_store

    def slow_load(path):
        time.sleep(2.0)  # a store that takes two seconds to read
        return real(path)

    monkeypatch.setattr(service, "WORKERS", 2)
    monkeypatch.setattr(service, "load_store", slow_load)
    with _client(serving_dir, tiny_frames, wait=False) as c:
        assert bentoml.get_current_service().wait_loaded(0)  # already in when requests start
        assert c.get("/readyz").status_code == 200


def test_a_store_that_cannot_be_read_is_a_503_not_a_dead_worker(
    serving_dir, tiny_frames, monkeypatch
):
    import serving.service as service

    def broken(path):
        raise ValueError("truncated row")

    monkeypatch.setattr(service, "load_store", broken)
    with _client(serving_dir, tiny_frames) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["missing"] == ["the lookup store could not be read (ValueError)"]


def test_no_store_still_starts_and_says_why(serving_dir):
    with _client(serving_dir) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and "no lookup store at" in r.json()["missing"][0]
        r = c.post("/offers", json={"customer_id": 1})
        assert r.status_code == 503 and r.json()["error"].startswith(
            "/offers is unavailable: no lookup store"
        )
        assert (
            c.post(
                "/events",
                json={"request_id": "r", "customer_id": 1, "product_id": 2, "type": "viewed"},
            ).status_code
            == 200
        )


def test_no_model_registered(serving_dir, tiny_frames):
    reason = "no 'champion' version registered for tailor-next-purchase; run `tailor train next_purchase`"
    meta = {
        **META,
        "model_versions": {"churn": "5", "value": "1"},
        "missing": {"next_purchase": reason},
    }
    with _client(serving_dir, tiny_frames, meta) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["missing"] == [f"model next_purchase: {reason}"]
        r = c.post("/offers", json={"customer_id": 1})
        assert r.status_code == 503 and "tailor train next_purchase" in r.json()["error"]
        assert (
            c.post("/scores", json={"customer_id": 1}).status_code == 200
        )  # churn and value are there


def test_n_default_and_maximum_come_from_the_rules(serving_dir, tiny_frames, monkeypatch):
    rules = serving_dir.parent / "rules.toml"
    from serving.config import DEFAULT_RULES

    text = DEFAULT_RULES.read_text().replace("default_n = 10", "default_n = 2")
    rules.write_text(text.replace("max_n = 50", "max_n = 4"))
    monkeypatch.setenv("TAILOR_RULES", str(rules))
    with _client(serving_dir, tiny_frames) as c:
        assert len(c.post("/offers", json={"customer_id": 1}).json()["offers"]) == 2
        assert len(c.post("/offers", json={"customer_id": 1, "n": 4}).json()["offers"]) == 4
        r = c.post("/offers", json={"customer_id": 1, "n": 5})
        assert r.status_code == 400 and "offers.max_n (4)" in r.json()["error"]


@pytest.mark.parametrize(
    "change",
    [{"value": -5.0}, {"request_id": " "}, {"customer_id": True}, {"product_id": "101"}],
)
def test_malformed_events_are_refused(client, change):
    ok = {"request_id": "a" * 32, "customer_id": 2, "product_id": 301, "type": "purchased"}
    assert client.post("/events", json={**ok, "value": 3}).status_code == 200  # an int amount
    r = client.post("/events", json={**ok, **change})
    assert r.status_code == 400, r.text


def test_bearer_token(serving_dir, tiny_frames, monkeypatch):
    monkeypatch.setenv("TAILOR_API_TOKEN", "s3cret")
    with _client(serving_dir, tiny_frames) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        r = c.post("/offers", json={"customer_id": 1})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert (
            c.post(
                "/offers", json={"customer_id": 1}, headers={"Authorization": "Bearer wrong"}
            ).status_code
            == 401
        )
        assert (
            c.post(
                "/offers", json={"customer_id": 1}, headers={"Authorization": "Bearer s3cret"}
            ).status_code
            == 200
        )
        for header in ("bearer s3cret", "BEARER  s3cret ", "Basic s3cret", "s3cret"):
            want = 401 if header.split()[0] in ("Basic", "s3cret") else 200  # RFC 7235
            r = c.post("/offers", json={"customer_id": 1}, headers={"Authorization": header})
            assert r.status_code == want, header


def test_openapi_page_documents_the_endpoints(client):
    spec = client.get("/docs.json").json()
    for path in ("/offers", "/scores", "/events"):
        assert "post" in spec["paths"][path]
    assert client.get("/").status_code == 200


def _check_documented(spec: dict, path: str, method: str, r) -> None:
    """The answer ``r`` has a documented status and its body matches the documented schema."""
    import jsonschema

    documented = spec["paths"][path][method]["responses"]
    assert str(r.status_code) in documented, (path, r.status_code, sorted(documented))
    schema = documented[str(r.status_code)]["content"]["application/json"]["schema"]
    jsonschema.validate(r.json(), {**schema, "components": spec["components"]})


def test_every_error_answer_is_the_documented_one(serving_dir, tiny_frames, monkeypatch):
    """BentoML documented a 400 whose detail is a string and no 401/413/503; the spec served
    at /docs.json says what the service really answers, and every answer matches it."""
    from serving.middleware import MAX_BODY_BYTES

    with _client(serving_dir, tiny_frames) as c:
        spec = c.get("/docs.json").json()
        assert spec["components"]["schemas"]["InvalidArgument"]["properties"]["detail"]["type"] == (
            "array"
        )
        statuses = {p: set(spec["paths"][p]["post"]["responses"]) for p in ("/offers", "/events")}
        assert "404" in spec["paths"]["/scores"]["post"]["responses"]
        assert not {"404", "503"} & statuses["/events"] and "404" not in statuses["/offers"]
        cases = [
            ("/offers", {"customer_id": "x"}, 400),
            ("/offers", {"customer_id": 1, "n": 10_000}, 400),
            ("/scores", {"customer_id": 424242}, 404),
            ("/events", {"request_id": "r", "customer_id": 1, "product_id": 2, "type": "x"}, 400),
            ("/scores", {"customer_id": 1, "pad": "x" * MAX_BODY_BYTES}, 413),
        ]
        for path, body, status in cases:
            r = c.post(path, json=body)
            assert r.status_code == status, (path, r.text)
            _check_documented(spec, path, "post", r)
        _check_documented(spec, "/readyz", "get", c.get("/readyz"))
    monkeypatch.setenv("TAILOR_SERVING_DIR", str(serving_dir.parent / "empty"))
    with _client(serving_dir.parent / "empty") as c:  # no store: 503s
        for path in ("/offers", "/scores"):
            r = c.post(path, json={"customer_id": 1})
            assert r.status_code == 503
            _check_documented(spec, path, "post", r)
        _check_documented(spec, "/readyz", "get", c.get("/readyz"))
    monkeypatch.setenv("TAILOR_API_TOKEN", "s3cret")
    with _client(serving_dir.parent / "empty") as c:
        r = c.post("/events", json={"customer_id": 1})
        assert r.status_code == 401
        _check_documented(spec, "/events", "post", r)


def test_the_documented_order_of_offers(client):
    """Personalised lists by expected value; non-personalised ones deals first (the OpenAPI says so)."""
    doc = client.get("/docs.json").json()["components"]["schemas"]["OfferOut"]
    assert (
        "a personalised list is ordered by it" in doc["properties"]["expected_value"]["description"]
    )
    mine = client.post("/offers", json={"customer_id": 1, "n": 5}).json()
    assert mine["personalised"]
    ev = [o["expected_value"] for o in mine["offers"]]
    assert ev == sorted(ev, reverse=True)
    cold = client.post("/offers", json={"customer_id": 424242, "n": 5}).json()
    assert cold["cold_start"]
    deals = [o["deal"] is not None for o in cold["offers"]]
    assert any(deals) and deals == sorted(deals, reverse=True)


def test_today_is_not_the_default_date(client):
    # the default date is the store's as-of date (the data's "today"), so deals line up with the data
    assert client.post("/offers", json={"customer_id": 3}).json()["date"] == str(date(2017, 3, 1))


def test_middleware_adds_request_id_to_any_5xx():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from serving.middleware import TailorMiddleware

    async def plain_500(request):
        return PlainTextResponse("Traceback (most recent call last): secret", status_code=500)

    async def ok(request):
        return PlainTextResponse("fine")

    app = TailorMiddleware(Starlette(routes=[Route("/x", plain_500), Route("/ok", ok)]), token="")
    with TestClient(app) as c:
        r = c.get("/x")
        assert r.status_code == 500 and r.json()["request_id"] == r.headers["x-request-id"]
        assert "secret" not in r.text and int(r.headers["content-length"]) == len(r.content)
        r = c.get("/ok")
        assert r.text == "fine" and len(r.headers["x-request-id"]) == 32


def test_middleware_adds_request_id_to_4xx_json_and_passes_other_4xx_unchanged():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from serving.middleware import TailorMiddleware

    async def bad(request):
        return JSONResponse({"detail": [{"loc": ["n"]}], "error": "n too big"}, status_code=422)

    async def gone(request):
        return PlainTextResponse("no such page", status_code=410)

    app = TailorMiddleware(Starlette(routes=[Route("/bad", bad), Route("/gone", gone)]), token="")
    with TestClient(app) as c:
        r = c.get("/bad")
        assert r.status_code == 422 and r.json() == {
            "detail": [{"loc": ["n"]}],
            "error": "n too big",
            "request_id": r.headers["x-request-id"],
        }
        r = c.get("/gone")
        assert r.status_code == 410 and r.text == "no such page"
        assert len(r.headers["x-request-id"]) == 32
        r = c.get("/missing")  # starlette's own 404
        assert r.status_code == 404 and len(r.headers["x-request-id"]) == 32


def test_a_body_over_the_limit_is_refused_with_413(client):
    from serving.middleware import MAX_BODY_BYTES

    head, tail = b'{"customer_id": 1, "pad": "', b'"}'
    json_type = {"content-type": "application/json"}
    r = client.post("/offers", content=head + b"x" * MAX_BODY_BYTES + tail, headers=json_type)
    assert r.status_code == 413 and r.json()["request_id"] == r.headers["x-request-id"]
    assert r.json()["error"].endswith(f"over the limit of {MAX_BODY_BYTES} bytes")

    def chunks():  # no Content-Length: refused once the chunks pass the limit
        yield head
        for _ in range(MAX_BODY_BYTES // 4096 + 2):
            yield b"x" * 4096
        yield tail

    r = client.post("/events", content=chunks(), headers=json_type)
    assert r.status_code == 413 and "at least" in r.json()["error"]
    basket = {"customer_id": 1, "context": {"basket": list(range(10**9, 10**9 + 500))}}
    assert client.post("/offers", json=basket).status_code == 200  # the largest valid request


def test_a_basket_holding_every_candidate_gets_popular_offers_not_an_empty_list(client):
    import bentoml

    store = bentoml.get_current_service().engine.store
    basket = sorted({c.product_id for c in store.candidates[1]})
    r = client.post("/offers", json={"customer_id": 1, "context": {"basket": basket}})
    body = r.json()
    assert r.status_code == 200 and body["offers"], body
    assert body["personalised"] is False and body["cold_start"] is False
    assert not {o["product_id"] for o in body["offers"]} & set(basket)
    assert client.post("/offers", json={"customer_id": 1}).json()["personalised"] is True
