"""How the simulator delivers a streamed answer: frame by frame, with stream faults.

:mod:`.vendors` writes a streamed answer whole (OpenAI's SSE ending ``data: [DONE]``,
Anthropic's typed SSE events, Ollama's NDJSON); :func:`deliver` splits it into its frames
and sends each as one HTTP chunk (``transfer-encoding: chunked``), as the vendors do,
applying the provider's :class:`StreamFault`:

- ``ERROR_EVENT``: after ``after`` content frames, an error event in the protocol's shape
  (OpenAI ``data: {"error": ...}``, Anthropic ``event: error``, Ollama ``{"error": ...}``);
- ``CUT``: after ``after`` content frames, the connection is closed mid-body;
- ``STALL``: after ``after`` content frames, nothing more until the client gives up;
- ``END_EARLY``: after ``after`` content frames, the body ends cleanly, without the
  finish reason, the usage or OpenAI's ``[DONE]``;
- ``SLOW_FIRST``: ``delay`` seconds before the first content frame (frames before it,
  such as OpenAI's role frame, go at once);
- ``NO_USAGE``: the usage is left out (OpenAI's usage chunk, Anthropic's
  ``message_delta`` usage, Ollama's final counts).

``interval`` paces every frame. A content frame carries text (or a tool call). Each
delivery is recorded (:class:`StreamRecord`), including whether the client closed the
connection before the end. Faults before the first frame (an error status) are the
ordinary faults of :mod:`.faults`. Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from .usage import Usage, with_usage

__all__ = [
    "STREAM_TYPES",
    "StreamControls",
    "StreamFault",
    "StreamRecord",
    "StreamState",
    "StreamedProvider",
    "deliver",
    "frames_of",
    "stream_deltas",
]

STREAM_TYPES = frozenset({"text/event-stream", "application/x-ndjson"})


class StreamFault(StrEnum):
    """What a provider does to its next streamed answers (``Simulator.set_stream_fault``)."""

    OK = "ok"
    ERROR_EVENT = "error_event"
    CUT = "cut"
    STALL = "stall"
    END_EARLY = "end_early"
    SLOW_FIRST = "slow_first"
    NO_USAGE = "no_usage"


@dataclass
class StreamState:
    """A provider's stream fault and pacing."""

    fault: StreamFault = StreamFault.OK
    after: int = 0  # content frames sent before the fault
    delay: float = 1.0  # SLOW_FIRST: seconds before the first content frame
    interval: float = 0.0  # seconds between frames
    times: int | None = None  # None: until cleared


@dataclass
class StreamRecord:
    """One streamed answer as delivered: frames in it, frames sent, who ended it."""

    frames: int
    sent: int = 0
    content_sent: int = 0
    fault: str = "ok"
    client_closed: bool = False  # the client closed the connection before the end
    complete: bool = False  # every frame (and the body's end) was sent


def stream_deltas(message: dict[str, Any], pieces: Any) -> list[dict[str, Any]]:
    """The deltas an OpenAI stream sends ``message`` in: its text split by ``pieces``, or
    each tool call as its id and name, then its arguments in two halves."""
    deltas = [{"content": piece} for piece in pieces(message.get("content") or "")]
    for index, call in enumerate(message.get("tool_calls") or ()):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        head = {"index": index, "id": call["id"], "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": call["function"]["name"]}}]})
        for part in (arguments[:half], arguments[half:]):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    return deltas


def frames_of(ctype: str, body: bytes) -> list[bytes]:
    """The frames of a whole streamed body: SSE events, or NDJSON lines."""
    separator = b"\n\n" if ctype == "text/event-stream" else b"\n"
    return [part + separator for part in body.split(separator) if part.strip()]


def _payload(frame: bytes) -> Any:
    """The JSON of a frame (None for ``[DONE]`` and anything that is not JSON)."""
    text = frame.decode()
    for line in text.splitlines():
        if line.startswith("data:"):
            text = line[5:].strip()
            break
    try:
        return json.loads(text)
    except ValueError:
        return None


def is_content(frame: bytes) -> bool:
    """Whether ``frame`` carries text or a tool call (role-only and empty frames do not)."""
    data = _payload(frame)
    if not isinstance(data, dict):
        return False
    if data.get("type") == "content_block_delta":  # Anthropic
        return True
    for choice in data.get("choices") or ():  # OpenAI
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    message = data.get("message") or {}
    return bool(message.get("content") or message.get("tool_calls") or data.get("response"))


def restated(frames: list[bytes], usage: Usage | None) -> list[bytes]:
    """``frames`` reporting ``usage`` (scripted, see :mod:`.usage`) as each vendor streams
    it, or (None) reporting none: OpenAI's usage chunk, Anthropic's ``message_start``
    (input and cache counts) and ``message_delta`` (output), Ollama's final counts."""
    out = []
    for frame in frames:
        data = _payload(frame)
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(data, dict):
            pass
        elif data.get("choices") == [] and "usage" in data:  # OpenAI's usage chunk
            if usage is None:
                continue
            data = with_usage("openai", "openai", data, usage)
        elif kind == "message_start" and usage is not None:
            counts = with_usage("anthropic", "anthropic", {}, usage)["usage"]
            data["message"]["usage"] = {**counts, "output_tokens": 1}
        elif kind == "message_delta":
            data.pop("usage", None)
            if usage is not None:
                data["usage"] = {"output_tokens": usage.completion_tokens}
        elif data.get("done") is True:
            counts = ("prompt_eval_count", "eval_count")
            data = {k: v for k, v in data.items() if k not in counts}
            if usage is not None:
                data = with_usage("ollama", "ollama", data, usage)
        else:
            data = None
        out.append(frame if data is None else _frame(data, frame))
    return out


def _frame(data: dict[str, Any], like: bytes) -> bytes:
    """``data`` written as the frame ``like`` was (an SSE event, SSE data, an NDJSON line)."""
    if like.startswith(b"event:"):
        return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()
    if like.startswith(b"data:"):
        return f"data: {json.dumps(data)}\n\n".encode()
    return (json.dumps(data) + "\n").encode()


def error_frame(shape: str) -> bytes:
    """An error event in ``shape`` (``openai``, ``anthropic`` or ``ollama``)."""
    if shape == "anthropic":
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return f"event: error\ndata: {json.dumps(error)}\n\n".encode()
    if shape == "openai":
        error = {
            "error": {"message": "The server had an error (simulated)", "type": "server_error"}
        }
        return f"data: {json.dumps(error)}\n\n".encode()
    return (
        json.dumps({"error": "an error was encountered while running the model"}) + "\n"
    ).encode()


def _shape(ctype: str, frames: list[bytes]) -> str:
    if ctype == "application/x-ndjson":
        return "ollama"
    return "anthropic" if frames and frames[0].startswith(b"event:") else "openai"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def deliver(
    reader: asyncio.StreamReader | None,
    writer: asyncio.StreamWriter,
    head: bytes,
    ctype: str,
    body: bytes,
    state: StreamState,
    release: asyncio.Event | None,
    record: list[StreamRecord],
    usage: Usage | None = None,
) -> bool:
    """Send ``body`` frame by frame under ``state``; return whether the connection is kept.

    ``head`` is the status line and headers (ending with a blank line), announcing a
    chunked body. ``release`` wakes a stalled stream; ``record`` gets this delivery's
    :class:`StreamRecord`; ``usage``, scripted, is what the answer reports.
    """
    frames = frames_of(ctype, body)
    if state.fault is StreamFault.NO_USAGE or usage is not None:
        frames = restated(frames, None if state.fault is StreamFault.NO_USAGE else usage)
    log = StreamRecord(frames=len(frames), fault=str(state.fault))
    record.append(log)
    closed = asyncio.ensure_future(reader.read(1)) if reader is not None else None
    try:
        writer.write(head)
        await writer.drain()
        for frame in frames:
            content = is_content(frame)
            due = content and log.content_sent == state.after
            if due and not await _fault(writer, state, release, closed, _shape(ctype, frames)):
                log.client_closed = _client_closed(closed)
                return False
            if state.interval and log.sent and await _closed_within(closed, state.interval):
                log.client_closed = True
                return False
            writer.write(_chunk(frame))
            await writer.drain()
            log.sent += 1
            log.content_sent += content
            if _client_closed(closed):
                log.client_closed = True
                return False
        if closed is not None:  # the body is over: the next bytes are the next request's
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closed
            closed = None
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        log.complete = True
        return True
    except (ConnectionError, OSError):
        log.client_closed = True
        return False
    finally:
        if closed is not None and not closed.done():
            closed.cancel()


async def _fault(
    writer: asyncio.StreamWriter,
    state: StreamState,
    release: asyncio.Event | None,
    closed: asyncio.Future[bytes] | None,
    shape: str,
) -> bool:
    """Apply the fault due before the next content frame; False: the body ends here."""
    fault = state.fault
    if fault is StreamFault.SLOW_FIRST:
        await _closed_within(closed, state.delay)
        return not _client_closed(closed)
    if fault is StreamFault.ERROR_EVENT:
        writer.write(_chunk(error_frame(shape)) + b"0\r\n\r\n")
        await writer.drain()
        return False
    if fault is StreamFault.END_EARLY:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return False
    if fault is StreamFault.CUT:
        writer.close()  # mid-body: the client reads an incomplete chunked body
        return False
    if fault is StreamFault.STALL:
        waits = [w for w in (closed, release and asyncio.ensure_future(release.wait())) if w]
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            if task is not closed:
                task.cancel()
        return False
    return True


async def _closed_within(closed: asyncio.Future[bytes] | None, seconds: float) -> bool:
    """Wait ``seconds``, or less if the client closes the connection; True if it did."""
    if closed is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(closed), seconds)
    return _client_closed(closed)


def _client_closed(closed: asyncio.Future[bytes] | None) -> bool:
    return closed is not None and closed.done() and not closed.cancelled() and not _data(closed)


def _data(closed: asyncio.Future[bytes]) -> bytes:
    return b"" if closed.exception() is not None else closed.result()


class StreamedProvider:
    """The stream side of one simulated provider (mixed into the server's provider)."""

    lock: threading.Lock
    stream_state: StreamState
    stream_log: deque[StreamRecord]

    def take_stream_fault(self) -> StreamState:
        """The stream fault for this answer, using up one of its ``times``."""
        with self.lock:
            state = self.stream_state
            if state.times is not None:
                state.times -= 1
                if state.times <= 0:
                    self.stream_state = StreamState()
            return state


class StreamControls:
    """:class:`~leadfactory.llm.simulator.Simulator`'s methods for streamed answers."""

    def _get(self, provider: str) -> Any: ...  # the Simulator's

    def set_stream_fault(
        self,
        provider: str,
        fault: StreamFault | str,
        *,
        after: int = 0,
        delay: float = 1.0,
        interval: float = 0.0,
        times: int | None = None,
    ) -> None:
        """Make ``provider``'s next ``times`` streamed answers (None: until cleared) misbehave.

        ``after``: content frames sent before the fault; ``delay``: SLOW_FIRST's wait;
        ``interval``: seconds between frames (with any fault, OK included).
        ``clear_faults()`` ends it.
        """
        if times is not None and times < 1:
            raise ValueError("times must be None or at least 1")
        if after < 0 or delay < 0 or interval < 0:
            raise ValueError("after, delay and interval must be >= 0")
        p = self._get(provider)
        with p.lock:
            p.stream_state = StreamState(StreamFault(str(fault)), after, delay, interval, times)

    def stream_records(self, provider: str) -> list[dict[str, Any]]:
        """``provider``'s latest streamed answers as delivered (see :class:`StreamRecord`)."""
        p = self._get(provider)
        with p.lock:
            return [asdict(record) for record in p.stream_log]
