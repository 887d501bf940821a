"""The simulator's faults that break the transport: resets, refusals, hangs, trickles, delays.

A reset connection; a refused port restored on the same port; a hang that times the
client out, does not slow the server's stop, and is released by ``clear_faults``; a
trickle sending the whole answer a byte at a time, cut short by ``clear_faults``; a delay
that does not block other requests.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from leadfactory.llm.simulator import Fault, Simulator

from .simulator_requests import PROTOCOLS, REQUESTS, call, new_client, port_of, sim_protocol

# fixtures, imported so that pytest finds them in this module
from .simulator_requests import client as client
from .simulator_requests import sim as sim


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_reset(sim: Simulator, client: httpx.Client, provider: str) -> None:
    sim.set_fault(provider, Fault.RESET)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        call(sim, client, provider)
    assert sim.request_count(provider) == 1


@pytest.mark.parametrize("provider", PROTOCOLS)
def test_refuse_and_restore_same_port(sim: Simulator, client: httpx.Client, provider: str) -> None:
    url = sim.base_url(provider)
    assert call(sim, client, provider).status_code == 200  # leaves a pooled keep-alive connection
    sim.set_fault(provider, Fault.REFUSE, times=1)  # times is ignored for REFUSE
    for _ in range(2):
        with pytest.raises(httpx.ConnectError):
            call(sim, client, provider)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port_of(url)), timeout=1).close()
    assert sim.request_count(provider) == 1
    other = next(p for p in PROTOCOLS if p != provider)
    assert call(sim, client, other).status_code == 200  # the other providers are fine
    sim.clear_faults()
    assert sim.base_url(provider) == url
    assert call(sim, client, provider).status_code == 200
    sim.set_fault(provider, "refuse")
    sim.set_fault(provider, Fault.OK)
    assert call(sim, client, provider).status_code == 200


def test_hang_times_out_and_stop_is_prompt(client: httpx.Client) -> None:
    sim = Simulator().start()
    try:
        sim.set_fault("openai", Fault.HANG)
        started = time.monotonic()
        with new_client(0.3) as quick, pytest.raises(httpx.ReadTimeout):
            call(sim, quick, "openai")
        assert time.monotonic() - started < 3  # the client's 0.3 s timeout, not a hang
        assert call(sim, client, "anthropic").status_code == 200  # others are not blocked
        raw = socket.create_connection(("127.0.0.1", port_of(sim.base_url("openai"))))
        body = json.dumps(REQUESTS["openai"][1]).encode()
        raw.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        deadline = time.monotonic() + 3
        while sim.request_count("openai") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.request_count("openai") == 2
    finally:
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 3  # the hung request (5 s) is not waited for
    raw.settimeout(2)
    with contextlib.suppress(ConnectionResetError):
        assert raw.recv(100) == b""  # closed by stop(), never answered
    raw.close()


def test_hang_released_by_clear(sim: Simulator) -> None:
    sim.set_fault("openai", "hang")
    with ThreadPoolExecutor(1) as pool, new_client(5) as hanging:
        future = pool.submit(call, sim, hanging, "openai")
        deadline = time.monotonic() + 3
        while sim.request_count("openai") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the request hangs there
        started = time.monotonic()
        sim.clear_faults()
        with pytest.raises(httpx.TransportError):
            future.result(timeout=3)
        assert time.monotonic() - started < 3  # released, not timed out (5 s)
    with new_client(5) as c:
        assert call(sim, c, "openai").status_code == 200


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
def test_trickle_sends_the_whole_answer_a_byte_at_a_time(sim: Simulator, provider: str) -> None:
    sim.set_fault(provider, Fault.TRICKLE, delay=0.001)
    path, body = REQUESTS[sim_protocol(sim, provider)]
    with new_client(30) as c, c.stream("POST", sim.base_url(provider) + path, json=body) as r:
        assert r.status_code == 200
        pieces = list(r.iter_raw())
    assert len(pieces) > 10 and json.loads(b"".join(pieces))  # many reads, one valid body


def test_trickle_is_cut_short_by_clear(sim: Simulator) -> None:
    sim.set_fault("openai", Fault.TRICKLE, delay=1)
    with ThreadPoolExecutor(1) as pool, new_client(5) as slow:
        future = pool.submit(call, sim, slow, "openai")
        deadline = time.monotonic() + 3
        while sim.request_count("openai") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        sim.clear_faults()
        with pytest.raises(httpx.TransportError):
            future.result(timeout=4)  # the server closed it, not the client's 5 s read timeout


def test_delay_does_not_block_others(sim: Simulator) -> None:
    sim.set_fault("openai", Fault.DELAY, delay=0.5)
    started = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        clients = [new_client(5) for _ in range(5)]
        results = list(pool.map(lambda c: call(sim, c, "openai").status_code, clients))
        for c in clients:
            c.close()
    elapsed = time.monotonic() - started
    assert results == [200] * 5
    assert 0.5 <= elapsed < 2.0  # one after another would take 2.5 s
