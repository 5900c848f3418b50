"""Control characters in text meant for people: log lines and terminal output.

A value a client or a shopper chose (a session id, an /auth identifier, a path with ``%0a``, a
recipient's name) can hold a newline that forges a log line or a table row, or an ESC sequence
that retitles, recolours or rewrites an operator's terminal. Text formats show such characters
escaped (``\\n``, ``\\x1b``); JSON formats escape them by themselves.
"""

from __future__ import annotations

from typing import Any, TextIO

__all__ = ["SafeStream", "escape"]


def _escaped(ch: str) -> str:
    code = ord(ch)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    if named:
        return named
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, keep: str = "") -> str:
    """``text`` with every non-printable character (controls, line and paragraph separators,
    bidi overrides) escaped, except those in ``keep``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else _escaped(ch) for ch in text)


class SafeStream:
    """A text stream that escapes control characters other than newline and tab on the way out;
    what ``tms-admin`` writes to the terminal goes through one."""

    def __init__(self, stream: TextIO, keep: str = "\n\t") -> None:
        self._stream = stream
        self._keep = keep

    def write(self, text: str) -> int:
        self._stream.write(escape(text, keep=self._keep))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
