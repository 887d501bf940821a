"""``python -m leadfactory.llm.simulator``: serve the three providers until Ctrl-C."""

from __future__ import annotations

import contextlib
import threading

from .server import Simulator


def main() -> None:
    """Serve the default providers until Ctrl-C, printing the environment that points at them."""
    with Simulator() as sim:
        for key, value in sim.env().items():
            print(f"export {key}={value}")
        print("# LLM simulator running; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
