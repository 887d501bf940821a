"""The simulator as a server: request recording, providers, HTTP details and lifecycle.

Requests recorded (the log bounded, the count not), providers added and their
environment; keep-alive, pipelining, chunked bodies and Expect: 100-continue over a raw
socket, Connection: close, many concurrent connections; starting and stopping many times
without leaks, restarting on the same ports, and the command line printing its
environment and serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from leadfactory.llm.simulator import Simulator, server

from .simulator_requests import REPLY, REQUESTS, call, new_client, port_of

# fixtures, imported so that pytest finds them in this module
from .simulator_requests import client as client
from .simulator_requests import sim as sim

# --- recording, providers, HTTP details ---------------------------------------------------


def test_request_recording(sim: Simulator, client: httpx.Client) -> None:
    call(sim, client, "openai")
    sim.set_fault("openai", "503", times=1)
    call(sim, client, "openai")
    client.get(sim.base_url("openai") + "/models?x=1", headers={"X-Custom": "Yes"})
    reqs = sim.requests("openai")
    assert sim.request_count("openai") == 3 == len(reqs)
    assert reqs[0]["method"] == "POST"
    assert reqs[0]["path"] == "/v1/chat/completions"
    assert reqs[0]["json"] == REQUESTS["openai"][1]
    assert reqs[0]["headers"]["content-type"] == "application/json"
    assert reqs[2]["json"] is None
    assert (reqs[2]["path"], reqs[2]["query"], reqs[2]["headers"]["x-custom"]) == (
        "/v1/models",
        "x=1",
        "Yes",
    )
    assert sim.request_count("anthropic") == 0
    sim.reset_requests()
    assert sim.requests("openai") == []


def test_log_is_bounded_but_count_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_RECORDED", 3)
    with Simulator() as sim, new_client() as c:
        for n in range(5):
            call(sim, c, "openai", model=f"m{n}")
        assert sim.request_count("openai") == 5
        assert [r["json"]["model"] for r in sim.requests("openai")] == ["m2", "m3", "m4"]
        sim.reset_requests("openai")
        assert sim.request_count("openai") == 0


def test_providers_and_env() -> None:
    with Simulator(providers={"primary": "openai", "backup": "anthropic"}) as sim:
        custom = sim.add_provider("custom", protocol="ollama")
        assert custom == sim.base_url("custom") and not custom.endswith("/v1")
        ports = {port_of(sim.base_url(n)) for n in ("primary", "backup", "custom")}
        assert len(ports) == 3
        env = sim.env()
        assert env["OPENAI_BASE_URL"] == sim.base_url("primary")
        assert env["ANTHROPIC_BASE_URL"] == sim.base_url("backup")
        assert env["OLLAMA_HOST"] == env["OLLAMA_API_BASE"] == custom
        with new_client() as c:
            r = c.post(custom + "/api/chat", json=REQUESTS["ollama"][1])
            assert r.json()["message"]["content"] == REPLY.format("custom")
    with pytest.raises(ValueError):
        Simulator(providers={"x": "grpc"})
    with Simulator() as sim:
        assert set(sim.env()) >= {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"}
        assert sim.env()["OPENAI_BASE_URL"].endswith("/v1")


def raw_exchange(port: int, data: bytes, responses: int) -> list[bytes]:
    """Send raw bytes on one connection and read ``responses`` complete answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        buf, out = b"", []
        while len(out) < responses:
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, _, buf = buf.partition(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 100"):
                continue
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(buf) < length:
                buf += s.recv(65536)
            out.append(head + b"\r\n\r\n" + buf[:length])
            buf = buf[length:]
        return out


def test_keep_alive_pipelining_chunked_and_expect(sim: Simulator) -> None:
    body = json.dumps(REQUESTS["openai"][1]).encode()
    plain = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    chunked = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
        b"expect: 100-continue\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (10, body[:10], len(body) - 10, body[10:])
    )
    answers = raw_exchange(port_of(sim.base_url("openai")), plain + chunked + plain, 3)
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") for a in answers)
    assert all(b"connection: keep-alive" in a for a in answers)
    assert [r["json"] for r in sim.requests("openai")] == [REQUESTS["openai"][1]] * 3


def test_connection_close(sim: Simulator) -> None:
    request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    (answer,) = raw_exchange(port_of(sim.base_url("ollama")), request, 1)
    assert b"connection: close" in answer and answer.endswith(b"Ollama is running")


def test_many_concurrent_connections(sim: Simulator) -> None:
    port = port_of(sim.base_url("openai"))
    body = json.dumps(REQUESTS["openai"][1]).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    async def connection() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ok = 0
        for _ in range(10):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            ok += head.startswith(b"HTTP/1.1 200") and len(await reader.readexactly(length)) > 0
        writer.close()
        return ok

    async def main() -> int:
        return sum(await asyncio.gather(*(connection() for _ in range(100))))

    assert asyncio.run(main()) == 1000
    assert sim.request_count("openai") == 1000


def test_start_stop_many_times_does_not_leak() -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def simulator_threads() -> int:  # other tests' session simulator may be running
        return sum(t.name == "llm-simulator" for t in threading.enumerate())

    threads, fds, sims = threading.active_count(), open_fds(), simulator_threads()
    for _ in range(50):
        with Simulator() as sim, new_client(2) as c:
            assert call(sim, c, "openai").status_code == 200
    # <=: another test's idle writer or checkpoint thread may end meanwhile
    assert threading.active_count() <= threads
    assert simulator_threads() == sims
    assert open_fds() <= fds + 2


def test_restart_keeps_ports(client: httpx.Client) -> None:
    sim = Simulator()
    url = sim.base_url("openai")
    sim.start()
    sim.stop()
    sim.start()
    try:
        assert sim.base_url("openai") == url
        assert call(sim, client, "openai").status_code == 200
    finally:
        sim.stop()


def test_cli_prints_env_and_serves() -> None:
    command = [sys.executable, "-m", "leadfactory.llm.simulator"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            env = {}
            for line in iter(proc.stdout.readline, ""):
                if not line.startswith("export "):
                    break
                key, _, value = line.strip().removeprefix("export ").partition("=")
                env[key] = value
            assert set(env) >= {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"}
            url = env["OPENAI_BASE_URL"] + "/chat/completions"
            assert httpx.post(url, json=REQUESTS["openai"][1]).status_code == 200
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
