"""Instrumenting an email's rendered HTML: each ``<a href="http(s)://...">`` points to the
click redirect, and an open pixel goes before ``</body>``.

Where the links are is found by :class:`html.parser.HTMLParser`, the standard library's
tokenizer, rather than by a regular expression over the whole document: it knows what
is a start tag and what is a comment, a ``<script>`` or ``<style>`` body, or text that
merely looks like a tag, so nothing but real ``<a>`` tags is touched. The parser gives
each start tag's position and raw text; inside that one tag, the attributes are matched
in order (so an ``href=`` inside another attribute's quoted value is skipped), and only
the value of ``href`` is replaced. Everything else of the document is left byte for byte
as it was rendered.

Only ``http`` and ``https`` links are tracked: ``mailto:``, ``tel:``, anchors (``#...``)
and relative links stay as they are, and so do the service's own unsubscribe and
tracking links, and a link whose tag has a ``data-untracked`` attribute (a link the
template's author left out of tracking). The text part of an email is not rewritten.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

# One attribute of a start tag: its name, then optionally = and a quoted or bare value.
_ATTRIBUTE = re.compile(
    r"""(?P<name>[^\s/>"'=][^\s/>=]*)(?:\s*=\s*(?P<value>"[^"]*"|'[^']*'|[^\s>]+))?""",
)
_TAG_NAME = re.compile(r"<[a-zA-Z][^\s/>]*")
_NEWLINE = re.compile("\n")
_TRACKED_SCHEMES = ("http://", "https://")


class _Anchors(HTMLParser):
    """Collects the (start, end) offsets, in the document, of every ``<a>`` tag's
    ``href`` value (quotes included), with the value as the browser reads it."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        # Where each line starts, as the parser counts lines (at each "\n"); found by
        # the regex engine, a character-by-character loop cost half the rewrite's time.
        self.line_starts = [0, *(found.end() for found in _NEWLINE.finditer(source))]
        self.found: list[tuple[int, int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a" or any(name == "data-untracked" for name, _ in attrs):
            return
        raw = self.get_starttag_text()
        line, column = self.getpos()
        start = self.line_starts[line - 1] + column
        if raw is None or self.source[start : start + len(raw)] != raw:
            return  # not where the parser says: leave the tag alone rather than guess
        name = _TAG_NAME.match(raw)
        if name is None:
            return
        for attribute in _ATTRIBUTE.finditer(raw, name.end()):
            if attribute["name"].lower() != "href":
                continue
            value = attribute["value"]
            if value is None:
                return
            text = value[1:-1] if value[0] in "\"'" else value
            where = (start + attribute.start("value"), start + attribute.end("value"))
            self.found.append((*where, html.unescape(text)))
            return  # the first href is the one a browser follows

    handle_startendtag = handle_starttag


def rewrite(
    source: str, link: Callable[[int, str], str] | None, pixel: str | None, keep: tuple[str, ...] = ()
) -> tuple[str, list[str]]:
    """``source`` with each tracked link's ``href`` replaced by ``link(index, url)`` (none
    when ``link`` is None), and ``pixel`` (markup) before the last ``</body>`` or at the
    end; and the tracked URLs, in the order of their indexes. URLs starting with one of
    ``keep`` are not tracked."""
    found: list[tuple[int, int, str]] = []
    if link is not None:
        parser = _Anchors(source)
        parser.feed(source)
        parser.close()
        found = parser.found
    parts: list[str] = []
    urls: list[str] = []
    done = 0
    for start, end, value in found:
        url = value.strip()
        if not url.lower().startswith(_TRACKED_SCHEMES) or url.startswith(keep):
            continue
        assert link is not None
        parts.append(source[done:start])
        parts.append('"' + html.escape(link(len(urls), url), quote=True) + '"')
        urls.append(url)
        done = end
    parts.append(source[done:])
    result = "".join(parts)
    if pixel is not None:
        body_end = result.lower().rfind("</body")
        result = result + pixel if body_end < 0 else result[:body_end] + pixel + result[body_end:]
    return result, urls
