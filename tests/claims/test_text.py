"""claims.text: what free text may hold."""

from __future__ import annotations

import pytest

from claims.text import has_control_characters


@pytest.mark.parametrize("text", ["box crushed", "line one\nline two\r\n\tindented", "破损 ✓"])
def test_typed_text_passes(text: str) -> None:
    assert not has_control_characters(text)


@pytest.mark.parametrize("text", ["bell\x07", "esc\x1b[2J", "del\x7f", "nul\x00"])
def test_control_characters_are_found(text: str) -> None:
    assert has_control_characters(text)
