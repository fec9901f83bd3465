""":class:`LocalDelivery`: the SMTP sink and the inbox web app (with the SMS and push
simulators) running together on the current event loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Generator
from types import TracebackType

import uvicorn

from itinera.common.sinks.inbox import create_app
from itinera.common.sinks.rules import FailureRules
from itinera.common.sinks.simulators import (
    DEFAULT_CALLBACK_DELAY_S,
    PushMessage,
    SmsMessage,
    SmsReport,
    StatusReporter,
)
from itinera.common.sinks.smtp import DEFAULT_SMTP_PORT, ReceivedMail, SmtpSink
from itinera.common.sinks.store import DEFAULT_CAP, Store

DEFAULT_WEB_PORT = 8025


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: the process it runs in (``itinera
    run``, a test session) decides what Ctrl-C does, not this server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


BOUNCE_ADDRESS = "bounces@itinera.local"
"""The envelope sender base the local stack's channels service sends from."""
DEFAULT_BOUNCE_PORT = 2525
"""Where ``itinera run``'s channels service takes the sink's late bounces."""


class LocalDelivery:
    """The local SMTP sink (``smtp_port``) and the inbox with the provider simulators
    (``web_url``), started and stopped together; an async context manager.

    Port 0 takes a free port (what tests want); the bound ports are known once
    started. ``mail``, ``sms``, ``sms_reports`` (the SMS status callbacks made, each
    ``callback_delay_s`` after its message was accepted) and ``push`` are the stores,
    each holding at most ``cap`` items: read them directly, or wait with
    ``await delivery.mail.wait_for(...)``. ``rules`` say which recipients the SMTP sink
    and the simulators refuse or fail. ``bounce_port``: where the channels service's
    bounce mailbox listens (on ``host``); the sink's late bounces go there, and
    :meth:`environment` points the service at it (0: no mailbox, late bounces are kept in
    ``mail``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        smtp_port: int = DEFAULT_SMTP_PORT,
        web_port: int = DEFAULT_WEB_PORT,
        cap: int = DEFAULT_CAP,
        rules: FailureRules | None = None,
        callback_delay_s: float = DEFAULT_CALLBACK_DELAY_S,
        bounce_port: int = 0,
    ) -> None:
        self.host = host
        self.bounce_port = bounce_port
        self.rules = rules or FailureRules()
        self.mail: Store[ReceivedMail] = Store(cap)
        self.sms: Store[SmsMessage] = Store(cap)
        self.sms_reports: Store[SmsReport] = Store(cap)
        self.push: Store[PushMessage] = Store(cap)
        self._reporter = StatusReporter(self.sms_reports, callback_delay_s)
        self._smtp = SmtpSink(
            self.mail,
            host=host,
            port=smtp_port,
            rules=self.rules,
            bounce_relay=(host, bounce_port) if bounce_port else None,
        )
        self._web_port = web_port
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def smtp_host(self) -> str:
        return self.host

    @property
    def smtp_port(self) -> int:
        return self._smtp.port

    @property
    def web_port(self) -> int:
        return self._web_port

    @property
    def web_url(self) -> str:
        """The inbox, and the base URL of both simulators."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._web_port}"

    @property
    def sms_base_url(self) -> str:
        """Where a Twilio client's ``https://api.twilio.com`` goes."""
        return self.web_url

    @property
    def push_base_url(self) -> str:
        """Where an FCM client's ``https://fcm.googleapis.com`` goes."""
        return self.web_url

    def environment(self) -> dict[str, str]:
        """The channels service's settings that point it here."""
        found = {
            "ITINERA_CHANNELS_SMTP_HOST": self.smtp_host,
            "ITINERA_CHANNELS_SMTP_PORT": str(self.smtp_port),
            "ITINERA_CHANNELS_SMS_BASE_URL": self.sms_base_url,
            "ITINERA_CHANNELS_PUSH_BASE_URL": self.push_base_url,
        }
        if self.bounce_port:
            found |= {
                "ITINERA_CHANNELS_BOUNCE_ADDRESS": BOUNCE_ADDRESS,
                "ITINERA_CHANNELS_BOUNCE_HOST": self.host,
                "ITINERA_CHANNELS_BOUNCE_PORT": str(self.bounce_port),
            }
        return found

    def clear(self) -> None:
        """Forget everything received (between tests)."""
        self.mail.clear()
        self.sms.clear()
        self.sms_reports.clear()
        self.push.clear()

    async def start(self) -> None:
        await self._smtp.start()
        try:
            await self._start_web()
        except BaseException:
            await self._smtp.stop()
            raise

    async def _start_web(self) -> None:
        # Bound here rather than by uvicorn: a taken port fails with a clear error
        # (uvicorn would exit the process), and port 0 tells its number at once.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._web_port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise RuntimeError(f"port {self._web_port} for the local inbox is taken") from exc
            raise
        self._web_port = sock.getsockname()[1]
        app = create_app(
            self.mail,
            self.sms,
            self.push,
            self.rules,
            smtp_address=f"{self.host}:{self.smtp_port}",
            reporter=self._reporter,
        )
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = _EmbeddedServer(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]), name="itinera-inbox")
        while not self._server.started:
            if self._serving.done():
                sock.close()
                self._serving.result()  # its error, if it had one
                raise RuntimeError("the local inbox stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._serving), timeout=10)
            except TimeoutError:
                self._server.force_exit = True
                await self._serving
            self._server = self._serving = None
        await self._reporter.close()
        await self._smtp.stop()

    async def __aenter__(self) -> LocalDelivery:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
