"""Logging configuration left as a test found it.

Documentation blocks configure logging as a reader would (``basicConfig``, a logger's
level); left in place, every later test of the session would write log lines, and a
child forked while another thread writes one can hang on that stream (Python resets
logging's locks at a fork, not the lock of the file underneath).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import leadfactory.llm.log  # noqa: F401 - the library's logger exists before a test configures it


def _loggers() -> list[logging.Logger]:
    named = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(item for item in named if isinstance(item, logging.Logger))]


@contextlib.contextmanager
def logging_left_as_found() -> Iterator[None]:
    """On exit, every logger that existed has its level, propagation and disabled flag
    back, and loses the handlers added meanwhile (pytest's own come and go by phase)."""
    saved = [
        (logger, logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for logger in _loggers()
    ]
    try:
        yield
    finally:
        for logger, level, handlers, propagate, disabled in saved:
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled
            for handler in list(logger.handlers):
                if handler not in handlers and not _from_pytest(handler):
                    logger.removeHandler(handler)


def _from_pytest(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")
