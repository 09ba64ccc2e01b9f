"""Local receivers for the reminder tests: a small SMTP server (Python 3.12 has no smtpd) and a
webhook endpoint, each on a free localhost port in a thread of its own, keeping what they got.

The SMTP server speaks what a client sending plain mail needs (RFC 5321: EHLO/HELO, MAIL, RCPT,
DATA with dot-unstuffing, RSET, NOOP, QUIT) and no extension but 8BITMIME; no STARTTLS, no AUTH.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpReceiver:
    """``with SmtpReceiver() as smtp:`` listens on 127.0.0.1:``smtp.port`` until the block ends."""

    messages: list[Received] = field(default_factory=list)
    port: int = 0
    commands: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> SmtpReceiver:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            server = self._loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            self._loop.run_forever()
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="smtp-receiver", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await reply("220 localhost baocao test SMTP")
        mail_from, rcpts = "", list[str]()
        try:
            while line := await reader.readline():
                verb, _, arg = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
                verb = verb.upper()
                self.commands.append(verb)
                if verb == "EHLO":
                    await reply("250-localhost")
                    await reply("250 8BITMIME")
                elif verb == "HELO":
                    await reply("250 localhost")
                elif verb == "MAIL":
                    mail_from, rcpts = _address(arg), []
                    await reply("250 OK")
                elif verb == "RCPT":
                    rcpts.append(_address(arg))
                    await reply("250 OK")
                elif verb == "DATA":
                    if not rcpts:
                        await reply("503 RCPT first")
                        continue
                    await reply("354 End data with <CR><LF>.<CR><LF>")
                    self.messages.append(Received(mail_from, rcpts, await _data(reader)))
                    await reply("250 OK queued")
                elif verb in ("RSET", "NOOP"):
                    mail_from, rcpts = ("", []) if verb == "RSET" else (mail_from, rcpts)
                    await reply("250 OK")
                elif verb == "QUIT":
                    await reply("221 Bye")
                    break
                else:
                    await reply("502 Command not implemented")
        finally:
            writer.close()


def _address(arg: str) -> str:
    """The address in ``FROM:<a@b> BODY=8BITMIME`` or ``TO:<a@b>``."""
    inside = arg.partition("<")[2].partition(">")[0]
    return inside


async def _data(reader: asyncio.StreamReader) -> bytes:
    lines: list[bytes] = []
    while True:
        line = await reader.readline()
        if line in (b".\r\n", b".\n", b""):
            return b"".join(lines)
        lines.append(line[1:] if line.startswith(b"..") else line)


@dataclass
class WebhookReceiver:
    """``with WebhookReceiver(fail_first=1) as hook:`` takes POSTs on ``hook.url``; the first
    ``fail_first`` get ``fail_status``, the rest 200 and are kept in ``posts``."""

    fail_first: int = 0
    fail_status: int = 503
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.posts]

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(receiver.fail_status)
                else:
                    receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
