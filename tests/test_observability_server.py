"""Request hygiene on a real uvicorn server on loopback, spoken to over a raw socket.

Only a real server shows what the TestClient cannot: that a streamed body is refused while it
is still arriving (the client has not finished sending when the 413 comes back), that a declared
oversized body is refused without waiting for it, and that a client stalling in the middle of
its body is cut off while a slow but steady one is not.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from identity_kit import FAST
from pactvault.api.app import create_app
from pactvault.config import Settings
from pactvault.identity.passwords import PasswordHasher
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform

UPLOAD_LIMIT = 256 * 1024
REQUEST_LIMIT = 16 * 1024
TIMEOUT = 2.0
#: The multipart routes accept the upload limit plus 1 MiB of framing (api/middleware/body.py).
UPLOAD_CEILING = UPLOAD_LIMIT + (1 << 20)


@dataclass
class Answer:
    status: int
    head: bytes
    body: bytes
    sent: int
    elapsed: float


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    settings = Settings(
        home=tmp_path_factory.mktemp("server") / "data",
        max_upload_bytes=UPLOAD_LIMIT,
        max_request_bytes=REQUEST_LIMIT,
        request_timeout_seconds=TIMEOUT,
    )
    platform, _ = Platform.initialise(
        settings, mailer=MemoryMailer(), password_hasher=PasswordHasher(FAST)
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(platform, maintenance_interval=3600),
        host="127.0.0.1",
        port=free,
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield free
    finally:
        server.should_exit = True
        thread.join(10)
        platform.close()


def exchange(port: int, head: bytes, pieces: Iterable[bytes] = (), *, pause: float = 0.0) -> Answer:
    """Send ``head`` then ``pieces`` (stopping as soon as the server answers); read the answer."""
    began = time.monotonic()
    sent = 0
    with socket.socket() as sock:
        # A small send buffer: what the client managed to send is close to what the server read.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.settimeout(15)
        sock.connect(("127.0.0.1", port))
        sock.sendall(head)
        for piece in pieces:
            if pause:
                time.sleep(pause)
            if select.select([sock], [], [], 0)[0]:
                break  # an answer is waiting: the server no longer wants the rest
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        raw = b""
        try:
            while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _length(raw):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
        except ConnectionResetError:
            pass
    head_part, _, body = raw.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 "), raw[:200]
    return Answer(int(head_part.split()[1]), head_part, body, sent, time.monotonic() - began)


def _length(raw: bytes) -> int:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def request_head(method: str, path: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data: Iterator[bytes]) -> Iterator[bytes]:
    for piece in data:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def problem(answer: Answer) -> dict:  # type: ignore[type-arg]
    assert b"application/problem+json" in answer.head.lower()
    assert b"x-request-id:" in answer.head.lower()
    assert b"content-security-policy:" in answer.head.lower()
    return json.loads(answer.body)  # type: ignore[no-any-return]


def test_a_streamed_upload_is_refused_while_it_is_still_arriving(port: int) -> None:
    boundary = "pvboundary"
    total = 64 * 1024 * 1024

    def multipart() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n'
        ).encode()
        for _ in range(total // 65536):
            yield b"0" * 65536

    head = request_head(
        "POST",
        "/api/v1/verify",
        Content_Type=f"multipart/form-data; boundary={boundary}",
        Transfer_Encoding="chunked",
    )
    answer = exchange(port, head, chunked(multipart()))
    assert answer.status == 413
    assert problem(answer)["type"].endswith("/payload-too-large")
    # Refused after about the limit, not after the 64 MiB the client meant to send (socket
    # buffers hold some more than the server read).
    assert UPLOAD_CEILING < answer.sent < 8 * 1024 * 1024, answer.sent


def test_a_streamed_json_body_gets_the_small_request_limit(port: int) -> None:
    def endless_json() -> Iterator[bytes]:
        yield b'{"setup_token": "pvsetup_x", "organisation_name": "'
        for _ in range(1024):
            yield b"a" * 16384

    head = request_head(
        "POST", "/api/v1/setup", Content_Type="application/json", Transfer_Encoding="chunked"
    )
    answer = exchange(port, head, chunked(endless_json()))
    assert answer.status == 413
    assert str(REQUEST_LIMIT) in problem(answer)["detail"]
    assert REQUEST_LIMIT < answer.sent < 2 * 1024 * 1024, answer.sent


def test_a_declared_oversized_body_is_refused_without_reading_it(port: int) -> None:
    head = request_head(
        "POST",
        "/api/v1/verify",
        Content_Type="multipart/form-data; boundary=x",
        Content_Length=str(100 * 1024 * 1024),
    )
    answer = exchange(port, head)  # not a byte of the body is sent
    assert answer.status == 413
    assert answer.elapsed < TIMEOUT  # answered at once, not after waiting for the body
    problem(answer)


def test_a_stalled_body_is_cut_off_and_a_slow_steady_one_is_not(port: int) -> None:
    body = json.dumps({"setup_token": "pvsetup_wrong", "organisation_name": "Slow Ltd"}).encode()
    head = request_head(
        "POST", "/api/v1/setup", Content_Type="application/json", Content_Length=str(len(body))
    )
    stalled = exchange(port, head + body[:10])  # then nothing more
    assert stalled.status == 408, stalled.body
    assert problem(stalled)["type"].endswith("/request-timeout")
    assert TIMEOUT * 0.9 < stalled.elapsed < TIMEOUT * 4

    # Four pieces, 0.7 s apart: longer than the timeout in all, never idle as long as it.
    pieces = [body[i : i + len(body) // 4 + 1] for i in range(0, len(body), len(body) // 4 + 1)]
    steady = exchange(port, head, pieces, pause=0.7)
    assert steady.elapsed > TIMEOUT
    assert steady.status == 401, steady.body  # the endpoint ran: a wrong setup token
