"""PQL, Adobe Experience Platform's Profile Query Language: one engine for segment
definitions, journey conditions, offer eligibility and exit criteria.

``parse`` turns text into a typed tree (``ast``), ``to_text`` prints a tree back,
``compile_rule`` compiles it once to Python closures, and ``Rule.evaluate`` runs it
against a profile. ``analyse`` reports what a rule reads and whether it can stream.

Semantics, following AEP's PQL documentation where it speaks and stated here where
it does not:

- A missing attribute is ``null``; so is an attribute read through a value of the
  wrong shape (a string where an object is expected...). Reading an attribute of an
  array reads it from every item (``person.orders.storeId`` lists the store ids).
  Evaluation never raises on the profile's content.
- Any comparison involving ``null`` is false, ``!=`` included: AEP notes that
  ``notIn`` rejects nulls rather than negating ``in``, and comparisons follow the same
  rule. Test presence with ``isNull()`` / ``isNotNull()``. Values of different types
  are never equal (``1 = "1"`` is false, so ``1 != "1"`` is true) and cannot be ordered.
- Arithmetic takes numbers only; ``null``, other types, division by zero and overflow
  give ``null``. ``/`` divides exactly; ``%`` takes the sign of the dividend.
- String functions (``startsWith``, ``contains``, ``equals``...) are false unless both
  sides are strings, the ``doesNot...`` forms included. Their optional last argument
  ``false`` makes them case-insensitive (Unicode case folding); the default is
  case-sensitive. ``like`` matches the whole string (``%`` any run, ``_`` one
  character); ``matches`` searches the text with a regular expression (anchor it with
  ``^``/``$``), written as AEP writes Java ones.
- A condition holds when it is ``true``, or when it is an array with at least one
  item (``xEvent[eventType = "x"]`` holds when such an event exists).
- Times: data holds XDM timestamps (ISO-8601, read as UTC when they carry no offset)
  and dates (``YYYY-MM-DD``). Comparing a date with a timestamp compares whole days.
  ``now`` is the moment of evaluation; ``today``, ``yesterday``, ``tomorrow`` and
  ``this``/``last``/``next`` periods are UTC calendar days, Monday-based weeks,
  months and years. ``occurs`` is described in ``functions.occurs_relative``.
- Inside ``array[condition]`` and the per-item argument of ``filter``, ``map``,
  ``exists``, ``sum``... bare names read the item; ``^`` reads the enclosing item
  (``^^`` the one around that, up to the profile). A lambda (``x => ...``) names the
  item instead. ``xEvent`` always means the profile's events.
- ``exists X from A where C`` holds when some item satisfies ``C``; further bindings
  (``, Y from X.items where D``) nest. ``forall`` requires every item, and every item of
  its nested bindings, to satisfy its condition; it holds for no items at all.
- ``CHAIN(xEvent, timestamp, [A: WHAT(...) WHERE(...) WHEN(...) COUNT(n)])`` holds when
  events match the steps in strictly increasing time. ``WHAT``/``WHERE`` read the
  event; ``WHEN`` is an ``occurs`` test of the event's time; ``COUNT(n)`` asks for at
  least ``n`` matching events. Later steps may name earlier ones by label.
- ``topN``/``bottomN`` keep the items with the highest/lowest score, as AEP's examples
  do; ``regexGroup`` without a group number returns the whole match.
- ``inSegment(id)`` holds when the audience's status is ``realized`` or ``existing``.
"""

from itinera.common.pql.analysis import Analysis, Timing, analyse
from itinera.common.pql.ast import Expression
from itinera.common.pql.compiler import Rule, compile_rule
from itinera.common.pql.errors import PqlError, Problem
from itinera.common.pql.functions import truthy
from itinera.common.pql.parser import parse
from itinera.common.pql.printer import to_text

__all__ = [
    "Analysis",
    "Expression",
    "PqlError",
    "Problem",
    "Rule",
    "Timing",
    "analyse",
    "compile_rule",
    "parse",
    "to_text",
    "truthy",
]
