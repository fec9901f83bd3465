"""Membership as pure rules: what an evaluation changes, and which audiences a change
to a profile can affect."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Status = Literal["realized", "existing", "exited"]
MEMBER: frozenset[str] = frozenset({"realized", "existing"})


def transition(previous: str | None, qualifies: bool) -> tuple[str | None, Status | None]:
    """(the status to store, the change to announce) after an evaluation.

    Qualifying after not qualifying (never evaluated, or exited) realizes the
    membership; qualifying again makes it existing, silently; no longer qualifying
    exits it; not qualifying again changes nothing."""
    if qualifies:
        if previous in MEMBER:
            return "existing", None
        return "realized", "realized"
    if previous in MEMBER:
        return "exited", "exited"
    return previous, None


def relevant(references: Iterable[str], touched: set[str] | None) -> bool:
    """Whether a rule reading ``references`` can change when ``touched`` paths change
    (None: anything may have). A path and a reference that is a prefix of it, or has
    it as a prefix, overlap; ``xEvent`` covers every event path."""
    if touched is None:
        return True
    for reference in references:
        for path in touched:
            if reference == path or reference.startswith(path + ".") or path.startswith(reference + "."):
                return True
    return False
