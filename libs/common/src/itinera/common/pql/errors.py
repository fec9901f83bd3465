"""Problems found in a PQL rule, and the error that carries them.

Every problem points into the rule's text: a 1-based line and column, and the 0-based
character offsets of the span it concerns. ``construct`` names the PQL construct at
fault when there is one (``"CHAIN"``, ``"function foo"``, ``"occurs"``...), so a rule
editor can say what is not supported rather than only where.
"""

from __future__ import annotations

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

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}"
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
        }


@dataclass
class PqlError(Exception):
    """A rule that cannot be parsed or compiled; ``problems`` says every reason found."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.problems:
            return "invalid PQL"
        return "; ".join(str(problem) for problem in self.problems)
