"""Problems found in a template, paths it read that the data does not have, and the
error that carries a template's compile problems.

Every position points into the text it concerns: a 1-based line and column, and the
0-based character offsets of the span. ``fragment`` names the fragment whose text that
is, or is ``None`` for the template itself, so an editor can open the right source.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    line: int
    column: int
    offset: int
    end_offset: int
    construct: str | None = None
    fragment: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}"
        if self.fragment is not None:
            where = f"fragment {self.fragment!r}, {where}"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """The problem as the APIs answer it."""
        return {
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "offset": self.offset,
            "endOffset": self.end_offset,
            "construct": self.construct,
            "fragment": self.fragment,
        }


@dataclass(frozen=True, slots=True)
class UndefinedPath:
    """A path the template read that the data does not hold (or holds as ``null``)."""

    path: str
    line: int
    column: int
    offset: int
    end_offset: int
    fragment: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "offset": self.offset,
            "endOffset": self.end_offset,
            "fragment": self.fragment,
        }


@dataclass
class TemplateError(Exception):
    """A template that cannot be compiled; ``problems`` says every reason found."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.problems:
            return "invalid template"
        return "; ".join(str(problem) for problem in self.problems)


class Source:
    """A template's text with its line starts, to turn offsets into lines and columns."""

    __slots__ = ("fragment", "line_starts", "text")

    def __init__(self, text: str, fragment: str | None = None) -> None:
        self.text = text
        self.fragment = fragment
        self.line_starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def problem(self, message: str, offset: int, end_offset: int, construct: str | None = None) -> Problem:
        line, column = self.position(offset)
        return Problem(message, line, column, offset, end_offset, construct, self.fragment)

    def undefined(self, path: str, offset: int, end_offset: int) -> UndefinedPath:
        line, column = self.position(offset)
        return UndefinedPath(path, line, column, offset, end_offset, self.fragment)
