"""Open and click tracking of emails on the real broker, database and SMTP server: the
email that arrives has its web links pointing to signed redirects and an open pixel;
fetching the pixel reports ``opened`` once, following a link redirects to the link the
email had and reports ``clicked`` each time, on ``itinera.feedback.v1``. A token that is
altered, of another kind, or names a link the message did not have is a 404 and
records nothing; nothing redirects to a URL a token carries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson

from itinera.channels.config import ChannelsSettings
from itinera.channels.tracking import CLICK, OPEN, Tracker
from itinera.channels.unsubscribe.tokens import seal, sign
from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.sinks import LocalDelivery, ReceivedMail
from itinera.common.testing import StackInfo, topic_reader

from .conftest import Content, Requests, state
from .test_pipeline import address, person

OFFER = "https://shop.example/offer?code={{context.code}}&amp;utm=mail"
NEWSLETTER = {
    "en": {
        "subject": "News",
        "html": (
            "<html><body><h1 id='top'>Hi {{profile.person.name.firstName}}</h1>"
            f"<p><a href=\"{OFFER}\">the offer</a>, <a href='https://shop.example/'>the shop</a></p>"
            '<p><a href="mailto:help@shop.example">write</a> <a href="tel:+15005550006">call</a> '
            '<a href="#top">top</a></p></body></html>'
        ),
        "text": "Hi {{profile.person.name.firstName}}: https://shop.example/",
    }
}


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        if tag == "img" and found.get("src"):
            self.images.append(str(found["src"]))


def parsed(html: str) -> _Hrefs:
    parser = _Hrefs()
    parser.feed(html)
    parser.close()
    return parser


def feedback_of(records: list[Record], message_id: str, status: str) -> list[dict[str, Any]]:
    found = [orjson.loads(r.value or b"{}") for r in records]
    return [f for f in found if f.get("messageId") == message_id and f.get("status") == status]


async def counts(pool: asyncpg.Pool, sandbox: str, message_id: str) -> tuple[int, int]:
    """The message's clicks (all links) and opens, as recorded."""
    async with pool.acquire() as conn:
        clicks = await conn.fetchval(
            "SELECT coalesce(sum(clicks), 0) FROM message_links WHERE sandbox = $1 AND message_id = $2",
            sandbox,
            uuid.UUID(message_id),
        )
        opens = await conn.fetchval(
            "SELECT coalesce(sum(opens), 0) FROM message_opens WHERE sandbox = $1 AND message_id = $2",
            sandbox,
            uuid.UUID(message_id),
        )
    return int(clicks), int(opens)


def anonymous(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client without the bearer token: tracking links are opened by mail readers."""
    return httpx.AsyncClient(transport=api._transport, base_url="http://testserver")


async def sent_newsletter(
    api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
) -> tuple[str, str, _Hrefs]:
    await content.publish("news", NEWSLETTER)
    to = address()
    (message_id,) = await requests.send(requests.body("news", person(to), context={"code": "A&B"}))
    mail = await delivery.mail.wait_for(lambda m: m.sent_to(to))
    await state(api, message_id, "sent")
    assert mail.html is not None
    return message_id, to, parsed(mail.html)


class TestInstrumentedEmail:
    async def test_web_links_point_to_signed_redirects_and_the_pixel_is_added(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        _, _, found = await sent_newsletter(api, content, requests, delivery)
        tracked = [h for h in found.hrefs if h.startswith("https://channels.example.com/v1/t/c/")]
        assert len(tracked) == 2
        assert len(set(tracked)) == 2
        assert not any("shop.example" in h for h in tracked)
        assert [h for h in found.hrefs if h not in tracked] == [
            "mailto:help@shop.example",
            "tel:+15005550006",
            "#top",
        ]
        (pixel,) = found.images
        assert pixel.startswith("https://channels.example.com/v1/t/o/")
        assert pixel.endswith(".gif")

    def test_the_markup_around_the_links_is_left_as_it_was(self) -> None:
        source = (
            "<body><!-- <a href='https://comment.example/'> -->"
            "<script>var a = '<a href=\"https://script.example/\">';</script>"
            "<a title=\"see href='https://title.example/'\" data-x=1 HREF=https://real.example/?a=1&amp;b=2>"
            "x</a><a href>empty</a><a href='/relative'>r</a>"
            "<a href='https://channels.example.com/v1/unsubscribe/abc'>unsubscribe</a></body>"
        )
        html, links = Tracker("https://channels.example.com", "secret").instrument("s", "m", source)
        assert links == ["https://real.example/?a=1&b=2"]
        start = html.index("HREF=") + len("HREF=")
        rewritten = html[start : html.index(">", start)]
        assert rewritten.startswith('"https://channels.example.com/v1/t/c/')
        untouched = source.replace("HREF=https://real.example/?a=1&amp;b=2", "HREF=" + rewritten)
        assert html.replace(html[html.index("<img") : html.index("</body>")], "") == untouched
        assert html.index("<img") < html.index("</body>")


def addressed(to: str) -> Callable[[ReceivedMail], bool]:
    return lambda mail: mail.sent_to(to)


class TestTrackingChosenByTheTemplate:
    """An email template says what of its emails is tracked (``tracking: {opens,
    clicks}``); a link whose tag has ``data-untracked`` is never rewritten."""

    async def test_opens_and_clicks_are_tracked_as_the_template_says(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        html = (
            "<html><body><a href='https://shop.example/a'>a</a> "
            "<a data-untracked href='https://shop.example/private'>p</a></body></html>"
        )
        cases = {
            "clicks-only": {"opens": False, "clicks": True},
            "opens-only": {"opens": True, "clicks": False},
            "none": {"opens": False, "clicks": False},
        }
        received = {}
        for name, tracking in cases.items():
            await content.publish(name, {"en": {"subject": name, "html": html}}, tracking=tracking)
            to = address()
            (message_id,) = await requests.send(requests.body(name, person(to)))
            mail = await delivery.mail.wait_for(addressed(to))
            await state(api, message_id, "sent")
            assert mail.html is not None
            received[name] = mail.html

        clicks_only = parsed(received["clicks-only"])
        assert clicks_only.images == []
        assert clicks_only.hrefs[0].startswith("https://channels.example.com/v1/t/c/")
        assert clicks_only.hrefs[1] == "https://shop.example/private"
        opens_only = parsed(received["opens-only"])
        assert opens_only.hrefs == ["https://shop.example/a", "https://shop.example/private"]
        (pixel,) = opens_only.images
        assert pixel.startswith("https://channels.example.com/v1/t/o/")
        assert "channels.example.com" not in received["none"]

    def test_the_tracker_does_what_it_is_asked_only(self) -> None:
        tracker = Tracker("https://channels.example.com", "secret")
        source = "<body><a href='https://x.example/'>x</a></body>"
        assert tracker.instrument("s", "m", source, opens=False, clicks=False) == (source, [])
        html, links = tracker.instrument("s", "m", source, opens=True, clicks=False)
        assert (links, html.count("<img"), "https://x.example/" in html) == ([], 1, True)


class TestOpens:
    async def test_the_pixel_is_a_gif_and_reports_the_first_open(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        pool: asyncpg.Pool,
        sandbox: str,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
    ) -> None:
        message_id, to, found = await sent_newsletter(api, content, requests, delivery)
        path = urlsplit(found.images[0]).path
        async with anonymous(api) as client, topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            for _ in range(3):
                answer = await client.get(path)
                assert answer.status_code == 200
                assert answer.headers["content-type"] == "image/gif"
                assert answer.headers["cache-control"].startswith("no-store")
                assert answer.content.startswith(b"GIF89a")
            records = await feedback.wait_for(lambda r: bool(feedback_of(r, message_id, "opened")))
        (opened,) = feedback_of(records, message_id, "opened")
        assert opened["address"] == to
        assert opened["channel"] == "email"
        assert opened["origin"]["kind"] == "journey"
        assert opened["url"] is None
        assert await counts(pool, sandbox, message_id) == (0, 3)


class TestClicks:
    async def test_a_link_redirects_to_the_original_url_and_reports_each_click(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        pool: asyncpg.Pool,
        sandbox: str,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
    ) -> None:
        message_id, to, found = await sent_newsletter(api, content, requests, delivery)
        offer, shop = (urlsplit(h).path for h in found.hrefs[:2])
        async with anonymous(api) as client, topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            for path, url in ((offer, "https://shop.example/offer?code=A&B&utm=mail"), (shop, None)):
                answer = await client.get(path)
                assert answer.status_code == 302
                assert answer.headers["location"] == (url or "https://shop.example/")
            again = await client.get(offer)
            assert again.status_code == 302
            records = await feedback.wait_for(lambda r: len(feedback_of(r, message_id, "clicked")) == 3)
        clicks = feedback_of(records, message_id, "clicked")
        assert [c["url"] for c in clicks] == [
            "https://shop.example/offer?code=A&B&utm=mail",
            "https://shop.example/",
            "https://shop.example/offer?code=A&B&utm=mail",
        ]
        assert {c["address"] for c in clicks} == {to}
        assert {c["origin"]["kind"] for c in clicks} == {"journey"}
        ids = {r.headers["ce_id"] for r in records if orjson.loads(r.value or b"{}") in clicks}
        assert len(ids) == 3  # each click is a fact of its own, not a duplicate
        assert await counts(pool, sandbox, message_id) == (3, 0)


class TestBadTokens:
    async def test_altered_foreign_and_unknown_tokens_are_404s_and_record_nothing(
        self,
        api: httpx.AsyncClient,
        pool: asyncpg.Pool,
        sandbox: str,
        channels_settings: ChannelsSettings,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
    ) -> None:
        message_id, to, found = await sent_newsletter(api, content, requests, delivery)
        secret = channels_settings.link_secret
        click = urlsplit(found.hrefs[0]).path
        pixel = urlsplit(found.images[0]).path
        payload, mac = click.removeprefix("/v1/t/c/").split(".")
        unsubscribe = sign(secret, sandbox, message_id, str(uuid.uuid4()), "email", to)
        beyond = seal(secret, CLICK, {"s": sandbox, "m": message_id, "i": 2})
        other_sandbox = seal(secret, CLICK, {"s": "elsewhere", "m": message_id, "i": 0})
        no_message = seal(secret, OPEN, {"s": sandbox, "m": str(uuid.uuid4())})
        bad = [
            click[:-2] + ("AA" if not click.endswith("AA") else "BB"),  # the MAC altered
            f"/v1/t/c/{payload[:-2]}xy.{mac}",  # the claims altered
            f"/v1/t/c/{payload}",  # no MAC
            f"/v1/t/c/{unsubscribe}",  # an unsubscribe token
            "/v1/t/c/" + pixel.removeprefix("/v1/t/o/").removesuffix(".gif"),  # an open token
            f"/v1/t/o/{click.removeprefix('/v1/t/c/')}.gif",  # a click token as the pixel
            f"/v1/t/c/{beyond}",  # an index beyond the message's two links
            f"/v1/t/c/{other_sandbox}",
            f"/v1/t/o/{no_message}.gif",
            "/v1/t/c/%C3%A9.%C3%A9",
        ]
        async with anonymous(api) as client:
            for path in bad:
                answer = await client.get(path)
                assert answer.status_code == 404, path
                assert answer.headers["content-type"].startswith("application/problem+json")
        assert await counts(pool, sandbox, message_id) == (0, 0)

    async def test_no_token_redirects_anywhere_the_message_did_not_link(
        self,
        api: httpx.AsyncClient,
        sandbox: str,
        channels_settings: ChannelsSettings,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
    ) -> None:
        # Even with the signing key, a token names a link of the message, not a URL.
        message_id, _, _ = await sent_newsletter(api, content, requests, delivery)
        secret = channels_settings.link_secret
        carrying = seal(secret, CLICK, {"s": sandbox, "m": message_id, "i": 1, "u": "https://evil.example/"})
        async with anonymous(api) as client:
            answer = await client.get(f"/v1/t/c/{carrying}")
        assert answer.status_code == 302
        assert answer.headers["location"] == "https://shop.example/"
