"""Value types shared by the bodies of journeys and custom actions.

Every string a client sends is checked to be storable (PostgreSQL's text and jsonb hold
no NUL character, UTF-8 no lone surrogate), so a bad value is a 422 with its path and
never a failure of the database.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    if _UNSTORABLE.search(text):
        raise ValueError("NUL characters and lone surrogates are not allowed")
    return text


Storable = AfterValidator(_storable)
Text = Annotated[str, StringConstraints(max_length=4096), Storable]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), Storable]
Description = Annotated[str, StringConstraints(max_length=4096), Storable]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
"""A name that PQL can read as is: letters, digits and ``_``, not starting with a digit."""
Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), Storable]
"""The id of something another service owns (an audience, a template, a profile)."""


class Strict(BaseModel):
    """Any field the model does not name is refused, so a misspelt one is not silently dropped."""

    model_config = ConfigDict(extra="forbid")
