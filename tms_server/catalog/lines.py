"""Line numbers for key paths of a TOML text, so catalog errors can say where to look.

tomllib reports values but no positions. This module scans the text once and records the line of every
table header and key it can see, under the same path syntax the parser reports
(``options[2].price.SEK.base``). Keys inside inline tables or multi-line arrays resolve to the line of
the enclosing key: close enough for a person with an editor.
"""

from __future__ import annotations

import re

__all__ = ["LineMap"]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*="""
)
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*(?:\.|$)""")


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


def _depth_change(line: str) -> int:
    """Net open brackets on a line, ignoring strings and comments (good enough for catalogs)."""
    depth, quote = 0, ""
    for ch in line:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


class LineMap:
    """Maps ``a.b[2].c`` paths to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        self._arrays: dict[str, int] = {}
        prefix, depth = "", 0
        for number, line in enumerate(text.splitlines(), start=1):
            if depth > 0:
                depth += _depth_change(line)
                continue
            header = _HEADER.match(line)
            if header:
                prefix = self._open_table(_parts(header.group(2)), header.group(1) == "[[")
                self._lines.setdefault(prefix, number)
                continue
            key = _KEY.match(line)
            if key:
                path = ".".join(p for p in (prefix, *_parts(key.group(1))) if p)
                self._lines.setdefault(path, number)
                depth = _depth_change(line[key.end() :])

    def _open_table(self, parts: list[str], is_array: bool) -> str:
        resolved = ""
        for i, part in enumerate(parts):
            candidate = f"{resolved}.{part}" if resolved else part
            if is_array and i == len(parts) - 1:
                self._arrays[candidate] = self._arrays.get(candidate, -1) + 1
            if candidate in self._arrays:
                candidate = f"{candidate}[{self._arrays[candidate]}]"
            resolved = candidate
        return resolved

    def line_of(self, path: str) -> int | None:
        """The line of ``path`` or of its nearest recorded ancestor."""
        while path:
            if path in self._lines:
                return self._lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[: max(cut, 0)]
        return None
