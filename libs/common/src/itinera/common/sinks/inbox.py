"""The local inbox: a web page and a JSON API over what the sinks received, and the
SMS and push provider simulators, in one FastAPI app (port 8025 under ``make run``).

Pages (HTML, every received value escaped):

- ``GET /``: the latest email (time, from, to, subject), SMS and push requests;
- ``GET /messages/{id}``: one email: envelope, headers, text body, and the HTML body
  in a sandboxed ``iframe`` (``srcdoc``; no scripts, no forms, no same-origin access;
  links open in a new tab).

JSON API:

- ``GET /api/messages?to=&limit=``: ``{"messages": [...], "count", "stored"}``, newest
  first; ``to`` keeps messages with that address (any case) as an envelope recipient
  or in To or Cc; ``limit`` 1 to 10,000, default 50. Each message is
  :meth:`ReceivedMail.as_json <itinera.common.sinks.smtp.ReceivedMail.as_json>`.
- ``GET /api/messages/{id}``: one message, or a 404 problem.
- ``DELETE /api/messages``: forget every email (``204``).
- ``GET /api/sms?to=&limit=``, ``GET /api/sms/{id}``, ``DELETE /api/sms``: the SMS
  simulator's records, same shapes.
- ``GET /api/sms-reports?sid=&limit=``: the status callbacks the SMS simulator made
  (:class:`~itinera.common.sinks.simulators.SmsReport`), with the answers they got.
- ``GET /api/push?token=&limit=``, ``GET /api/push/{id}``, ``DELETE /api/push``: the push
  simulator's records.
- ``GET /healthz``.

The provider simulators (:mod:`itinera.common.sinks.simulators`) are served from the
same origin, so one base URL serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import FastAPI, Query
from starlette.responses import HTMLResponse, Response

from itinera.common.errors import NotFound
from itinera.common.sinks.rules import FailureRules
from itinera.common.sinks.simulators import (
    PushMessage,
    SmsMessage,
    SmsReport,
    StatusReporter,
    simulator_router,
)
from itinera.common.sinks.smtp import ReceivedMail
from itinera.common.sinks.store import DEFAULT_CAP, Store
from itinera.common.web import problems

PAGE_SIZE = 200
"""Items of each kind the index page shows."""

# Inherited by the srcdoc frame: even if its sandbox were loosened, no script runs.
PAGE_POLICY = "script-src 'none'; object-src 'none'; form-action 'none'"


class _Record(Protocol):
    @property
    def id(self) -> str: ...

    def as_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_Record)

Limit = Annotated[int, Query(ge=1, le=DEFAULT_CAP, description="at most this many, newest first")]


def _listing(store: Store[R], predicate: Callable[[R], bool] | None, limit: int) -> dict[str, Any]:
    found = store.find(predicate, limit)
    return {"messages": [item.as_json() for item in found], "count": len(found), "stored": len(store)}


def _one(store: Store[R], item_id: str, what: str) -> dict[str, Any]:
    item = store.get(item_id)
    if item is None:
        raise NotFound(f"no {what} {item_id!r} (cleared, or dropped as the store reached its cap)")
    return item.as_json()


def create_app(
    mail: Store[ReceivedMail],
    sms: Store[SmsMessage],
    push: Store[PushMessage],
    rules: FailureRules | None = None,
    smtp_address: str | None = None,
    reporter: StatusReporter | None = None,
) -> FastAPI:
    """The inbox over these stores, with the simulators recording into ``sms`` and
    ``push`` and ``reporter`` making (and keeping) the SMS status callbacks;
    ``smtp_address`` (``host:port``) is shown on the index page."""
    rules = rules or FailureRules()
    reporter = reporter or StatusReporter(Store(sms.cap))
    reports = reporter.reports
    app = FastAPI(
        title="Itinera local delivery",
        description="The local SMTP sink's inbox, and SMS and push provider simulators.",
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    problems.install(app)
    app.include_router(simulator_router(sms, push, rules, reporter))

    @app.get("/healthz", tags=["inbox"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/messages", tags=["inbox"], summary="Received email, newest first")
    async def list_mail(to: str | None = None, limit: Limit = 50) -> dict[str, Any]:
        return _listing(mail, (lambda m: m.sent_to(to)) if to else None, limit)

    @app.get("/api/messages/{message_id}", tags=["inbox"], summary="One received email")
    async def get_mail(message_id: str) -> dict[str, Any]:
        return _one(mail, message_id, "message")

    @app.delete("/api/messages", tags=["inbox"], status_code=204, summary="Forget every email")
    async def clear_mail() -> Response:
        mail.clear()
        return Response(status_code=204)

    @app.get("/api/sms", tags=["inbox"], summary="SMS the simulator was asked to send")
    async def list_sms(to: str | None = None, limit: Limit = 50) -> dict[str, Any]:
        return _listing(sms, (lambda s: s.to == to) if to else None, limit)

    @app.get("/api/sms/{sid}", tags=["inbox"], summary="One SMS request")
    async def get_sms(sid: str) -> dict[str, Any]:
        return _one(sms, sid, "SMS")

    @app.delete("/api/sms", tags=["inbox"], status_code=204, summary="Forget every SMS")
    async def clear_sms() -> Response:
        sms.clear()
        return Response(status_code=204)

    @app.get("/api/sms-reports", tags=["inbox"], summary="Status callbacks the SMS simulator made")
    async def list_sms_reports(sid: str | None = None, limit: Limit = 50) -> dict[str, Any]:
        return _listing(reports, (lambda r: r.sid == sid) if sid else None, limit)

    @app.get("/api/push", tags=["inbox"], summary="Push notifications the simulator was asked to send")
    async def list_push(token: str | None = None, limit: Limit = 50) -> dict[str, Any]:
        return _listing(push, (lambda p: p.token == token) if token else None, limit)

    @app.get("/api/push/{push_id}", tags=["inbox"], summary="One push request")
    async def get_push(push_id: str) -> dict[str, Any]:
        return _one(push, push_id, "push notification")

    @app.delete("/api/push", tags=["inbox"], status_code=204, summary="Forget every push notification")
    async def clear_push() -> Response:
        push.clear()
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return _page("Itinera local inbox", _index_body(mail, sms, reports, push, rules, smtp_address))

    @app.get("/messages/{message_id}", response_class=HTMLResponse, include_in_schema=False)
    async def show_mail(message_id: str) -> HTMLResponse:
        message = mail.get(message_id)
        if message is None:
            body = f"<p>No message {_e(message_id)}: cleared, or dropped at the store's cap.</p>"
            return _page("Not found", body + '<p><a href="/">Back to the inbox</a></p>', 404)
        return _page(message.subject or "(no subject)", _message_body(message))

    return app


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _time(record: ReceivedMail | SmsMessage | SmsReport | PushMessage) -> str:
    return record.received_at.strftime("%Y-%m-%d %H:%M:%S")


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }}
th, td {{ text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
th {{ background: #f4f4f4; }} code, pre {{ font: 12px/1.4 ui-monospace, monospace; }}
pre {{ white-space: pre-wrap; background: #f8f8f8; padding: .75rem; }}
iframe {{ width: 100%; height: 32rem; border: 1px solid #ccc; }}
.failed {{ color: #b00; }} .muted {{ color: #777; }}
</style></head>
<body><h1>{_e(title)}</h1>
{body}
</body></html>
"""
    return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy": PAGE_POLICY})


def _table(headings: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status(status: str, error: object) -> str:
    if status in ("failed", "undelivered"):
        return f'<span class="failed">{_e(status)} ({_e(error)})</span>'
    return _e(status)


def _index_body(
    mail: Store[ReceivedMail],
    sms: Store[SmsMessage],
    reports: Store[SmsReport],
    push: Store[PushMessage],
    rules: FailureRules,
    smtp_address: str | None,
) -> str:
    emails = [
        [
            _time(m),
            _e(m.from_ or m.envelope_from),
            _e(m.to or ", ".join(m.envelope_to)),
            f'<a href="/messages/{_e(m.id)}">{_e(m.subject or "(no subject)")}</a>',
        ]
        for m in mail.find(limit=PAGE_SIZE)
    ]
    texts = [
        [
            _time(s),
            _e(s.to),
            _e(s.from_ or s.messaging_service_sid),
            _e(s.body),
            _status(s.status, s.error_code),
        ]
        for s in sms.find(limit=PAGE_SIZE)
    ]
    callbacks = [
        [
            _time(r),
            _e(r.sid),
            _status(r.status, r.error_code),
            _e(r.url),
            _e(r.answer if r.answer is not None else r.error),
        ]
        for r in reports.find(limit=PAGE_SIZE)
    ]
    pushes = [
        [
            _time(p),
            _e(p.token or (f"topic {p.topic}" if p.topic else f"condition {p.condition}")),
            _e(p.title),
            _e(p.body),
            _status(p.status, p.error_code),
        ]
        for p in push.find(limit=PAGE_SIZE)
    ]
    smtp = f"SMTP sink on <code>{_e(smtp_address)}</code>. " if smtp_address else ""
    rule_list = ", ".join(f"{_e(k)} <code>{_e(v)}</code>" for k, v in rules.as_json().items() if v)
    return f"""<p>{smtp}JSON: <a href="/api/messages">/api/messages</a>, <a href="/api/sms">/api/sms</a>,
<a href="/api/push">/api/push</a>; API and simulators: <a href="/docs">/docs</a>.
Times are UTC. Failure prefixes: {rule_list or "none"}.</p>
<h2>Email <span class="muted">({len(mail)})</span></h2>
{_table(["Received", "From", "To", "Subject"], emails, "No email yet.")}
<h2>SMS <span class="muted">({len(sms)})</span></h2>
{_table(["Received", "To", "From", "Body", "Status"], texts, "No SMS yet.")}
<h2>SMS status callbacks <span class="muted">({len(reports)})</span></h2>
{_table(["Made", "Message", "Status", "URL", "Answer"], callbacks, "No status callback yet.")}
<h2>Push <span class="muted">({len(push)})</span></h2>
{_table(["Received", "Target", "Title", "Body", "Status"], pushes, "No push notification yet.")}
"""


def _message_body(message: ReceivedMail) -> str:
    envelope = _table(
        ["Received (UTC)", "Envelope from", "Envelope to", "Size"],
        [
            [
                _time(message),
                _e(message.envelope_from),
                _e(", ".join(message.envelope_to)),
                f"{message.size:,} bytes",
            ]
        ],
        "",
    )
    headers = _table(
        ["Header", "Value"], [[_e(name), _e(value)] for name, value in message.headers], "No headers."
    )
    if message.html is not None:
        # srcdoc is an attribute: the escaped document is unescaped once by the
        # browser and rendered in a frame without scripts, forms or same-origin access.
        document = '<base target="_blank">' + message.html
        html = (
            f'<iframe title="HTML body" sandbox="allow-popups allow-popups-to-escape-sandbox" '
            f'referrerpolicy="no-referrer" srcdoc="{_e(document)}"></iframe>'
        )
    else:
        html = '<p class="muted">No HTML part.</p>'
    text = (
        f"<pre>{_e(message.text)}</pre>" if message.text is not None else '<p class="muted">No text part.</p>'
    )
    attachments = ""
    if message.attachments:
        attachments = "<h2>Attachments</h2>" + _table(
            ["File", "Type", "Size"],
            [[_e(a.filename), _e(a.content_type), f"{a.size:,} bytes"] for a in message.attachments],
            "",
        )
    return f"""<p><a href="/">Back to the inbox</a> · <a href="/api/messages/{_e(message.id)}">JSON</a></p>
{envelope}
<h2>HTML body</h2>
{html}
<h2>Text body</h2>
{text}
{attachments}
<h2>Headers</h2>
{headers}
"""
