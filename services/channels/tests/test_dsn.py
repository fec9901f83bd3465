"""Delivery status notifications (RFC 3464) as relays write them, and the envelope
senders (VERP) that make each one name its message (``itinera.channels.reports.dsn``)."""

from __future__ import annotations

import uuid

import pytest

from itinera.channels.reports.dsn import message_of, parse, return_path

KEY = b"a key for the tests"
BOUNCES = "bounces@mail.itinera.test"
MESSAGE = uuid.UUID("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab")


def report(blocks: str, original: str = "", *, report_type: str = "delivery-status") -> bytes:
    """A ``multipart/report`` as an MTA writes one: a human part, the status, the original's headers."""
    text = (
        "From: MAILER-DAEMON@relay.example.net\r\n"
        "To: <bounces+token@mail.itinera.test>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="B"\r\n'
        "\r\n"
        "--B\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--B\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; relay.example.net\r\n"
        "Arrival-Date: Sun, 29 Nov 2026 06:00:00 +0000\r\n"
        "\r\n"
        f"{blocks}"
        "--B\r\n"
    )
    if original:
        text += f"Content-Type: text/rfc822-headers\r\n\r\n{original}--B\r\n"
    return (text.rstrip("\r\n") + "--\r\n").encode()


HARD = (
    "Final-Recipient: rfc822; jane@example.com\r\n"
    "Original-Recipient: rfc822;jane@example.com\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Remote-MTA: dns; mx.example.com\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <jane@example.com>: Recipient address\r\n"
    "    rejected: User unknown\r\n"
    "\r\n"
)
ORIGINAL = (
    f"From: Shop <news@shop.test>\r\nTo: jane@example.com\r\nMessage-ID: <{MESSAGE}@itinera.local>\r\n\r\n"
)


class TestParsing:
    def test_a_permanent_failure_is_a_hard_bounce_with_the_relays_words(self) -> None:
        notification = parse(report(HARD, ORIGINAL))

        assert notification is not None
        (status,) = notification.recipients
        assert (status.recipient, status.action, status.status) == ("jane@example.com", "failed", "5.1.1")
        assert (status.outcome, status.bounce) == ("bounced", "hard")
        assert status.reason == "5.1.1 550 5.1.1 <jane@example.com>: Recipient address rejected: User unknown"
        assert notification.message_ids == (MESSAGE,)

    def test_a_temporary_failure_is_a_soft_bounce(self) -> None:
        blocks = "Final-Recipient: rfc822; jo@example.com\r\nAction: failed\r\nStatus: 4.2.2\r\n\r\n"

        (status,) = parse(report(blocks)).recipients  # type: ignore[union-attr]

        assert (status.outcome, status.bounce) == ("bounced", "soft")
        assert status.reason == "4.2.2"

    def test_a_delay_is_not_final(self) -> None:
        blocks = "Final-Recipient: rfc822; jo@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n"

        (status,) = parse(report(blocks)).recipients  # type: ignore[union-attr]

        assert (status.outcome, status.bounce) == (None, None)

    @pytest.mark.parametrize("action", ["delivered", "relayed", "expanded"])
    def test_a_success_notice_is_a_delivery(self, action: str) -> None:
        blocks = f"Final-Recipient: rfc822; jo@example.com\r\nAction: {action}\r\nStatus: 2.0.0\r\n\r\n"

        (status,) = parse(report(blocks)).recipients  # type: ignore[union-attr]

        assert (status.outcome, status.bounce) == ("delivered", None)

    def test_every_recipient_block_is_read(self) -> None:
        blocks = (
            HARD + "Final-Recipient: rfc822; jo@example.com\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n"
        )

        notification = parse(report(blocks))

        assert notification is not None
        assert [(s.recipient, s.outcome) for s in notification.recipients] == [
            ("jane@example.com", "bounced"),
            ("jo@example.com", "delivered"),
        ]

    def test_a_failure_without_a_status_is_permanent(self) -> None:
        blocks = "Final-Recipient: rfc822; jo@example.com\r\nAction: failed\r\n\r\n"

        (status,) = parse(report(blocks)).recipients  # type: ignore[union-attr]

        assert (status.status, status.bounce) == ("5.0.0", "hard")

    @pytest.mark.parametrize(
        "raw",
        [
            b"From: someone@example.com\r\nSubject: Out of office\r\n\r\nI am away.\r\n",
            report(HARD, report_type="disposition-notification"),
            report("Reporting-UA: x\r\n\r\n"),  # a status part with no recipient
            b"",
        ],
    )
    def test_what_is_not_a_delivery_status_notification_is_none(self, raw: bytes) -> None:
        assert parse(raw) is None


class TestReturnPaths:
    def test_the_envelope_sender_names_its_message(self) -> None:
        address = return_path(BOUNCES, KEY, MESSAGE)

        assert address.startswith("bounces+")
        assert address.endswith("@mail.itinera.test")
        assert message_of(address, BOUNCES, KEY) == MESSAGE
        assert message_of(f"<{address.upper()}>", BOUNCES, KEY) == MESSAGE  # as a relay may write it

    @pytest.mark.parametrize(
        "address",
        [
            "bounces@mail.itinera.test",  # no token
            "bounces+zzz@mail.itinera.test",  # not a token
            "other+{token}@mail.itinera.test",  # another local part
            "bounces+{token}@elsewhere.test",  # another domain
        ],
    )
    def test_another_address_names_no_message(self, address: str) -> None:
        token = return_path(BOUNCES, KEY, MESSAGE).split("+")[1].split("@")[0]

        assert message_of(address.format(token=token), BOUNCES, KEY) is None

    def test_a_token_made_without_the_key_names_no_message(self) -> None:
        forged = return_path(BOUNCES, b"another key", MESSAGE)

        assert message_of(forged, BOUNCES, KEY) is None
