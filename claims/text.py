"""Rules for free text a person types (claim descriptions, notes, feedback comments)."""

from __future__ import annotations


def has_control_characters(text: str) -> bool:
    """True when `text` holds a control character other than tab, newline or carriage return (C0
    controls and DEL): they are never typed, only injected, and break logs and terminals."""
    return any((ord(ch) < 32 and ch not in "\t\n\r") or ch == "\x7f" for ch in text)
