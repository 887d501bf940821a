"""A writer killed with SIGKILL mid-burst leaves a sound ledger holding every reported call."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

WRITER = textwrap.dedent(
    """
    import sys, threading
    from leadfactory.llm import LLMClient, LLMConfig

    config = LLMConfig(enable_caching=False, log_requests=False)
    client = LLMClient(config)
    lock = threading.Lock()

    def burst(worker):
        for i in range(10_000):
            response = client.chat_completion(
                [{"role": "user", "content": f"worker {worker} call {i}"}], max_tokens=20
            )
            with lock:  # told it succeeded: report it
                print(response["request_id"], flush=True)

    threads = [threading.Thread(target=burst, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    """
)


def test_sigkill_mid_burst_keeps_every_reported_row(sim_env, tmp_path):
    ledger = tmp_path / "durable.db"
    env = {
        **os.environ,
        "LLM_LEDGER_PATH": str(ledger),
        "LLM_FALLBACK_STRATEGY": "quality_optimized",
    }
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER], env=env, stdout=subprocess.PIPE, text=True
    )
    reported: list[str] = []

    def read() -> None:
        for line in writer.stdout:
            reported.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while len(reported) < 150 and time.monotonic() < deadline and writer.poll() is None:
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    reader.join(timeout=10)
    assert len(reported) >= 150, "the writer did not get going"

    with sqlite3.connect(ledger) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {
            row[0] for row in conn.execute("select request_id from calls where outcome = 'success'")
        }
    missing = set(reported) - stored
    assert not missing, f"{len(missing)} calls reported as done have no ledger row"
