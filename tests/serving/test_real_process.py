"""A real `tailor serve` process: real HTTP requests, and the SIGKILL durability test."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from serving.eventlog import read_log
from serving.middleware import MAX_BODY_BYTES
from serving.store import build_store, store_path
from tests.serving.procs import Server
from tests.serving.test_service_asgi import META


@pytest.fixture
def home(tmp_path, tiny_frames):
    build_store(tiny_frames, store_path(tmp_path / "serving"), META)
    return tmp_path


def test_tailor_serve_answers_real_requests(home):
    srv = Server(home).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            assert c.get("/healthz").status_code == 200
            ready = c.get("/readyz").json()
            assert ready["ready"] and ready["model_versions"]["next_purchase"] == "3"
            r = c.post(
                "/offers", json={"customer_id": 1, "n": 3, "context": {"date": "2017-03-01"}}
            )
            assert r.status_code == 200 and len(r.json()["offers"]) == 3
            assert r.json()["request_id"] == r.headers["x-request-id"]
            assert c.post("/scores", json={"customer_id": 3}).json()["value_tier"] == "regular"
            ev = c.post(
                "/events",
                json={
                    "request_id": r.json()["request_id"],
                    "customer_id": 1,
                    "product_id": 101,
                    "type": "redeemed",
                },
            )
            assert ev.status_code == 200
            bad = c.post("/offers", json={"customer_id": 1, "n": 99})
            assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["n"]
            assert "/offers" in c.get("/docs.json").json()["paths"]
            # an oversized body is a 413 through the real HTTP server, with or without a length
            big = b'{"customer_id": 1, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
            assert c.post("/offers", content=big).status_code == 413
            chunked = c.post("/events", content=iter([big[:70_000]] * 4))
            assert chunked.status_code == 413 and "at least" in chunked.json()["error"]
            assert c.get("/healthz").status_code == 200  # and the server is still fine
            assert c.post("/scores", json={"customer_id": "x"}).status_code == 400
    finally:
        srv.stop()
    log = srv.log.read_text()
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]  # client faults are INFO
    exp, events = read_log(home / "serving" / "events.sqlite")
    assert len(exp) == 3 and len(events) == 1


def test_no_acknowledged_exposure_is_lost_on_sigkill(home):
    """Send load from 4 threads, SIGKILL the server group mid-load, restart it, and find every
    exposure and event whose request got a 200."""
    srv = Server(home).start()
    acked: dict[str, list[int]] = {}
    acked_events: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int):
        with httpx.Client(base_url=srv.url, timeout=5) as c:
            i = 0
            while not stop.is_set() and i < 5000:
                i += 1
                try:
                    r = c.post("/offers", json={"customer_id": 1 + (worker + i) % 8, "n": 5})
                    if r.status_code != 200:
                        continue
                    body = r.json()
                    with lock:
                        acked[body["request_id"]] = [o["product_id"] for o in body["offers"]]
                    e = c.post(
                        "/events",
                        json={
                            "request_id": body["request_id"],
                            "customer_id": body["customer_id"],
                            "product_id": body["offers"][0]["product_id"],
                            "type": "viewed",
                        },
                    )
                    if e.status_code == 200:
                        with lock:
                            acked_events.add(e.json()["event_id"])
                except httpx.HTTPError:
                    continue  # in flight when the server died: not acknowledged

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.kill()  # SIGKILL to the server and its workers, while requests are in flight
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 150, f"only {len(acked)} responses before the deadline"
    # the killed worker left its exposure journal behind: the restart must move it into the table
    assert list((home / "serving" / "events.sqlite.journal").glob("*.jsonl"))

    srv2 = Server(home).start()  # restart on the same files
    try:
        assert (
            httpx.post(srv2.url + "/offers", json={"customer_id": 2}, timeout=10).status_code == 200
        )
    finally:
        srv2.stop()
    exp, events = read_log(home / "serving" / "events.sqlite")
    logged = (
        exp.sort_values(["request_id", "rank"])
        .groupby("request_id")["product_id"]
        .apply(list)
        .to_dict()
    )
    lost = [rid for rid, pids in acked.items() if logged.get(rid) != pids]
    assert not lost, (
        f"{len(lost)} of {len(acked)} acknowledged responses lost or partial, e.g. {lost[:3]}"
    )
    assert acked_events <= set(events["event_id"]), "acknowledged events lost"
