"""Hostile and careless requests to the reader-study server (``mr2ct review serve``): a table of raw HTTP probes,
each with the status and reason it must get and the proof that no answer file changed; readers whose names look
alike; stalled clients; symbolic links and listings; a busy port.

Every probe talks only to the server the test started on 127.0.0.1, on the port it picked; every loop is bounded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mr2ct.export.reader_study import main as review
from mr2ct.export.reader_study import score_study
from mr2ct.export.study_server import StudyServer, answers_file_name, serve_study
from mr2ct.metrics.two_afc import MAX_JSON_BYTES, AnswerError, StudyKey, Trial

STUDY_ID = "5e1f00d5ab12"
TRIALS = {
    f"t{i:04d}": Trial(f"t{i:04d}", f"case{i % 2}", *(("3D", "real") if i % 2 else ("real", "3D"))) for i in range(1, 5)
}
TIMEOUT = 0.5  # seconds the test server gives a client to send its request


def make_study_folder(root: Path) -> Path:
    """A small study folder as ``make_study`` writes it: key, page, study.js, two images, answers/."""
    (root / "study" / "images").mkdir(parents=True)
    (root / "answers").mkdir()
    StudyKey(STUDY_ID, ("3D",), dict(TRIALS)).save(root / "key.json")
    (root / "study" / "index.html").write_text("<!DOCTYPE html><title>study</title>", encoding="utf-8")
    (root / "study" / "study.js").write_text(f'const STUDY = {{"study_id": "{STUDY_ID}"}};\n', encoding="utf-8")
    for name in ("a1b2.png", "c3d4.png"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "study" / "images" / name)
    return root


@pytest.fixture
def server(tmp_path):
    """A running study server on 127.0.0.1 (a free port), stopped after the test."""
    srv = serve_study(make_study_folder(tmp_path / "study"), port=0, timeout=TIMEOUT, max_connections=8)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def answers(reader: str = "Dr Test", **changes) -> dict:
    data = {
        "study_id": STUDY_ID,
        "reader": reader,
        "started": "2024-01-01T00:00:00Z",
        "answers": [{"trial": t, "choice": "left", "ms": 1200} for t in TRIALS],
    }
    return {**data, **changes}


def exchange(port: int, raw: bytes, *, finish: bool = True, wait: float = 10.0) -> tuple[int, dict, bytes]:
    """Send ``raw`` to the server, close our side if ``finish``, and read the whole answer (status, headers,
    body); ``(0, {}, b"")`` if the server closed without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(raw)
        if finish:
            sock.shutdown(socket.SHUT_WR)
        data, deadline = b"", time.monotonic() + wait
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def http(
    port: int,
    method: str = "POST",
    path: str = "/answers",
    body: bytes = b"",
    *,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    length: str | None = None,
    **kwargs,
) -> tuple[int, dict, bytes]:
    """A request as a browser on the study page sends it, with ``headers`` changed (value None: left out)."""
    fields = {
        "Host": host or f"127.0.0.1:{port}",
        "Content-Type": "application/json" if method == "POST" else None,
        "Content-Length": length if length is not None else (str(len(body)) if method == "POST" else None),
        "Origin": f"http://127.0.0.1:{port}" if method == "POST" else None,
        "Sec-Fetch-Site": "same-origin",
        **(headers or {}),
    }
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v is not None)
    return exchange(port, head.encode("utf-8") + b"\r\n" + body, **kwargs)


def post(port: int, data, **kwargs) -> tuple[int, dict, bytes]:
    return http(port, body=data if isinstance(data, bytes) else json.dumps(data).encode("utf-8"), **kwargs)


def nested(depth: int) -> bytes:
    return json.dumps(answers()).replace('"Dr Test"', "[" * depth + "]" * depth).encode()


def stalled(port: int) -> tuple[int, dict, bytes]:
    """Headers announce 2000 bytes; 10 arrive, then nothing (the connection stays open)."""
    return http(port, body=b'{"study_id', length="2000", finish=False)


# name: (send the probe to the port, expected status, text the JSON "error" must hold)
POST_CASES: dict[str, tuple[Callable[[int], tuple], int, str]] = {
    # the scorer's rules
    "unknown-trial": (
        lambda p: post(p, answers(answers=[{"trial": "t9999", "choice": "left"}])),
        400,
        "unknown trial 't9999'",
    ),
    "choice-both": (lambda p: post(p, answers(answers=[{"trial": "t0001", "choice": "both"}])), 400, "choice 'both'"),
    "trial-is-a-list": (
        lambda p: post(p, answers(answers=[{"trial": ["t0001"], "choice": "left"}])),
        400,
        "unknown trial ['t0001']",
    ),
    "choice-is-a-dict": (lambda p: post(p, answers(answers=[{"trial": "t0001", "choice": {}}])), 400, "choice {}"),
    "trial-twice": (
        lambda p: post(p, answers(answers=[{"trial": "t0001", "choice": "left"}] * 2)),
        400,
        "answered twice",
    ),
    "answer-not-an-object": (lambda p: post(p, answers(answers=["t0001"])), 400, "not an object"),
    "answers-not-a-list": (lambda p: post(p, answers(answers={"t0001": "left"})), 400, "no 'answers' list"),
    "other-study": (lambda p: post(p, answers(study_id="000000000000")), 400, "answers for study '000000000000'"),
    "no-study-id": (
        lambda p: post(p, {k: v for k, v in answers().items() if k != "study_id"}),
        400,
        "answers for study None",
    ),
    "no-reader": (lambda p: post(p, {k: v for k, v in answers().items() if k != "reader"}), 400, "no reader name"),
    "blank-reader": (lambda p: post(p, answers("   ")), 400, "no reader name"),
    "reader-is-a-number": (lambda p: post(p, answers(7)), 400, "reader name 7 is not a string"),
    "reader-300-characters": (lambda p: post(p, answers("r" * 300)), 400, "300 characters is longer than 100"),
    "reader-control-characters": (lambda p: post(p, answers("Dr\x00Test")), 400, "control characters"),
    "reader-lone-surrogate": (
        lambda p: post(p, json.dumps(answers()).replace("Dr Test", "Dr \\ud800").encode()),
        400,
        "unpaired surrogates",
    ),
    # the body
    "top-level-array": (lambda p: post(p, [answers()]), 400, "expected an object"),
    "not-json": (lambda p: post(p, b"{not json"), 400, "not a JSON answers file"),
    "not-utf-8": (
        lambda p: post(p, json.dumps(answers("Jos\xe9")).encode("utf-8").replace(b"Jos", b"\xff")),
        400,
        "not UTF-8",
    ),
    "utf-8-with-bom": (lambda p: post(p, b"\xef\xbb\xbf" + json.dumps(answers()).encode()), 400, "not a JSON"),
    "nan": (
        lambda p: post(p, json.dumps(answers()).replace('"ms": 1200', '"ms": NaN').encode()),
        400,
        "NaN is not a JSON value",
    ),
    "nested-100000-deep": (lambda p: post(p, nested(100_000)), 400, "nested too deeply"),
    "empty-body": (lambda p: post(p, b""), 400, "not a JSON"),
    # the headers
    "text-plain": (lambda p: post(p, answers(), headers={"Content-Type": "text/plain"}), 415, "application/json"),
    "form-encoded": (
        lambda p: post(p, answers(), headers={"Content-Type": "application/x-www-form-urlencoded"}),
        415,
        "application/json",
    ),
    "no-content-type": (lambda p: post(p, answers(), headers={"Content-Type": None}), 415, "application/json"),
    "json-in-latin-1": (
        lambda p: post(p, answers(), headers={"Content-Type": "application/json; charset=latin-1"}),
        415,
        "application/json",
    ),
    "foreign-origin": (lambda p: post(p, answers(), headers={"Origin": "http://evil.example"}), 403, "other origins"),
    "foreign-origin-text-plain": (
        lambda p: post(p, answers(), headers={"Origin": "http://evil.example", "Content-Type": "text/plain"}),
        403,
        "other origins",
    ),
    "origin-null": (lambda p: post(p, answers(), headers={"Origin": "null"}), 403, "other origins"),
    "origin-other-port": (lambda p: post(p, answers(), headers={"Origin": "http://127.0.0.1:1"}), 403, "other origins"),
    "cross-site-fetch": (
        lambda p: post(p, answers(), headers={"Sec-Fetch-Site": "cross-site", "Origin": None}),
        403,
        "other sites",
    ),
    "foreign-host": (lambda p: post(p, answers(), host="evil.example", headers={"Origin": None}), 403, "Host must be"),
    "rebound-host": (
        lambda p: post(p, answers(), host=f"evil.example:{p}", headers={"Origin": None}),
        403,
        "Host must be",
    ),
    "host-without-port": (
        lambda p: post(p, answers(), host="127.0.0.1", headers={"Origin": None}),
        403,
        "Host must be",
    ),
    "no-host": (lambda p: post(p, answers(), headers={"Host": None, "Origin": None}), 403, "Host must be"),
    "two-hosts": (
        lambda p: post(p, answers(), headers={"Host": f"127.0.0.1:{p}\r\nHost: evil.example"}),
        403,
        "Host must be",
    ),
    "content-length-minus-1": (lambda p: post(p, b"", length="-1"), 400, "invalid Content-Length '-1'"),
    "content-length-not-a-number": (lambda p: post(p, b"{}", length="12abc"), 400, "invalid Content-Length"),
    "content-length-twice": (lambda p: post(p, b"{}", length="2\r\nContent-Length: 2"), 400, "invalid Content-Length"),
    "no-content-length": (lambda p: post(p, b"", headers={"Content-Length": None}), 411, "Content-Length"),
    "chunked": (
        lambda p: post(p, b"2\r\n{}\r\n0\r\n\r\n", headers={"Content-Length": None, "Transfer-Encoding": "chunked"}),
        411,
        "chunked",
    ),
    "one-byte-over-the-cap": (
        lambda p: post(p, b"", length=str(MAX_JSON_BYTES + 1)),
        413,
        f"larger than the limit of {MAX_JSON_BYTES} bytes",
    ),
    "25-MB": (lambda p: post(p, b'{"study_id": "' + b"x" * 60000, length="25000000"), 413, "larger than the limit"),
    "body-shorter-than-announced": (
        lambda p: post(p, b'{"study_id": 1}', length="500"),
        400,
        "body ended after 15 of 500 bytes",
    ),
    "stalled-body": (stalled, 408, "not received within 0.5 s"),
    # the path and the method
    "post-elsewhere": (lambda p: post(p, answers(), path="/answers.json"), 404, "not found"),
    "post-traversal": (lambda p: post(p, answers(), path="/answers/../../key.json"), 404, "not found"),
    "put": (lambda p: http(p, "PUT", body=b"{}", length="2"), 405, "PUT is not served"),
    "delete": (lambda p: http(p, "DELETE", path="/index.html"), 405, "DELETE is not served"),
    "options-preflight": (
        lambda p: http(p, "OPTIONS", headers={"Access-Control-Request-Method": "POST"}),
        405,
        "OPTIONS is not served",
    ),
    "garbage-request-line": (
        lambda p: exchange(p, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
        400,
        "Bad request",
    ),
    "request-line-too-long": (lambda p: exchange(p, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"), 414, ""),
    "too-many-headers": (lambda p: exchange(p, b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 150 + b"\r\n"), 431, ""),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(POST_CASES))
def test_hostile_request_gets_a_clear_answer_and_saves_nothing(server, case, caplog):
    send, status, reason = POST_CASES[case]
    answers_dir = server.study_dir / "answers"
    assert post(server.server_address[1], answers("Keeper"))[0] == 200  # a reader's file that must stay as it is
    before = snapshot(answers_dir)
    with caplog.at_level(logging.DEBUG):
        got, headers, body = send(server.server_address[1])
    assert got == status, (case, got, body[:300])
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert reason in error and "Traceback" not in error, (case, error)
    assert snapshot(answers_dir) == before, case
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.levelno >= logging.ERROR], case
    text, _ = score_study(server.study_dir)  # the study still scores
    assert "1 reader(s)" in text


def test_good_answers_are_saved_under_the_readers_own_name(server):
    port = server.server_address[1]
    status, headers, body = post(port, answers("Dr Test"))
    assert status == 200 and json.loads(body) == {"saved": answers_file_name("Dr Test")}
    saved = server.study_dir / "answers" / answers_file_name("Dr Test")
    assert json.loads(saved.read_text(encoding="utf-8")) == answers("Dr Test")
    assert headers["cross-origin-resource-policy"] == "same-origin" and headers["cache-control"] == "no-store"
    again = answers("Dr Test", answers=[{"trial": "t0001", "choice": "right"}])
    assert post(port, again)[0] == 200  # a reader who sends again replaces their own file
    assert json.loads(saved.read_text(encoding="utf-8")) == again
    assert (
        post(
            port,
            answers(),
            headers={"Content-Type": "application/json; charset=UTF-8", "Origin": None, "Sec-Fetch-Site": None},
        )[0]
        == 200
    )  # curl-like client
    assert post(port, answers(), host=f"localhost:{port}", headers={"Origin": f"http://localhost:{port}"})[0] == 200
    assert sorted(os.listdir(server.study_dir / "answers")) == [saved.name]  # no temporary file left


LOOK_ALIKE = [("王伟", "李娜"), ("a/b", "a_b", "a b", "a\\b"), ("José", "Josë", "Jos\u0065\u0301"), ("reader", "", "_")]


@pytest.mark.parametrize("names", LOOK_ALIKE[:3], ids=["chinese", "separators", "accents"])
def test_readers_whose_names_look_alike_keep_their_own_files(server, names):
    """They all used to become one file (answers_reader.json, answers_a_b.json, answers_Jos_.json): last one won."""
    port = server.server_address[1]
    sent = {}
    for i, name in enumerate(names):
        sent[name] = answers(name, answers=[{"trial": f"t{i + 1:04d}", "choice": "left"}])
        status, _, body = post(port, sent[name])
        assert status == 200, body
    files = sorted((server.study_dir / "answers").iterdir())
    assert len(files) == len(names)
    found = {
        json.loads(f.read_text(encoding="utf-8"))["reader"]: json.loads(f.read_text(encoding="utf-8")) for f in files
    }
    assert found == sent
    text, _ = score_study(server.study_dir)
    assert f"{len(names)} reader(s)" in text


def test_file_name_is_safe_short_and_distinct():
    names = {answers_file_name(n) for group in LOOK_ALIKE for n in group if n}
    assert len(names) == sum(1 for group in LOOK_ALIKE for n in group if n)
    for name in names:
        assert name.isascii() and "/" not in name and "\\" not in name and len(name) <= 70, name
    long = answers_file_name("x" * 100)
    assert long == f"answers_{'x' * 40}_{hashlib.sha256(b'x' * 100).hexdigest()[:12]}.json"
    assert answers_file_name(" Dr Test ") == answers_file_name("Dr Test")  # the scorer strips names too


def test_another_readers_file_is_never_replaced(server):
    port = server.server_address[1]
    answers_dir = server.study_dir / "answers"
    # a file at the name "Mallory" would get, holding Alice's answers (a collision, or a file put there by hand)
    squatted = answers_dir / answers_file_name("Mallory")
    squatted.write_text(json.dumps(answers("Alice")), encoding="utf-8")
    status, _, body = post(port, answers("Mallory"))
    assert status == 409 and "another reader's answers" in json.loads(body)["error"]
    assert json.loads(squatted.read_text(encoding="utf-8"))["reader"] == "Alice"
    # Alice's answers are already in that file: saving hers again elsewhere would make the scorer refuse the study
    status, _, body = post(port, answers("Alice"))
    assert status == 409 and f"already answered in {squatted.name}" in json.loads(body)["error"]
    assert sorted(os.listdir(answers_dir)) == [squatted.name]


# ----------------------------------------------------------------------------------------------- the page files


def _symlinks(page: Path, root: Path) -> None:
    (page / "images" / "key.png").symlink_to(root / "key.json")
    (page / "images" / "passwd.png").symlink_to("/etc/passwd")
    (page / "linked.js").symlink_to(page / "study.js")
    (root / "outside").mkdir()
    (root / "outside" / "x.png").write_bytes((page / "images" / "a1b2.png").read_bytes())
    (page / "more").symlink_to(root / "outside", target_is_directory=True)
    (page / "images" / ".hidden.png").write_bytes(b"\x89PNG")
    os.mkfifo(page / "images" / "pipe.png")
    (page / "images" / "folder.png").mkdir()


# path: expected status (the page folder also holds the links and odd files that _symlinks makes)
GET_CASES = {
    "/": 200,
    "/index.html": 200,
    "/study.js": 200,
    "/images/a1b2.png": 200,
    "/images/c3d4.png?x=1": 200,
    "/images/": 404,
    "/images": 404,
    "/images/missing.png": 404,
    "/../key.json": 404,
    "/%2e%2e/key.json": 404,
    "/images/..%2f..%2fkey.json": 404,
    "/key.json": 404,
    "/answers": 404,
    "/images/key.png": 404,
    "/images/passwd.png": 404,
    "/linked.js": 404,
    "/more/x.png": 404,
    "/images/.hidden.png": 404,
    "/images/pipe.png": 404,
    "/images/folder.png": 404,
    "/study.js%00.png": 404,
    "//etc/passwd": 404,
    "/images/a1b2.png/": 404,
    "/index.html.bak": 404,
}


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_only_regular_page_files_are_served(server):
    page = server.study_dir / "study"
    _symlinks(page, server.study_dir)
    port = server.server_address[1]
    for path, status in GET_CASES.items():
        got, headers, body = http(port, "GET", path)
        assert got == status, (path, got, body[:200])
        if status == 200:
            name = "index.html" if path == "/" else path.split("?")[0].lstrip("/")
            assert body == (page / name).read_bytes(), path
            assert headers["cross-origin-resource-policy"] == "same-origin" and "last-modified" not in headers
            assert headers["x-content-type-options"] == "nosniff"
        else:
            assert b"root:" not in body and STUDY_ID.encode() not in body, path
    status, headers, body = http(port, "HEAD", "/study.js")
    assert status == 200 and body == b"" and int(headers["content-length"]) == (page / "study.js").stat().st_size


@pytest.mark.parametrize(
    "headers, host",
    [
        ({"Sec-Fetch-Site": "cross-site"}, None),  # <script src> on a site
        ({"Sec-Fetch-Site": "same-site"}, None),
        ({"Origin": "http://evil.example"}, None),
        ({}, "evil.example:8000"),
    ],  # DNS rebinding
    ids=["cross-site", "same-site", "origin", "host"],
)
def test_other_sites_cannot_read_the_study_id(server, headers, host):
    status, _, body = http(server.server_address[1], "GET", "/study.js", headers=headers, host=host)
    assert status == 403 and STUDY_ID.encode() not in body


# ------------------------------------------------------------------------------------------- resources and port


@pytest.mark.timeout(60)
def test_stalled_clients_do_not_hold_threads(server):
    """100 POSTs that stop half-way used to leave 100 threads waiting forever. Now each is dropped after the
    timeout, at most ``max_connections`` (8) are served at once while the others get 503 at once, and a good
    request gets through as soon as they are gone."""
    port = server.server_address[1]
    baseline = most = threading.active_count()
    socks = []
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(
                f"POST /answers HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f'Content-Length: 5000\r\n\r\n{{"study'.encode()
            )
            socks.append(sock)
            most = max(most, threading.active_count())
        time.sleep(0.2)
        assert max(most, threading.active_count()) <= baseline + 8
        deadline = time.monotonic() + 5 * TIMEOUT + 5
        while threading.active_count() > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == baseline  # every handler thread has ended
        statuses = []
        for sock in socks:
            data = sock.recv(200)
            statuses.append(int(data.split()[1]) if data else 0)
        assert set(statuses) == {408, 503}  # each got an answer: too slow, or busy
    finally:
        for sock in socks:
            sock.close()
    assert post(port, answers())[0] == 200
    # a client that sends nothing at all is dropped after the timeout too
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - start < TIMEOUT + 2


def test_busy_port_is_one_clear_line(tmp_path, capsys):
    study = make_study_folder(tmp_path / "study")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert review(["serve", str(study), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}" in err and "--port" in err and "Traceback" not in err
    assert err.count("\n") == 1
    for bad in ("-1", "70000", "http"):
        with pytest.raises(SystemExit) as exit_:
            review(["serve", str(study), "--port", bad])
        assert exit_.value.code == 2 and "not a port number" in capsys.readouterr().err


def test_study_without_a_key_is_refused(tmp_path):
    study = make_study_folder(tmp_path / "study")
    (study / "key.json").write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(AnswerError, match="key.json: not a JSON study key file"):
        StudyServer(study, 0)
