"""A fake SMTP submission server (RFC 5321 subset) on loopback, in a thread.

Enough of SMTP for ``smtplib``: greeting, EHLO/HELO, AUTH PLAIN (advertised only when
``credentials`` are set; 535 5.7.8 on bad ones, 530 5.7.0 for MAIL FROM without
them), MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT.  No STARTTLS:
it is not advertised, so a client that insists on it must stop.  Every accepted
message lands in ``messages`` (envelope and parsed ``EmailMessage``).

To play a server's refusals: ``refused`` maps recipient addresses to the RCPT reply
(550 5.1.1 by default via ``refuse``), ``greeting`` replaces the 220 banner (a 421
banner closes the session, as RFC 5321 says), ``fail_next(command, code, text)``
queues one reply for the next MAIL / RCPT / DATA (the reply after the message text)
/ AUTH / EHLO, and ``delay_s`` holds the banner back (client timeouts).
"""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import socketserver
import threading
from collections import deque
from email.message import EmailMessage

MAX_LINE = 1000 + 2          # RFC 5321 4.5.3.1.6: text line incl. CRLF


@dataclasses.dataclass(frozen=True, slots=True)
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    user: str | None

    @property
    def message(self) -> EmailMessage:
        """The parsed message (the wire's CRLF line ends read as LF)."""
        return email.message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=email.policy.default)


def _address(argument: str, keyword: str) -> str | None:
    """The address of ``FROM:<a@b> SIZE=10`` / ``TO:<a@b>``, or None."""
    head, _, rest = argument.partition(":")
    if head.strip().upper() != keyword:
        return None
    rest = rest.strip()
    if not rest.startswith("<") or ">" not in rest:
        return None
    return rest[1:rest.index(">")]


class FakeSmtp:
    """See the module docstring."""

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.messages: list[Mail] = []
        self.commands: list[str] = []             # every command line received (AUTH redacted)
        self.refused: dict[str, tuple[int, str]] = {}
        self.greeting: tuple[int, str] = (220, "fake.example ESMTP ready")
        self.delay_s = 0.0
        self._next: dict[str, deque[tuple[int, str]]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                fake._session(self)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def refuse(self, address: str, code: int = 550, text: str = "5.1.1 <{}>: Recipient address rejected: "
               "User unknown in virtual mailbox table") -> None:
        self.refused[address] = (code, text.format(address))

    def fail_next(self, command: str, code: int, text: str) -> None:
        with self._lock:
            self._next.setdefault(command.upper(), deque()).append((code, text))

    def _scripted(self, command: str) -> tuple[int, str] | None:
        with self._lock:
            queue = self._next.get(command)
            return queue.popleft() if queue else None

    def start(self) -> FakeSmtp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- one SMTP session ------------------------------------------------------------------

    def _session(self, handler: socketserver.StreamRequestHandler) -> None:
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        _Session(self, handler).run()


class _Session:
    """One client connection: reads command lines, answers each with ``do_<VERB>``."""

    def __init__(self, fake: FakeSmtp, handler: socketserver.StreamRequestHandler) -> None:
        self.fake = fake
        self.handler = handler
        self.user: str | None = None
        self.mail_from: str | None = None
        self.rcpt_tos: list[str] = []
        self.closing = False

    def reply(self, code: int, text: str, *more: str) -> None:
        lines = [text, *more]
        out = "".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n" for i, line in enumerate(lines))
        self.handler.wfile.write(out.encode("utf-8"))
        self.handler.wfile.flush()
        if code == 421:                  # RFC 5321 3.8: the server closes the channel
            self.closing = True

    def run(self) -> None:
        self.reply(*self.fake.greeting)
        if self.fake.greeting[0] != 220:
            return
        while not self.closing:
            raw = self.handler.rfile.readline(MAX_LINE)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            with self.fake._lock:
                self.fake.commands.append("AUTH ***" if verb == "AUTH" else line)
            scripted = self.fake._scripted(verb) if verb in ("EHLO", "AUTH", "MAIL", "RCPT") else None
            if scripted is not None:
                self.reply(*scripted)
                continue
            action = getattr(self, f"do_{verb}", None)
            if action is None:
                self.reply(502, "5.5.2 Error: command not recognized")
            else:
                action(argument)

    def do_EHLO(self, argument: str) -> None:
        extensions = ["8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]
        if self.fake.credentials:
            extensions.append("AUTH PLAIN")
        self.reply(250, "fake.example", *extensions)

    def do_HELO(self, argument: str) -> None:
        self.reply(250, "fake.example")

    def do_AUTH(self, argument: str) -> None:
        mechanism, _, initial = argument.partition(" ")
        if not self.fake.credentials or mechanism.upper() != "PLAIN":
            self.reply(504, "5.5.4 Unrecognized authentication type")
            return
        try:
            _, user, password = base64.b64decode(initial, validate=True).decode().split("\0")
        except ValueError:
            self.reply(501, "5.5.2 Syntax error in authentication data")
            return
        if (user, password) != self.fake.credentials:
            self.reply(535, "5.7.8 Error: authentication failed")
            return
        self.user = user
        self.reply(235, "2.7.0 Authentication successful")

    def do_MAIL(self, argument: str) -> None:
        address = _address(argument, "FROM")
        if address is None:
            self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
        elif self.fake.credentials and self.user is None:
            self.reply(530, "5.7.0 Authentication required")
        else:
            self.mail_from, self.rcpt_tos = address, []
            self.reply(250, "2.1.0 Ok")

    def do_RCPT(self, argument: str) -> None:
        address = _address(argument, "TO")
        if self.mail_from is None:
            self.reply(503, "5.5.1 Error: need MAIL command")
        elif address is None:
            self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
        elif address in self.fake.refused:
            self.reply(*self.fake.refused[address])
        else:
            self.rcpt_tos.append(address)
            self.reply(250, "2.1.5 Ok")

    def do_DATA(self, argument: str) -> None:
        if not self.rcpt_tos:
            self.reply(554, "5.5.1 Error: no valid recipients")
            return
        self.reply(354, "End data with <CR><LF>.<CR><LF>")
        data = self._read_data()
        if data is None:
            self.closing = True
            return
        scripted = self.fake._scripted("DATA")
        if scripted is not None:
            self.reply(*scripted)
        else:
            with self.fake._lock:
                self.fake.messages.append(Mail(self.mail_from or "", list(self.rcpt_tos), data, self.user))
                queued = len(self.fake.messages)
            self.reply(250, f"2.0.0 Ok: queued as Q{queued}")
        self.mail_from, self.rcpt_tos = None, []

    def do_RSET(self, argument: str) -> None:
        self.mail_from, self.rcpt_tos = None, []
        self.reply(250, "2.0.0 Ok")

    def do_NOOP(self, argument: str) -> None:
        self.reply(250, "2.0.0 Ok")

    def do_QUIT(self, argument: str) -> None:
        self.reply(221, "2.0.0 Bye")
        self.closing = True

    def _read_data(self) -> bytes | None:
        """The message text up to the lone dot, dot-unstuffed; None if the client left."""
        lines: list[bytes] = []
        while True:
            raw = self.handler.rfile.readline(MAX_LINE)
            if not raw:
                return None
            if raw == b".\r\n":
                return b"".join(lines)
            lines.append(raw[1:] if raw.startswith(b".") else raw)
