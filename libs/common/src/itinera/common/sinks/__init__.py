"""Local delivery: where the channels send when nothing may leave the machine.

``itinera run`` (``make run``) starts a :class:`LocalDelivery` and points the channels
service at it; tests start their own in-process:

- :mod:`~itinera.common.sinks.smtp`: an SMTP sink (aiosmtpd, port 1025) that accepts
  every message and keeps it parsed, and refuses recipients as the rules say;
- :mod:`~itinera.common.sinks.simulators`: Twilio-style SMS and FCM HTTP v1-style push
  APIs that answer like the providers (failures included) and record each request;
  the SMS one reports each message's fate to its ``StatusCallback``, as Twilio does;
- :mod:`~itinera.common.sinks.rules`: the recipient prefixes that make them refuse or
  fail a message (``bounce-...@``, ``+1555000...``, ``fail-...``);
- :mod:`~itinera.common.sinks.inbox`: a web inbox with a JSON API over both (port 8025),
  which also serves the simulators;
- :mod:`~itinera.common.sinks.store`: the bounded, newest-first stores they share.

In a test::

    async with LocalDelivery(smtp_port=0, web_port=0) as delivery:  # free ports
        # point the sender at delivery.smtp_host / smtp_port, sms_base_url and
        # push_base_url (delivery.environment() holds them as ITINERA_CHANNELS_*)
        ...
        mail = await delivery.mail.wait_for(lambda m: m.sent_to("ada@example.com"))
        assert mail.list_unsubscribe is not None
        sms = await delivery.sms.wait_for(lambda s: s.to == "+15551234567")
        report = await delivery.sms_reports.wait_for(lambda r: r.status == "delivered")

Needs the ``local`` extra of ``itinera-common`` (aiosmtpd); production images do not
install it and never import this package.
"""

from itinera.common.sinks.local import DEFAULT_WEB_PORT, LocalDelivery
from itinera.common.sinks.rules import FailureRules
from itinera.common.sinks.simulators import (
    PushMessage,
    SmsMessage,
    SmsReport,
    StatusReporter,
    twilio_signature,
)
from itinera.common.sinks.smtp import DEFAULT_SMTP_PORT, Attachment, ReceivedMail, SmtpSink, parse_mail
from itinera.common.sinks.store import DEFAULT_CAP, Store

__all__ = [
    "DEFAULT_CAP",
    "DEFAULT_SMTP_PORT",
    "DEFAULT_WEB_PORT",
    "Attachment",
    "FailureRules",
    "LocalDelivery",
    "PushMessage",
    "ReceivedMail",
    "SmsMessage",
    "SmsReport",
    "SmtpSink",
    "StatusReporter",
    "Store",
    "parse_mail",
    "twilio_signature",
]
