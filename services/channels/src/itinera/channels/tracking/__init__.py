"""Open and click tracking of emails: links rewritten to signed redirects and an open
pixel when the HTML is rendered (:mod:`.links`), the links recorded per message
(:mod:`.repository`), and the endpoints that answer them and report ``opened`` and
``clicked`` feedback (:mod:`.endpoints`)."""

from __future__ import annotations

from dataclasses import dataclass

from itinera.channels.tracking.links import rewrite
from itinera.channels.unsubscribe.tokens import seal

OPEN = "open"
CLICK = "click"
OPEN_PATH = "/v1/t/o/"
CLICK_PATH = "/v1/t/c/"


@dataclass(frozen=True)
class Tracker:
    """Instruments emails' HTML for one deployment: its public URL and signing secret."""

    public_url: str
    secret: str

    def instrument(
        self, sandbox: str, message_id: str, source: str, *, opens: bool = True, clicks: bool = True
    ) -> tuple[str, list[str]]:
        """The HTML with its links pointing to the click redirect (``clicks``) and the
        open pixel added (``opens``); and the links, whose indexes the click tokens
        carry."""
        base = self.public_url.rstrip("/")

        def link(index: int, url: str) -> str:
            return (
                f"{base}{CLICK_PATH}{seal(self.secret, CLICK, {'s': sandbox, 'm': message_id, 'i': index})}"
            )

        pixel_token = seal(self.secret, OPEN, {"s": sandbox, "m": message_id})
        pixel = (
            f'<img src="{base}{OPEN_PATH}{pixel_token}.gif" width="1" height="1" alt="" style="display:none">'
        )
        keep = (f"{base}/v1/unsubscribe/", f"{base}{OPEN_PATH}", f"{base}{CLICK_PATH}")
        return rewrite(source, link if clicks else None, pixel if opens else None, keep)
