"""BentoML settings presets and the fix of BentoML's request-timeout middleware."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from bentoml._internal.server.http import traffic

from serving.bento_config import (
    BENTOML_DEFAULTS,
    _timeout_middleware_call,
    exit_with_parent,
    freeze_startup_heap,
    install_timeout_fix,
    service_config,
)

ORIGINAL_CALL = traffic.TimeoutMiddleware.__call__


@pytest.fixture
def original_middleware():
    """BentoML's middleware as shipped, restored (with whatever was installed) afterwards."""
    installed = traffic.TimeoutMiddleware.__call__
    traffic.TimeoutMiddleware.__call__ = ORIGINAL_CALL
    yield traffic.TimeoutMiddleware
    traffic.TimeoutMiddleware.__call__ = installed


def test_presets_and_overrides(original_middleware):
    cfg = service_config("")
    assert cfg["workers"] == 1 and cfg["logging"]["access"]["enabled"] is False
    assert "timeout_fix" not in cfg  # ours, never passed to BentoML
    assert original_middleware.__call__ is _timeout_middleware_call
    cfg = service_config('{"metrics": {"enabled": true}, "traffic": {"timeout": 5}}')
    assert cfg["metrics"]["enabled"] is True and cfg["traffic"]["timeout"] == 5
    assert cfg["tracing"]["sample_rate"] == 0.0  # the rest of the preset is kept


def test_bentoml_defaults_preset_is_unpatched(original_middleware):
    cfg = service_config(json.dumps({"preset": "bentoml-defaults"}))
    assert cfg == BENTOML_DEFAULTS
    assert original_middleware.__call__ is ORIGINAL_CALL


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        service_config('{"preset": "fast"}')
    with pytest.raises(ValueError, match="must be a JSON object"):
        service_config("[1, 2]")


async def _call(mw, app_delay: float = 0.0, after_start_delay: float = 0.0):
    async def app(scope, receive, send):
        await asyncio.sleep(app_delay)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(after_start_delay)
        await send({"type": "http.response.body", "body": b"ok"})

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    await mw(app, timeout=0.2)({"type": "http", "path": "/offers"}, receive, send)
    return sent


def _live_timers(loop) -> int:
    return sum(not h.cancelled() for h in loop._scheduled)


def test_bentoml_middleware_leaves_a_timer_per_request(original_middleware):
    """The bug the fix is for: with BentoML's own middleware every request leaves its timer behind."""

    async def main():
        loop = asyncio.get_running_loop()
        for _ in range(50):
            await _call(original_middleware)
        return _live_timers(loop)

    assert asyncio.run(main()) == 50


def test_fixed_middleware_cancels_its_timer(original_middleware):
    assert install_timeout_fix()
    install_timeout_fix()  # idempotent

    async def main():
        loop = asyncio.get_running_loop()
        replies = [await _call(original_middleware) for _ in range(50)]
        return _live_timers(loop), replies

    live, replies = asyncio.run(main())
    assert live == 0
    assert all([m.get("status") for m in r][0] == 200 and r[-1]["body"] == b"ok" for r in replies)


def test_fixed_middleware_answers_504_when_nothing_started_in_time(original_middleware):
    install_timeout_fix()
    sent = asyncio.run(_call(original_middleware, app_delay=1.0))
    assert sent[0]["status"] == 504
    assert b"Not able to process the request in 0.2 seconds" in sent[-1]["body"]


def test_fixed_middleware_lets_a_started_response_finish(original_middleware):
    install_timeout_fix()
    sent = asyncio.run(_call(original_middleware, after_start_delay=0.4))
    assert [m.get("status") for m in sent][0] == 200 and sent[-1]["body"] == b"ok"


def test_the_fix_can_be_turned_off(original_middleware):
    cfg = service_config('{"timeout_fix": false}')
    assert "timeout_fix" not in cfg and cfg["workers"] == 1
    assert original_middleware.__call__ is ORIGINAL_CALL


def test_freeze_startup_heap_moves_what_is_alive_out_of_the_collector():
    class Node:  # a cycle: only the cyclic collector could free it
        def __init__(self):
            self.me = self

    kept = Node()
    gc.unfreeze()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        # a frozen object is not tracked by any generation a collection walks
        assert not any(o is kept for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_a_worker_stops_when_its_server_process_is_killed():
    """circus starts each worker in a session of its own: without the parent-death signal a
    worker outlives a SIGKILLed server, serving on the old socket (a restart cannot bind)."""
    assert exit_with_parent() is False  # not a BentoML worker: nothing armed in the test process
    worker = textwrap.dedent(
        """
        import time
        from serving.bento_config import exit_with_parent
        print("armed" if exit_with_parent(force=True) else "not armed", flush=True)
        time.sleep(60)
        """
    )
    server = (
        "import subprocess, sys\n"
        f"w = subprocess.Popen([sys.executable, '-c', {worker!r}])\n"
        "print(w.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", server],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        pid = int(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "armed"
        proc.kill()  # SIGKILL to the "server" only
        proc.wait(timeout=10)
        try:
            w = psutil.Process(pid)
            w.wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            gone = w.status() == psutil.STATUS_ZOMBIE
            if not gone:
                w.kill()
            assert gone, "the worker outlived its server"
    finally:
        if proc.poll() is None:
            proc.kill()
