"""A test that configures logging does not leave it configured for the next ones."""

from __future__ import annotations

import logging

from .logging_state import logging_left_as_found


def test_levels_and_added_handlers_are_undone():
    ours, root = logging.getLogger("leadfactory.llm"), logging.getLogger()
    before = (ours.level, root.level, list(ours.handlers), list(root.handlers))
    added = logging.StreamHandler()
    with logging_left_as_found():
        ours.setLevel(logging.INFO)  # what docs/troubleshooting.md's block does
        root.setLevel(logging.DEBUG)
        root.addHandler(added)
        ours.addHandler(added)
    assert (ours.level, root.level, list(ours.handlers), list(root.handlers)) == before
