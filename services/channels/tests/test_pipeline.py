"""The message pipeline on the real broker, database and SMTP server: requests (as
journeys publish them) for templates (as the content service publishes them) are
checked, rendered, sent once, and reported on ``itinera.feedback.v1``. Each test has a
sandbox of its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from itinera.common.kafka import topics
from itinera.common.kafka.consumer import Record
from itinera.common.sinks import LocalDelivery
from itinera.common.testing import StackInfo, topic_reader

from .conftest import Content, Requests, feedback_of, state

WELCOME = {
    "en": {
        "subject": "Welcome, {{profile.person.name.firstName}}",
        "html": "<p>Hi {{profile.person.name.firstName}}, {{context.offer}}</p>",
        "text": "Hi {{profile.person.name.firstName}}, {{context.offer}}",
        "sender": {"name": "Shop", "address": "hello@shop.example"},
    },
    "fr": {
        "subject": "Bienvenue, {{profile.person.name.firstName}}",
        "html": "<p>Bonjour {{profile.person.name.firstName}}</p>",
        "text": "Bonjour {{profile.person.name.firstName}}",
    },
}


def person(email: str, first: str = "Jane", **more: Any) -> dict[str, Any]:
    return {"person": {"name": {"firstName": first}}, "personalEmail": {"address": email}, **more}


def address() -> str:
    return f"p{uuid.uuid4().hex[:12]}@example.com"


class TestEmail:
    async def test_a_request_arrives_personalised_with_its_headers_and_is_reported_sent(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
    ) -> None:
        await content.publish("welcome", WELCOME)
        to = address()
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            (message_id,) = await requests.send(
                requests.body("welcome", person(to, "Ada <&>"), context={"offer": "10% off"})
            )
            mail = await delivery.mail.wait_for(lambda m: m.sent_to(to))
            found = await feedback.wait_for(lambda r: bool(feedback_of(r, message_id)))
        assert mail.subject == "Welcome, Ada <&>"
        assert mail.html is not None
        assert "Hi Ada &lt;&amp;&gt;, 10% off" in mail.html
        assert mail.text is not None
        assert "Hi Ada <&>, 10% off" in mail.text
        assert mail.message_id == f"<{message_id}@mail.example.com>"
        assert mail.list_unsubscribe is not None
        assert (
            f"mailto:unsubscribe@mail.example.com?subject=unsubscribe%20{message_id}" in mail.list_unsubscribe
        )
        assert "<https://channels.example.com/v1/unsubscribe/" in mail.list_unsubscribe
        assert mail.list_unsubscribe_post == "List-Unsubscribe=One-Click"
        assert mail.from_ is not None
        assert "hello@shop.example" in mail.from_
        (sent,) = feedback_of(found, message_id)
        assert sent["status"] == "sent"
        assert sent["address"] == to
        assert sent["channel"] == "email"
        assert sent["origin"]["kind"] == "journey"
        record = next(r for r in found if orjson.loads(r.value or b"{}").get("messageId") == message_id)
        assert record.headers["ce_type"] == "com.itinera.message.feedback.v1"
        assert record.headers["ce_source"] == "/itinera/channels"
        assert (await state(api, message_id, "sent"))["attempts"] == 1

    async def test_the_profile_language_chooses_the_variant_and_transactional_mail_has_no_unsubscribe(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        await content.publish("welcome", WELCOME)
        to = address()
        (message_id,) = await requests.send(
            requests.body("welcome", person(to, "Zoé", preferredLanguage="fr-CA"), category="transactional")
        )
        mail = await delivery.mail.wait_for(lambda m: m.sent_to(to))
        assert mail.subject == "Bienvenue, Zoé"
        assert mail.list_unsubscribe is None
        assert (await state(api, message_id, "sent"))["locale"] == "fr"

    async def test_a_message_delivered_again_is_sent_once(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        await content.publish("welcome", WELCOME)
        to = address()
        body = requests.body("welcome", person(to))
        await requests.send(body)
        await state(api, body["messageId"], "sent")
        await requests.send(body, body)
        # A later message of the same profile (same partition) shows the copies were handled.
        later = requests.body("welcome", person(to), profile_id=body["profileId"], category="transactional")
        await requests.send(later)
        await state(api, later["messageId"], "sent")
        copies = delivery.mail.find(lambda m: m.message_id == f"<{body['messageId']}@mail.example.com>")
        assert len(copies) == 1


class TestExclusions:
    async def test_each_reason_excludes_with_feedback_and_sends_nothing(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
    ) -> None:
        await content.publish("welcome", WELCOME)
        await content.publish("broken", {"en": {"subject": "x", "html": "{{#if}}"}})
        await content.publish("sms-only", {"en": {"text": "hi"}}, channel="sms")
        suppressed, domain_suppressed = address(), f"x@{uuid.uuid4().hex[:8]}.example.org"
        added = await api.post(
            "/ajo/config/suppression/addresses", json=[{"entity": {"entityValue": suppressed}}]
        )
        assert added.status_code == 201, added.text
        added = await api.post(
            "/ajo/config/suppression/domains",
            json=[{"entity": {"type": "domain", "entityValue": domain_suppressed.split("@")[1]}}],
        )
        assert added.status_code == 201, added.text
        opted_out = person(address(), consents={"marketing": {"email": {"val": "n"}}})
        all_out = person(address(), consents={"marketing": {"any": {"val": "dn"}}})
        cases = {
            "consent": requests.body("welcome", opted_out),
            "consent-any": requests.body("welcome", all_out),
            "suppressed": requests.body("welcome", person(suppressed.upper())),
            "suppressed-domain": requests.body("welcome", person(domain_suppressed)),
            "no-template": requests.body("nothing-here", person(address())),
            "no-template-channel": requests.body("sms-only", person(address())),
            "no-address": requests.body("welcome", {"person": {"name": {"firstName": "Nobody"}}}),
            "render": requests.body("broken", person(address())),
        }
        allowed = requests.body(
            "welcome",
            person(address(), consents={"marketing": {"email": {"val": "n"}}}),
            category="transactional",
        )
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            await requests.send(*cases.values(), allowed)
            ids = [b["messageId"] for b in cases.values()]
            found = await feedback.wait_for(lambda r: all(feedback_of(r, i) for i in ids))
        reasons = {name: feedback_of(found, body["messageId"])[0] for name, body in cases.items()}
        assert {name: f["reason"] for name, f in reasons.items()} == {
            "consent": "consent",
            "consent-any": "consent",
            "suppressed": "suppressed",
            "suppressed-domain": "suppressed",
            "no-template": "no-template",
            "no-template-channel": "no-template",
            "no-address": "no-address",
            "render": "render",
        }
        assert {f["status"] for f in reasons.values()} == {"excluded"}
        await state(api, allowed["messageId"], "sent")  # consent does not hold back transactional mail
        excluded_addresses = {
            b["profile"]["personalEmail"]["address"]
            for b in cases.values()
            if "personalEmail" in b["profile"]
        }
        assert not delivery.mail.find(lambda m: any(m.sent_to(a) for a in excluded_addresses))
        assert (await state(api, cases["render"]["messageId"], "excluded"))["detail"]

    async def test_an_allowed_list_in_force_lets_only_its_addresses_and_domains_receive_email(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        """AJO's allowed list: off until put in force; then only the addresses on it and
        those of its domains (or domains below them) get email, the suppression list
        still wins, and SMS is not concerned. In force and empty, no email goes out."""
        await content.publish("welcome", WELCOME)
        await content.publish("sms", {"en": {"text": "hi"}}, channel="sms")
        assert (await api.get("/v1/allowed-list")).json() == {
            "active": False,
            "updatedBy": None,
            "updatedAt": None,
        }
        domain = f"{uuid.uuid4().hex[:8]}.example.org"
        listed, suppressed_listed, outside = address(), address(), address()
        in_domain, below_domain = f"x@{domain}", f"y@mail.{domain}"
        added = await api.post(
            "/ajo/config/suppression/addresses?type=allowed",
            json=[{"entity": {"entityValue": a}} for a in (listed, suppressed_listed)],
        )
        assert added.status_code == 201, added.text
        added = await api.post(
            "/ajo/config/suppression/domains?type=allowed",
            json=[{"entity": {"type": "domain", "entityValue": domain}}],
        )
        assert added.status_code == 201, added.text
        added = await api.post(
            "/ajo/config/suppression/addresses", json=[{"entity": {"entityValue": suppressed_listed}}]
        )
        assert added.status_code == 201, added.text

        off = requests.body("welcome", person(outside))  # the list is not in force yet
        await requests.send(off)
        await state(api, off["messageId"], "sent")

        put = await api.put("/v1/allowed-list", json={"active": True})
        assert put.status_code == 200, put.text
        assert put.json()["active"] is True
        assert put.json()["updatedBy"]
        assert (await api.get("/v1/allowed-list")).json()["active"] is True
        cases = {
            "listed": requests.body("welcome", person(listed.upper())),
            "in-domain": requests.body("welcome", person(in_domain)),
            "below-domain": requests.body("welcome", person(below_domain)),
            "outside": requests.body("welcome", person(outside), category="transactional"),
            "suppressed-and-listed": requests.body("welcome", person(suppressed_listed)),
            "sms": requests.body(
                "sms", {"mobilePhone": {"number": f"+4420{uuid.uuid4().int % 10**8:08d}"}}, channel="sms"
            ),
        }
        await requests.send(*cases.values())
        outcome = {
            name: (await state(api, body["messageId"], "sent", "excluded")).get("reason")
            for name, body in cases.items()
        }
        assert outcome == {
            "listed": None,
            "in-domain": None,
            "below-domain": None,
            "outside": "not-allowed",
            "suppressed-and-listed": "suppressed",
            "sms": None,
        }
        # Excluded when the request was decided, not later when it would have been sent.
        decided = await state(api, cases["outside"]["messageId"], "excluded")
        assert decided["attempts"] == 0

        for kind, value in (("addresses", listed), ("addresses", suppressed_listed), ("domains", domain)):
            removed = await api.delete(f"/ajo/config/suppression/{kind}/{value}?type=allowed")
            assert removed.status_code == 204, removed.text
        emptied = requests.body("welcome", person(listed))
        await requests.send(emptied)
        assert (await state(api, emptied["messageId"], "excluded"))["reason"] == "not-allowed"

        assert (await api.put("/v1/allowed-list", json={"active": False})).status_code == 200
        again = requests.body("welcome", person(outside))
        await requests.send(again)
        await state(api, again["messageId"], "sent")
        assert sum(m.sent_to(outside) for m in delivery.mail.find()) == 2  # before and after
        assert sum(m.sent_to(listed) for m in delivery.mail.find()) == 1

    async def test_the_allowed_list_setting_is_refused_unless_a_boolean(self, api: httpx.AsyncClient) -> None:
        for body, path in (
            ({"active": "yes"}, "/body/active"),
            ({}, "/body/active"),
            ({"active": True, "other": 1}, "/body/other"),
        ):
            refused = await api.put("/v1/allowed-list", json=body)
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert path in {e["path"] for e in refused.json()["errors"]}
        assert (await api.get("/v1/allowed-list")).json()["active"] is False

    async def test_frequency_caps_count_a_profile_s_messages(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        await content.publish("welcome", WELCOME)
        rule = await api.post(
            "/v1/capping/rules", json={"name": "two a day", "channel": "email", "max": 2, "period": "day"}
        )
        assert rule.status_code == 201, rule.text
        assert rule.json()["category"] == "marketing"
        to = address()
        first = requests.body("welcome", person(to))
        more = [requests.body("welcome", person(to), profile_id=first["profileId"]) for _ in range(2)]
        receipt = requests.body(
            "welcome", person(to), profile_id=first["profileId"], category="transactional"
        )
        await requests.send(first, *more, receipt)
        outcomes = [(await state(api, b["messageId"], "sent", "excluded")) for b in (first, *more, receipt)]
        assert [o["state"] for o in outcomes] == ["sent", "sent", "excluded", "sent"]
        assert outcomes[2]["reason"] == "capped"
        listed = (await api.get("/v1/capping/rules")).json()["items"]
        assert [r["name"] for r in listed] == ["two a day"]
        rule_id = rule.json()["id"]
        assert (
            await api.put(f"/v1/capping/rules/{rule_id}", json={**rule.json() | {"max": 5}} | {})
        ).status_code == 422
        replaced = await api.put(
            f"/v1/capping/rules/{rule_id}",
            json={"name": "five", "channel": "all", "max": 5, "period": "week"},
        )
        assert replaced.status_code == 200
        assert replaced.json()["max"] == 5
        assert (await api.delete(f"/v1/capping/rules/{rule_id}")).status_code == 204
        assert (await api.get(f"/v1/capping/rules/{rule_id}")).status_code == 404


class TestQuietHours:
    async def test_queued_messages_wait_for_the_end_of_quiet_hours_in_the_profile_s_time_zone(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        await content.publish("welcome", WELCOME)
        zone = "Pacific/Auckland"
        now = datetime.now(ZoneInfo(zone))
        start, end = (now - timedelta(minutes=1)).time(), (now + timedelta(seconds=4)).time()
        window = {
            "name": "night",
            "channel": "email",
            "start": start.isoformat("seconds"),
            "end": end.isoformat("seconds"),
            "action": "queue",
        }
        created = await api.post("/v1/quiet-hours", json=window)
        assert created.status_code == 201, created.text
        to = address()
        (message_id,) = await requests.send(requests.body("welcome", person(to, timeZone=zone)))
        held = await state(api, message_id, "rendered", "sent")
        assert held["state"] == "rendered"
        assert held["queuedUntil"] is not None
        assert datetime.fromisoformat(held["queuedUntil"]) > datetime.now(UTC)
        await delivery.mail.wait_for(lambda m: m.sent_to(to), timeout_s=20)
        sent = await state(api, message_id, "sent")
        assert datetime.fromisoformat(sent["sentAt"]) >= datetime.fromisoformat(held["queuedUntil"])

    async def test_discarding_quiet_hours_exclude_the_message(
        self, api: httpx.AsyncClient, content: Content, requests: Requests
    ) -> None:
        await content.publish("welcome", WELCOME)
        created = await api.post(
            "/v1/quiet-hours", json={"name": "always", "start": "00:00", "end": "00:00", "action": "discard"}
        )
        assert created.status_code == 201, created.text
        (message_id,) = await requests.send(requests.body("welcome", person(address())))
        excluded = await state(api, message_id, "excluded")
        assert excluded["reason"] == "quiet-hours"
        rule_id = created.json()["id"]
        assert (await api.get(f"/v1/quiet-hours/{rule_id}")).json()["days"] == [1, 2, 3, 4, 5, 6, 7]
        assert (await api.delete(f"/v1/quiet-hours/{rule_id}")).status_code == 204
        assert (await api.get("/v1/quiet-hours")).json()["items"] == []


class TestUnsubscribe:
    async def test_one_click_suppresses_the_address_and_reports_it(
        self,
        topics_created: StackInfo,
        api: httpx.AsyncClient,
        content: Content,
        requests: Requests,
        delivery: LocalDelivery,
    ) -> None:
        await content.publish("welcome", WELCOME)
        to = address()
        (message_id,) = await requests.send(requests.body("welcome", person(to)))
        mail = await delivery.mail.wait_for(lambda m: m.sent_to(to))
        assert mail.list_unsubscribe is not None
        link = next(p.strip("<> ") for p in mail.list_unsubscribe.split(",") if "https://" in p)
        path = urlsplit(link).path
        anonymous = httpx.AsyncClient(transport=api._transport, base_url="http://testserver")
        async with anonymous, topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            page = await anonymous.get(path)
            assert page.status_code == 200
            assert to in page.text
            done = await anonymous.post(
                path,
                content=b"List-Unsubscribe=One-Click",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 200
            again = await anonymous.post(path)
            assert again.status_code == 200

            def unsubscribed(records: list[Record]) -> list[dict[str, Any]]:
                return [f for f in feedback_of(records, message_id) if f["status"] == "unsubscribed"]

            found = await feedback.wait_for(lambda r: bool(unsubscribed(r)))
            (reported,) = unsubscribed(found)  # once, though asked twice
            assert reported["address"] == to
            forged = await anonymous.post(path[:-3] + "abc")
            assert forged.status_code == 404
        entry = (await api.get(f"/ajo/config/suppression/addresses/{to}")).json()
        assert entry["suppressed"]["reason"] == "unsubscribe"
        assert entry["suppressed"]["type"] == "MANUAL"
        (later,) = await requests.send(requests.body("welcome", person(to)))
        assert (await state(api, later, "excluded"))["reason"] == "suppressed"


class TestSmsAndPush:
    async def test_sms_and_push_go_through_the_providers(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        await content.publish(
            "code", {"en": {"text": "Hi {{profile.person.name.firstName}} & co"}}, channel="sms"
        )
        await content.publish(
            "ping",
            {
                "en": {
                    "title": "Hey {{profile.person.name.firstName}}",
                    "body": "<b>{{context.what}}</b>",
                    "data": {"deep": "app://{{context.what}}"},
                }
            },
            channel="push",
        )
        phone, token = f"+4420{uuid.uuid4().int % 10**8:08d}", f"tok-{uuid.uuid4().hex}"
        profile = {
            "person": {"name": {"firstName": "Ada"}},
            "mobilePhone": {"number": phone},
            "pushNotificationDetails": [
                {"token": "old", "denylisted": True},
                {"appID": "app", "token": token},
            ],
        }
        sms_id, push_id = await requests.send(
            requests.body("code", profile, channel="sms"),
            requests.body("ping", profile, channel="push", context={"what": "news"}),
        )
        sms = await delivery.sms.wait_for(lambda m: m.to == phone)
        assert sms.body == "Hi Ada & co"
        push = await delivery.push.wait_for(lambda m: m.token == token)
        assert (push.title, push.body, push.data) == ("Hey Ada", "<b>news</b>", {"deep": "app://news"})
        assert (await state(api, sms_id, "sent"))["providerId"] == sms.id
        assert (await state(api, push_id, "sent"))["providerId"] == push.name

    async def test_a_permanent_failure_suppresses_the_address(
        self, topics_created: StackInfo, api: httpx.AsyncClient, content: Content, requests: Requests
    ) -> None:
        await content.publish("ping", {"en": {"title": "t", "body": "b"}}, channel="push")
        await content.publish("code", {"en": {"text": "t"}}, channel="sms")
        token, phone = f"fail-{uuid.uuid4().hex}", f"+1555000{uuid.uuid4().int % 10**4:04d}"
        async with topic_reader(topics_created, topics.FEEDBACK.name) as feedback:
            push_id, sms_id = await requests.send(
                requests.body("ping", {"pushNotificationDetails": [{"token": token}]}, channel="push"),
                requests.body("code", {"mobilePhone": {"number": phone}}, channel="sms"),
            )
            found = await feedback.wait_for(
                lambda r: bool(feedback_of(r, push_id) and feedback_of(r, sms_id))
            )
        for message_id in (push_id, sms_id):
            (failed,) = feedback_of(found, message_id)
            assert failed["status"] == "failed"
            assert failed["reason"]
        push_entry = (await api.get(f"/ajo/config/suppression/addresses/{token}")).json()
        assert push_entry["entity"]["type"] == "pushToken"
        assert push_entry["suppressed"]["type"] == "HARD"
        assert push_entry["bounceState"]["bounceEvents"][0]["messageId"] == push_id
        assert (await api.get(f"/ajo/config/suppression/addresses/{phone}")).status_code == 200
        (again,) = await requests.send(
            requests.body("ping", {"pushNotificationDetails": [{"token": token}]}, channel="push")
        )
        assert (await state(api, again, "excluded"))["reason"] == "suppressed"

    async def test_a_soft_failure_is_tried_again_then_fails(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery
    ) -> None:
        await content.publish("ping", {"en": {"title": "t", "body": "b"}}, channel="push")
        token = f"unavailable-{uuid.uuid4().hex}"
        (message_id,) = await requests.send(
            requests.body("ping", {"pushNotificationDetails": [{"token": token}]}, channel="push")
        )
        failed = await state(api, message_id, "failed")
        assert failed["attempts"] == 3
        assert failed["reason"] == "failed"
        assert len(delivery.push.find(lambda m: m.token == token)) == 3
        assert (await api.get(f"/ajo/config/suppression/addresses/{token}")).status_code == 404


class TestTemplateStore:
    async def test_the_latest_version_wins_and_a_deletion_removes_the_template(
        self, api: httpx.AsyncClient, content: Content, requests: Requests, delivery: LocalDelivery, pool: Any
    ) -> None:
        await content.publish("news", {"en": {"subject": "v2", "text": "two"}}, version=2)
        await content.publish("news", {"en": {"subject": "v1", "text": "one"}}, version=1, wait=False)
        await content.publish(
            "frag",
            {"en": {"content": "<i>{{profile.person.name.firstName}}</i>"}},
            kind="fragment",
            channel=None,
        )
        await content.publish(
            "news",
            {"en": {"subject": "v3", "html": 'A {{fragment id="frag"}}'}},
            version=3,
            fragments=["frag"],
        )
        to = address()
        (message_id,) = await requests.send(requests.body("news", person(to, "Bo")))
        mail = await delivery.mail.wait_for(lambda m: m.sent_to(to))
        assert mail.subject == "v3"
        assert mail.html is not None
        assert "A <i>Bo</i>" in mail.html
        assert (await state(api, message_id, "sent"))["templateVersion"] == 3
        await content.publish("news", None, version=4, deleted=True)
        await content.publish("news", {"en": {"subject": "v2", "text": "two"}}, version=2, wait=False)
        (gone,) = await requests.send(requests.body("news", person(address())))
        assert (await state(api, gone, "excluded"))["reason"] == "no-template"


@pytest.mark.parametrize("kind", ["addresses", "domains"])
class TestSuppressionApi:
    async def test_entries_are_added_read_paged_and_removed(self, api: httpx.AsyncClient, kind: str) -> None:
        values = [f"a{i}.example.net" if kind == "domains" else f"a{i}@example.net" for i in range(5)]
        body = [{"entity": {"entityValue": v}, "comment": "bad", "user": "ops@example.com"} for v in values]
        added = await api.post(f"/ajo/config/suppression/{kind}", json=body)
        assert added.status_code == 201, added.text
        assert [e["entity"]["entityValue"] for e in added.json()] == values
        first = added.json()[0]
        assert first["suppressed"] | {"date": 0} == {
            "type": "MANUAL",
            "reason": "manual",
            "user": "ops@example.com",
            "comment": "bad",
            "date": 0,
        }
        assert first["listType"] == "client"
        assert first["status"] == "active"
        seen: list[str] = []
        url = f"/ajo/config/suppression/{kind}?limit=2&orderby=entityvalue"
        while url:
            page = (await api.get(url)).json()
            seen += [e["entity"]["entityValue"] for e in page["items"]]
            url = (page["_links"].get("next") or {}).get("href", "")
        assert seen == values
        newest = (await api.get(f"/ajo/config/suppression/{kind}", params={"limit": 3})).json()
        assert newest["_page"]["count"] == 3
        assert newest["_page"]["orderby"] == "-creationdate"
        rest = (
            await api.get(
                f"/ajo/config/suppression/{kind}", params={"limit": 3, "start": newest["_page"]["next"]}
            )
        ).json()
        assert sorted(e["entity"]["entityValue"] for e in newest["items"] + rest["items"]) == values
        one = await api.get(f"/ajo/config/suppression/{kind}/{values[0].upper()}")
        assert one.status_code == 200
        assert one.json()["id"] == first["id"]
        assert (await api.delete(f"/ajo/config/suppression/{kind}/{values[0]}")).status_code == 204
        assert (await api.get(f"/ajo/config/suppression/{kind}/{values[0]}")).status_code == 404
        assert (await api.delete(f"/ajo/config/suppression/{kind}/{values[0]}")).status_code == 404
        allowed = await api.post(f"/ajo/config/suppression/{kind}?type=allowed", json=body[:1])
        assert allowed.status_code == 201
        assert allowed.json()[0]["listType"] == "allowed"

    async def test_bad_entries_are_refused_with_their_paths(self, api: httpx.AsyncClient, kind: str) -> None:
        refused = await api.post(
            f"/ajo/config/suppression/{kind}", json=[{"entity": {"entityValue": "not valid"}}]
        )
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["path"] == "/body/0/entity/entityValue"
        bad_order = await api.get(f"/ajo/config/suppression/{kind}", params={"orderby": "nope"})
        assert bad_order.status_code == 400

    async def test_the_scopes_are_required(
        self, channels_app: Any, channels_settings: Any, kind: str
    ) -> None:
        from itinera.common.auth import mint_token
        from itinera.common.testing import client_for

        token = mint_token(channels_settings, scopes=["channels:read"])
        async with client_for(channels_app, token) as reader:
            assert (await reader.get(f"/ajo/config/suppression/{kind}")).status_code == 200
            assert (await reader.post(f"/ajo/config/suppression/{kind}", json=[])).status_code == 403
