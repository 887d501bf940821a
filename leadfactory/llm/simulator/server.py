"""The simulator's HTTP side: one asyncio listener per provider, and :class:`Simulator`.

A real HTTP/1.1 server (asyncio streams in a daemon thread with its own event loop) on
127.0.0.1. This module decides *whether and how* an answer is delivered (refused, reset,
hung, delayed, trickled, truncated); :mod:`.vendors` decides *what* the answer says.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import secrets
import socket
import struct
import threading
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .http_request import read_request
from .streaming import (
    STREAM_TYPES,
    StreamControls,
    StreamedProvider,
    StreamRecord,
    StreamState,
    deliver,
)
from .usage import Usage, UsageScript
from .vendors import (
    REQUEST_ID_HEADER,
    Completion,
    Fault,
    Request,
    check_protocol,
    completion,
    is_generation,
    respond,
)

__all__ = ["Simulator"]

HOST = "127.0.0.1"
DEFAULT_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama"}
MAX_RECORDED = 10_000  # requests() keeps the latest ones; request_count() counts them all


@dataclass
class _FaultState:
    fault: Fault = Fault.OK
    times: int | None = None  # None: until cleared
    delay: float = 1.0
    retry_after: float | str = 1
    cycle: tuple[Fault, ...] = ()  # set_fault_cycle(): request n gets cycle[n % len]
    turn: int = 0


def _bind(port: int) -> socket.socket:
    """HOST:port bound, not listening (connects refused); IPPROTO_TCP: asyncio sets TCP_NODELAY."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Provider(StreamedProvider):
    """One listener speaking one protocol, with its fault state and request log."""

    def __init__(self, name: str, protocol: str) -> None:
        self.name, self.protocol = name, protocol
        self.lock = threading.Lock()  # guards state, reply and log (read from other threads)
        self.state = _FaultState()
        self.reply: str | None = None
        self.usage = UsageScript()  # what the next answers report (its own lock)
        self.log: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED)
        self.count = 0  # every request that arrived, even those no longer in the log
        self.sock: socket.socket | None = _bind(0)  # reserves the port while not listening
        self.port: int = self.sock.getsockname()[1]
        self.server: asyncio.Server | None = None
        self.conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.release: asyncio.Event | None = None  # set to wake hung requests
        self.stream_state, self.stream_log = StreamState(), deque[StreamRecord](maxlen=1000)

    async def sync(self) -> None:
        """On the loop: release hung requests; listen, or refuse if the fault is REFUSE."""
        if self.release is not None:
            self.release.set()
        self.release = asyncio.Event()
        refuse = self.state.fault is Fault.REFUSE
        if refuse and self.server is not None:
            self.server.close()
            self.server = None
            self.abort_connections()
        if self.sock is None and self.server is None:
            self.sock = _bind(self.port)  # the same port, held but refusing
        if not refuse and self.server is None:
            assert self.sock is not None
            self.server = await asyncio.start_server(self.serve, sock=self.sock, backlog=1024)
            self.sock = None  # owned, and closed, by the server now

    def abort_connections(self) -> None:
        for task, writer in list(self.conns.items()):
            writer.transport.abort()
            task.cancel()

    async def close(self) -> None:
        """On the loop: stop listening, drop every connection, free the port."""
        if self.server is not None:
            self.server.close()
            self.server = None
        tasks = list(self.conns)
        self.abort_connections()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def take_fault(self, req: Request, generation: bool) -> _FaultState:
        """Record the request (unless refused) and use up one turn of the current fault."""
        with self.lock:
            state = self.state
            if state.fault is Fault.REFUSE:
                return state
            record = {"method": req.method, "path": req.path, "query": req.query}
            self.log.append({**record, "headers": req.headers, "json": req.json})
            self.count += 1
            if not generation:
                return _FaultState()
            if state.cycle:  # intermittent faults: this request gets the cycle's next one
                state.turn += 1
                return replace(state, fault=state.cycle[(state.turn - 1) % len(state.cycle)])
            if state.times is not None:
                state.times -= 1
                if state.times <= 0:
                    self.state = _FaultState()
            return state

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one keep-alive connection."""
        task = asyncio.current_task()
        assert task is not None
        self.conns[task] = writer
        try:
            while (req := await read_request(reader, writer)) and await self.answer(
                req, writer, reader
            ):
                pass
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # only close() cancels; swallowed so Python 3.11's stream callback stays quiet
        finally:
            self.conns.pop(task, None)
            writer.close()

    async def answer(
        self, req: Request, writer: asyncio.StreamWriter, reader: asyncio.StreamReader | None = None
    ) -> bool:
        """Answer one request, applying the fault; return whether to keep the connection."""
        state = self.take_fault(req, is_generation(self.protocol, req))
        fault, release = state.fault, self.release
        if fault in (Fault.REFUSE, Fault.RESET):
            sock = writer.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: closing sends RST, the peer sees ECONNRESET
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if fault is Fault.HANG:
            assert release is not None
            await release.wait()
            return False
        if fault is Fault.DELAY:
            await asyncio.sleep(state.delay)
        status, ctype, body, extra = respond(
            self, self.protocol, req, state.fault, state.retry_after
        )
        if header := REQUEST_ID_HEADER.get(self.protocol):
            extra[header] = "req_sim" + secrets.token_hex(8)
        keep = req.keep_alive and fault is not Fault.TRUNCATED
        streamed = ctype in STREAM_TYPES and fault not in (Fault.TRUNCATED, Fault.TRICKLE)
        lines = [
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
            f"content-type: {ctype}",
            "transfer-encoding: chunked" if streamed else f"content-length: {len(body)}",
            "connection: " + ("keep-alive" if keep else "close"),
            *(f"{k}: {v}" for k, v in extra.items()),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if streamed and req.method != "HEAD":  # frame by frame, with the stream fault
            state, usage = self.take_stream_fault(), self.usage.take()
            log = self.stream_log
            sent = await deliver(reader, writer, head, ctype, body, state, release, log, usage)
            return keep and sent
        if fault is Fault.TRUNCATED:
            body = body[: len(body) // 2]
        if fault is Fault.TRICKLE and release is not None:  # the body a byte every delay
            for piece in [head, *(body[i : i + 1] for i in range(len(body)))]:
                writer.write(piece)
                await writer.drain()
                with contextlib.suppress(TimeoutError):  # cut short by clear_faults()
                    await asyncio.wait_for(release.wait(), state.delay)
                if release.is_set():
                    return False
            return keep
        writer.write(head if req.method == "HEAD" else head + body)
        await writer.drain()
        return keep

    def complete(self, model: Any, messages: list[tuple[str, str]], max_tokens: Any) -> Completion:
        """The deterministic reply, cut to ``max_tokens`` words, with token counts."""
        with self.lock:
            reply = self.reply
        return completion(self.name, reply, model, messages, max_tokens)

    def models_asked(self) -> set[str]:
        with self.lock:
            return {str(r["json"].get("model")) for r in self.log if isinstance(r["json"], dict)}


class Simulator(StreamControls):
    """Fake LLM providers, one local port per provider name (see :mod:`leadfactory.llm.simulator`).

    The server runs in its own thread; every method may be called from any thread.
    """

    def __init__(self, providers: Mapping[str, str] | None = None) -> None:
        """``providers`` maps each provider name to its protocol: openai, anthropic or ollama."""
        providers = DEFAULT_PROVIDERS if providers is None else providers
        for protocol in providers.values():
            check_protocol(protocol)
        self._providers: dict[str, _Provider] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        for name, protocol in providers.items():
            self.add_provider(name, protocol)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Simulator:
        """Start the event-loop thread and listen on every provider's port."""
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="llm-simulator", daemon=True
            )
            self._thread.start()
            self._sync(*self._providers.values())
        return self

    def stop(self) -> None:
        """Close every listener and connection (hung ones too), free the ports, join the thread."""
        if self._thread is None or self._loop is None:
            for p in self._providers.values():
                if p.sock is not None:
                    p.sock.close()
                    p.sock = None
            return
        try:
            self._run(*(p.close() for p in self._providers.values()))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._thread = self._loop = None

    def add_provider(self, name: str, protocol: str = "openai") -> str:
        """Add a listener named ``name`` speaking ``protocol``; return its base URL."""
        check_protocol(protocol)
        if name in self._providers:
            raise ValueError(f"provider {name!r} already exists")
        self._providers[name] = _Provider(name, protocol)
        self._sync(self._providers[name])
        return self.base_url(name)

    def base_url(self, provider: str) -> str:
        """The base URL to configure a client with (``/v1`` included for OpenAI)."""
        p = self._get(provider)
        return f"http://{HOST}:{p.port}" + ("/v1" if p.protocol == "openai" else "")

    def env(self) -> dict[str, str]:
        """Environment variables pointing clients here (LiteLLM reads OLLAMA_API_BASE)."""
        out = {}
        for key, protocol in [
            ("OPENAI_BASE_URL", "openai"),
            ("ANTHROPIC_BASE_URL", "anthropic"),
            ("OLLAMA_HOST", "ollama"),
            ("OLLAMA_API_BASE", "ollama"),
        ]:
            names = sorted(
                (n != protocol, n) for n, p in self._providers.items() if p.protocol == protocol
            )
            if names:
                out[key] = self.base_url(names[0][1])
        return out

    def set_fault(
        self,
        provider: str,
        fault: Fault | str,
        *,
        times: int | None = None,
        delay: float = 1.0,
        retry_after: float | str = 1,
    ) -> None:
        """Make ``provider`` misbehave for its next ``times`` requests (``None``: until cleared).

        ``delay`` (seconds) is for DELAY, and per byte for TRICKLE; ``retry_after``
        (seconds, or an HTTP date) for RATE_LIMIT. REFUSE ignores ``times``: only
        clear_faults() or set_fault(OK) ends it.
        The answer faults (NO_USAGE, NEGATIVE_USAGE, HUGE_USAGE, ABSURD_USAGE, EMPTY_CHOICES)
        spoil a non-streamed answer (see :func:`.faults.misbehave`).
        """
        p, fault = self._get(provider), Fault(str(fault))
        if times is not None and times < 1:
            raise ValueError("times must be None or at least 1")
        with p.lock:
            p.state = _FaultState(
                fault, None if fault is Fault.REFUSE else times, delay, retry_after
            )
        self._sync(p)

    def set_fault_cycle(
        self, provider: str, faults: Sequence[Fault | str], *, retry_after: float | str = 0
    ) -> None:
        """Until cleared, request n gets ``faults[n % len]``: ``["ok", "rate_limit", "500"]``."""
        p, cycle = self._get(provider), tuple(Fault(str(fault)) for fault in faults)
        with p.lock:
            p.state = _FaultState(retry_after=retry_after, cycle=cycle)
        self._sync(p)

    def clear_faults(self) -> None:
        """Every provider back to normal; refused ports listen again (on the same port)."""
        for p in self._providers.values():
            with p.lock:
                p.state, p.stream_state = _FaultState(), StreamState()
            p.usage.set(None)
        self._sync(*self._providers.values())

    def set_usage(
        self, provider: str, usage: Usage | Sequence[Usage] | None, *, times: int | None = None
    ) -> None:
        """Make ``provider``'s next answers report ``usage``: one Usage for ``times``
        answers (None: until cleared), or a sequence, one per answer; None: its own
        counts again (so does clear_faults()). See :mod:`.usage` for each vendor's shape."""
        self._get(provider).usage.set(usage, times)

    def set_reply(self, provider: str, text: str | None) -> None:
        """Answer with ``text`` instead of the default echo (``None`` restores the echo)."""
        p = self._get(provider)
        with p.lock:
            p.reply = text

    def requests(self, provider: str) -> list[dict[str, Any]]:
        """The latest MAX_RECORDED requests: dicts with method, path, query, headers, json.

        Header names are lower-case; ``json`` is the parsed body, or None.
        """
        p = self._get(provider)
        with p.lock:
            return [dict(r) for r in p.log]

    def request_count(self, provider: str) -> int:
        """How many requests reached ``provider`` (faulted ones too; refused ones never arrive)."""
        p = self._get(provider)
        with p.lock:
            return p.count

    def reset_requests(self, provider: str | None = None) -> None:
        """Forget the recorded requests of one provider, or of all."""
        for p in [self._get(provider)] if provider is not None else self._providers.values():
            with p.lock:
                p.log.clear()
                p.count = 0

    def _get(self, provider: str) -> _Provider:
        try:
            return self._providers[provider]
        except KeyError:
            raise KeyError(f"no provider {provider!r}; have {sorted(self._providers)}") from None

    def _sync(self, *providers: _Provider) -> None:
        if self._loop is not None:
            self._run(*(p.sync() for p in providers))

    def _run(self, *coroutines: Coroutine[Any, Any, None]) -> None:
        """Run coroutines on the loop thread and wait for them."""
        assert self._loop is not None

        async def run() -> None:
            await asyncio.gather(*coroutines)

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)
