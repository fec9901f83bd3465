"""Compiled templates kept for reuse: an LRU keyed by template version or source hash."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from itinera.common.render.compiler import FragmentLoader, Limits, Template, compile_template
from itinera.common.render.values import Escaping


class TemplateCache:
    """At most ``size`` compiled templates, least recently used dropped first; thread-safe.

    A template is found by ``key`` when given, e.g. ``(template_id, version)``, so the
    caller must change the key whenever the text (or a fragment it includes) changes;
    without a key, by the SHA-256 of the text. The options (fragment loader, escaping,
    limits) are part of the key. Templates that do not compile are not kept.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Template] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        source: str,
        key: Hashable | None = None,
        *,
        fragments: FragmentLoader | None = None,
        escape: Escaping = True,
        limits: Limits | None = None,
    ) -> Template:
        """The compiled template, compiled on first use; raises ``TemplateError`` as ``compile_template``."""
        identity: Any = key if key is not None else hashlib.sha256(source.encode()).hexdigest()
        entry = (identity, fragments, escape, limits)
        with self._lock:
            template = self._entries.get(entry)
            if template is not None:
                self._entries.move_to_end(entry)
                return template
        template = compile_template(source, fragments=fragments, escape=escape, limits=limits)
        with self._lock:
            self._entries[entry] = template
            self._entries.move_to_end(entry)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return template

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


DEFAULT_CACHE = TemplateCache()


def compile_cached(
    source: str,
    key: Hashable | None = None,
    *,
    fragments: FragmentLoader | None = None,
    escape: Escaping = True,
    limits: Limits | None = None,
) -> Template:
    """``compile_template`` through the process-wide ``DEFAULT_CACHE``."""
    return DEFAULT_CACHE.get(source, key, fragments=fragments, escape=escape, limits=limits)
