"""Which recipients the local sinks refuse, and how: :class:`FailureRules`.

Each rule is a prefix of the recipient (an email address, compared in lower case; a phone
number; a device token) that makes a sink answer as the real server or provider does when
it refuses, or later fails to deliver, a message. ``None`` switches a rule off.
"""

from __future__ import annotations

from dataclasses import dataclass


def matches(value: str, prefix: str | None) -> bool:
    return prefix is not None and value.startswith(prefix)


@dataclass(frozen=True, slots=True)
class FailureRules:
    """Recipient prefixes that make a sink refuse or fail a message."""

    mail_unknown_user: str | None = "bounce-"
    """SMTP ``550 5.1.1`` to ``RCPT TO``: no such mailbox (a hard bounce)."""
    mail_mailbox_full: str | None = "softbounce-"
    """SMTP ``452 4.2.2`` to ``RCPT TO``, every time: the mailbox is full (a soft bounce)."""
    mail_greylisted: str | None = "greylist-"
    """SMTP ``451 4.7.1`` to the first ``RCPT TO`` of a sender and recipient pair, accepted
    from the second on (greylisting: a soft bounce, then a delivery)."""
    mail_bounced_later: str | None = "latebounce-"
    """Accepted at ``RCPT TO``, then not delivered: a delivery status notification
    (RFC 3464, ``failed``, ``5.1.1``) goes back to the envelope sender, as a relay's does
    when the next hop refuses what it accepted (an asynchronous bounce)."""
    sms_invalid_number: str | None = "+1555000"
    """400, Twilio code 21211: the 'To' number is not a valid phone number."""
    sms_unsubscribed: str | None = "+1555001"
    """400, Twilio code 21610: the recipient replied STOP."""
    sms_rate_limited: str | None = "+1555002"
    """429, Twilio code 20429: too many requests (transient)."""
    sms_unreachable: str | None = "+1555003"
    """Accepted (201), then reported ``undelivered``, error 30003: the handset is switched
    off or out of coverage (transient)."""
    sms_unknown_handset: str | None = "+1555004"
    """Accepted (201), then reported ``undelivered``, error 30005: the number is not in
    service (permanent)."""
    sms_carrier_failure: str | None = "+1555005"
    """Accepted (201), then reported ``failed``, error 30008: unknown error."""
    push_unregistered: str | None = "fail-"
    """404 NOT_FOUND, FCM error code UNREGISTERED: the token is no longer valid."""
    push_unavailable: str | None = "unavailable-"
    """503 UNAVAILABLE, FCM error code UNAVAILABLE: transient."""

    def mail_refusal(self, recipient: str, first_from_sender: bool) -> str | None:
        """The SMTP reply refusing ``recipient`` at ``RCPT TO``, or None to accept it;
        ``first_from_sender``: the sender has not tried this recipient before."""
        address = recipient.strip().lower()
        if matches(address, self.mail_unknown_user):
            return f"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown"
        if matches(address, self.mail_mailbox_full):
            return f"452 4.2.2 <{recipient}>: Mailbox full"
        if first_from_sender and matches(address, self.mail_greylisted):
            return f"451 4.7.1 <{recipient}>: Greylisted, try again later"
        return None

    def mail_bounces_later(self, recipient: str) -> bool:
        return matches(recipient.strip().lower(), self.mail_bounced_later)

    def sms_report(self, to: str) -> tuple[str, int | None]:
        """The final status an accepted SMS to ``to`` is reported with, and its error code."""
        if matches(to, self.sms_unreachable):
            return "undelivered", 30003
        if matches(to, self.sms_unknown_handset):
            return "undelivered", 30005
        if matches(to, self.sms_carrier_failure):
            return "failed", 30008
        return "delivered", None

    def as_json(self) -> dict[str, str | None]:
        return {
            "mailUnknownUser": self.mail_unknown_user,
            "mailMailboxFull": self.mail_mailbox_full,
            "mailGreylisted": self.mail_greylisted,
            "mailBouncedLater": self.mail_bounced_later,
            "smsInvalidNumber": self.sms_invalid_number,
            "smsUnsubscribed": self.sms_unsubscribed,
            "smsRateLimited": self.sms_rate_limited,
            "smsUnreachable": self.sms_unreachable,
            "smsUnknownHandset": self.sms_unknown_handset,
            "smsCarrierFailure": self.sms_carrier_failure,
            "pushUnregistered": self.push_unregistered,
            "pushUnavailable": self.push_unavailable,
        }
