"""The reader-study server of ``mr2ct review serve``: the study page on the loopback interface, answers saved.

What it accepts (README's reader-study section says the same):

- ``GET``/``HEAD`` of the regular files of the page folder ``<study>/study``: ``/`` (= ``index.html``),
  ``index.html``, ``study.js`` and ``images/<name>.png``. No directory listing, no symbolic link, no hidden
  file, nothing else: 404.
- ``POST /answers``: one reader's answers, ``Content-Type: application/json`` with a ``Content-Length`` of at most
  :data:`~mr2ct.metrics.two_afc.MAX_JSON_BYTES`, checked with the scorer's own rules
  (:func:`~mr2ct.metrics.two_afc.check_answers`) and saved atomically as
  ``<study>/answers/`` :func:`answers_file_name`. A reader who posts again replaces their own file; a file of
  another reader is never replaced, and a reader who already answered in another file is refused (409).
- Every request must name this server in ``Host`` (``127.0.0.1``, ``localhost`` or ``[::1]`` with its port: a
  page of another site that re-points its domain at 127.0.0.1 is refused) and may not come from another origin
  (``Origin``, ``Sec-Fetch-Site``); responses carry ``Cross-Origin-Resource-Policy: same-origin``, so that no
  other site's page can load ``study.js`` (the study id) or the images.
- A request must arrive within ``timeout`` seconds (its body as a whole), and at most ``max_connections`` are
  served at once (more get 503).

A refused request gets its status (400 malformed, 403 another origin or host, 404, 405, 408 too slow, 409 another
reader's file, 411 no length, 413 too large, 415 not JSON, 503 busy) and a JSON body ``{"error": reason}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mr2ct.io.atomic import atomic_write_text
from mr2ct.metrics.two_afc import MAX_JSON_BYTES, AnswerError, StudyKey, check_answers, parse_json, read_json

__all__ = ["StudyServer", "answers_file_name", "serve_study"]

logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_PAGE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".png": "image/png"}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_SAME_SITE = ("same-origin", "none")  # Sec-Fetch-Site of the page's own requests and of a typed address
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'unsafe-inline'; frame-ancestors 'none'",
}
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def answers_file_name(reader: str) -> str:
    """``answers_<name>_<hash>.json``: the reader name's safe characters (at most 40) and the first 12 hex digits
    of the SHA-256 of its exact (stripped) UTF-8 text, so that names that look alike (``王伟`` and ``李娜``,
    ``a/b`` and ``a_b``) keep their own files. The study page names its download the same way."""
    reader = reader.strip()
    safe = _SAFE_NAME.sub("_", reader).strip("_")[:40] or "reader"
    return f"answers_{safe}_{hashlib.sha256(reader.encode('utf-8')).hexdigest()[:12]}.json"


class _Refused(Exception):
    """A request answered with ``status`` and ``reason`` (the JSON body's ``error``)."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class StudyServer(ThreadingHTTPServer):
    """A study server on ``127.0.0.1:port`` (see the module docstring); ``port=0`` picks a free port.

    Args:
        study_dir: a study folder made by :func:`~mr2ct.export.reader_study.make_study`.
        port: the TCP port.
        timeout: seconds a client has to send its request (headers, then the whole body).
        max_connections: requests served at once; more are answered 503 at once.
    """

    daemon_threads = True
    request_queue_size = 64  # connections the kernel holds before they are accepted (and answered 503 if busy)

    def __init__(self, study_dir: str | Path, port: int = 8000, *, timeout: float = 10.0, max_connections: int = 32):
        self.study_dir = Path(study_dir)
        self.key = StudyKey.load(self.study_dir / "key.json")
        self.page_dir, self.answers_dir = self.study_dir / "study", self.study_dir / "answers"
        self.timeout_s, self.lock = timeout, threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self.answers_dir.mkdir(exist_ok=True)
        super().__init__(("127.0.0.1", port), _StudyRequestHandler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\n\r\n" + json.dumps({"error": "server busy"}).encode()
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """One log line, not a traceback, for a connection that failed (e.g. a client that went away)."""
        logger.warning(
            f"study server: request from {client_address[0]} failed", exc_info=logger.isEnabledFor(logging.DEBUG)
        )


class _StudyRequestHandler(BaseHTTPRequestHandler):
    server: StudyServer
    server_version = "mr2ct-study"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # not 0.9: every answer, to a garbled request too, has a status line

    def setup(self) -> None:
        self.timeout = self.server.timeout_s  # type: ignore[misc]  # per handler, as socketserver reads it; socket timeout for every read, headers included
        super().setup()

    # ----------------------------------------------------------------------------------------- answering

    def _reply(self, status: HTTPStatus, payload: bytes, content_type: str, body: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def _json(self, status: HTTPStatus, data: dict) -> None:
        self._reply(status, json.dumps(data).encode("utf-8"), "application/json", body=self.command != "HEAD")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, too many headers, unknown methods) as JSON too."""
        self.close_connection = True
        self._drain()
        self._json(HTTPStatus(code), {"error": message or HTTPStatus(code).phrase})

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        logger.debug(format % args)

    def _handle(self, serve) -> None:
        try:
            self._check_origin()
            serve()
        except _Refused as r:
            logger.info(f"study server: {self.command} {self.path[:80]!r} refused ({r.status.value}: {r.reason})")
            self.close_connection = True
            if self.command == "POST":
                self._drain()
            self._json(r.status, {"error": r.reason})
        except (ConnectionError, TimeoutError):
            raise  # the client went away or stalled: nothing to answer (http.server logs one line)
        except Exception as err:  # noqa: BLE001 - a clear answer and one log line, not a dropped connection
            logger.error(
                f"study server: {self.command} {self.path[:80]!r} failed: {type(err).__name__}: {err}",
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            self.close_connection = True
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error ({type(err).__name__})"})

    def _drain(self, limit: int = 1 << 20, wait: float = 0.1) -> None:
        """Read and drop what the client already sent of a refused request's body (at most ``limit`` bytes), so
        that closing the connection does not reset it before the client reads the answer."""
        self.connection.settimeout(wait)
        try:
            while limit > 0:
                chunk = self.rfile.read1(min(limit, 65536))
                if not chunk:
                    break
                limit -= len(chunk)
        except OSError:  # TimeoutError included: nothing more has arrived
            pass
        finally:
            self.connection.settimeout(self.server.timeout_s)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle(lambda: self._serve_file(body=True))

    def do_HEAD(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._handle(lambda: self._serve_file(body=False))

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._handle(self._save_answers)

    def _not_allowed(self) -> None:
        def refuse() -> None:
            raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served (only GET, HEAD, POST)")

        self._handle(refuse)

    do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _not_allowed  # noqa: N815 - the names http.server dispatches to

    # ------------------------------------------------------------------------------------------ checking

    def _check_origin(self) -> None:
        """Refuse a Host that is not this server's loopback address, and requests from other origins."""
        hosts = self.headers.get_all("Host") or []
        port = self.server.server_address[1]
        allowed = {f"{h}:{port}" for h in _LOOPBACK_HOSTS} | (set(_LOOPBACK_HOSTS) if port == 80 else set())
        if len(hosts) != 1 or hosts[0].strip().lower() not in allowed:
            raise _Refused(HTTPStatus.FORBIDDEN, f"Host must be 127.0.0.1:{port} or localhost:{port}")
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() != f"http://{hosts[0].strip().lower()}":
            raise _Refused(HTTPStatus.FORBIDDEN, "requests from other origins are refused")
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site.strip().lower() not in _SAME_SITE:
            raise _Refused(HTTPStatus.FORBIDDEN, "requests from other sites are refused")

    def _page_path(self) -> list[str]:
        """The parts of a request path that may name a page file, or 404."""
        path = unquote(urlsplit(self.path).path)
        parts = (path.lstrip("/") or "index.html").split("/")
        suffix = os.path.splitext(parts[-1])[1]
        ok = all(_PAGE_NAME.fullmatch(p) for p in parts) and (
            (len(parts) == 1 and suffix in (".html", ".js"))
            or (len(parts) == 2 and parts[0] == "images" and suffix == ".png")
        )
        if not ok:
            raise _Refused(HTTPStatus.NOT_FOUND, "not found")
        return parts

    def _serve_file(self, body: bool) -> None:
        parts = self._page_path()
        folder = self.server.page_dir
        for part in parts[:-1]:  # no symbolic link on the way
            folder = folder / part
            if not stat.S_ISDIR(_lstat_mode(folder)):
                raise _Refused(HTTPStatus.NOT_FOUND, "not found")
        try:
            fd = os.open(folder / parts[-1], _OPEN_FLAGS)  # O_NOFOLLOW: a symbolic link fails; never blocks (FIFO)
        except OSError:
            raise _Refused(HTTPStatus.NOT_FOUND, "not found") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device
                raise _Refused(HTTPStatus.NOT_FOUND, "not found")
            with os.fdopen(fd, "rb", closefd=False) as f:
                payload = f.read()
        finally:
            os.close(fd)
        self._reply(HTTPStatus.OK, payload, _CONTENT_TYPES[os.path.splitext(parts[-1])[1]], body=body)

    def _body(self) -> bytes:
        """The request body: ``application/json`` of a given length up to the limit, read before the deadline."""
        if urlsplit(self.path).path.rstrip("/") != "/answers":
            raise _Refused(HTTPStatus.NOT_FOUND, "not found (answers go to POST /answers)")
        kind, _, params = (self.headers.get("Content-Type") or "").partition(";")
        charset = params.strip().lower().removeprefix("charset=").strip('"') if params.strip() else "utf-8"
        if kind.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json (UTF-8)")
        if self.headers.get("Transfer-Encoding") is not None:
            raise _Refused(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise _Refused(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        text = lengths[0].strip()
        if len(lengths) > 1 or not (text.isascii() and text.isdigit()):
            raise _Refused(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {lengths[0][:20]!r}")
        length = int(text)
        if length > MAX_JSON_BYTES:
            raise _Refused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes is larger than the limit of {MAX_JSON_BYTES} bytes",
            )
        chunks, left, deadline = [], length, time.monotonic() + self.server.timeout_s
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Refused(HTTPStatus.REQUEST_TIMEOUT, f"body not received within {self.server.timeout_s:g} s")
            self.connection.settimeout(remaining)
            try:
                chunk = self.rfile.read1(min(left, 65536))
            except TimeoutError:
                raise _Refused(
                    HTTPStatus.REQUEST_TIMEOUT, f"body not received within {self.server.timeout_s:g} s"
                ) from None
            finally:
                self.connection.settimeout(self.server.timeout_s)
            if not chunk:
                raise _Refused(HTTPStatus.BAD_REQUEST, f"body ended after {length - left} of {length} bytes")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _save_answers(self) -> None:
        raw = self._body()
        server = self.server
        try:
            data = parse_json(raw, "request", "answers")
            reader, _ = check_answers(data, server.key, "request")
        except AnswerError as err:
            raise _Refused(HTTPStatus.BAD_REQUEST, err.reason) from None
        path = server.answers_dir / answers_file_name(reader)
        with server.lock:
            _check_reader_files(server.answers_dir, path, reader)
            try:
                atomic_write_text(path, json.dumps(data, indent=1))
            except OSError as err:
                logger.error(f"study server: cannot save {path}: {err}")
                raise _Refused(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot save the answers ({err.strerror})") from None
        logger.info(f"study server: saved {reader!r}'s {len(data['answers'])} answers in {path}")
        self._json(HTTPStatus.OK, {"saved": path.name})


def _lstat_mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


def _check_reader_files(folder: Path, target: Path, reader: str) -> None:
    """Refuse (409) to replace ``target`` if it holds another reader's answers, or to save ``reader``'s answers
    when another file of ``folder`` already holds them (the scorer would refuse the study)."""
    for path in sorted(folder.glob("*.json")):
        try:
            other = read_json(path, "answers").get("reader")
        except AnswerError:
            other = None
        same = isinstance(other, str) and other.strip() == reader
        if path == target and not same:
            raise _Refused(HTTPStatus.CONFLICT, f"{path.name} holds another reader's answers; it is not replaced")
        if path != target and same:
            raise _Refused(HTTPStatus.CONFLICT, f"reader {reader!r} already answered in {path.name}")


def serve_study(
    study_dir: str | Path, port: int = 8000, *, timeout: float = 10.0, max_connections: int = 32
) -> StudyServer:
    """A :class:`StudyServer` for ``study_dir`` on ``127.0.0.1:port``: call ``serve_forever()`` on it.

    Raises:
        AnswerError: the study's key is missing or malformed.
        OSError: the port cannot be listened on (in use, or privileged).
    """
    return StudyServer(study_dir, port, timeout=timeout, max_connections=max_connections)
