"""`skydns-apicmd` as a process against servers that are not a well-behaved API: odd JSON, an
error answer cut off or stalled mid-body. Each must end in one clear line and an exit status,
never a traceback. The servers speak real HTTP on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apitest import ROOT

EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class Server:
    """Answers every request with `respond(handler)`; one thread per connection."""

    def __init__(self, respond):
        release = self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                respond(self, release)

            do_POST = do_DELETE = do_PUT = do_GET

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.addr = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(respond) -> str:
        servers.append(Server(respond))
        return servers[-1].addr

    yield start
    for server in servers:
        server.close()


def json_answer(obj, status: int = 200):
    body = json.dumps(obj).encode()

    def respond(handler, _release):
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def apicmd(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYDNS_API_")}
    argv = [sys.executable, "-m", "apicmd.cli", "-token", "t", *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=30)


def one_clear_line(done) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skydns-apicmd: "), done.stderr
    return lines[0]


@pytest.mark.parametrize("answer, problem", [
    ({"records": "all of them"}, "'records' is not a list"),
    ({"records": [1, 2]}, "records[0] is not an object"),
    ({"records": [{"domain": "a.", "type": "A", "ips": ["10.0.0.1"]}, None]},
     "records[1] is not an object"),
    ({"records": [{"type": "A", "ips": ["10.0.0.1"]}]}, "records[0] has no string 'domain'"),
    ({"records": [{"domain": "a.", "type": "A", "ips": 5}]},
     "records[0] 'ips' is not a list of plain values"),
    ({"records": [{"domain": "a.", "type": "A", "ips": [["10.0.0.1"]]}]},
     "records[0] 'ips' is not a list of plain values"),
    ({"records": [{"domain": "a.", "type": "A", "ips": ["10.0.0.1"], "status": "DOWN"}]},
     "records[0] 'status' is not an object"),
])
def test_unexpected_json_is_a_clear_error(serve, answer, problem):
    addr = serve(json_answer(answer))
    for args in (["-list"], ["-show", "cctv2"],
                 # the type lookup before a delete reads the same listing
                 ["-method", "delete", "-domain", "cctv2", "-ips", "10.0.0.1"]):
        done = apicmd("-addr", addr, *args)
        assert done.returncode == EXIT_UNREACHABLE, (args, done.stderr)
        line = one_clear_line(done)
        assert f"http://{addr} answered unexpected JSON: {problem}" in line, line


def test_well_formed_listing_still_prints(serve):
    addr = serve(json_answer({"records": [
        {"domain": "a.skydns.local.", "type": "A", "ips": ["10.0.0.1"],
         "status": {"10.0.0.1": "DOWN"}}]}))
    done = apicmd("-addr", addr, "-list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["domain:", "a.skydns.local", "val:", "{", "type:A",
                                   "ips:[10.0.0.1(DOWN)]", "}"]


def cut_off_error(handler, _release):
    """An error status and headers, then the connection closes mid-body."""
    handler.send_response(500)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    handler.wfile.write(b"ERR, sho")
    handler.wfile.flush()
    handler.connection.shutdown(socket.SHUT_RDWR)
    handler.close_connection = True


def stalled_error(handler, release):
    """An error status and headers, then nothing until the test ends."""
    handler.send_response(503)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    handler.wfile.write(b"ERR, sho")
    handler.wfile.flush()
    release.wait(30)
    handler.close_connection = True


@pytest.mark.parametrize("respond, status, lost", [
    (cut_off_error, 500, "IncompleteRead"),
    (stalled_error, 503, "timed out"),
])
def test_error_answer_broken_off_while_reading_it(serve, respond, status, lost):
    addr = serve(respond)
    done = apicmd("-addr", addr, "-timeout", "0.5", "-list")
    assert done.returncode == EXIT_API, done.stderr
    line = one_clear_line(done)
    assert f"(the rest of the answer was lost: {lost}) (HTTP {status})" in line, line


@pytest.mark.parametrize("value", ["0", "-1", "-0.5", "nan", "inf", "soon"])
def test_timeout_must_be_positive(value):
    for args in (["-timeout", value], [f"-timeout={value}"], ["--timeout", value]):
        done = apicmd("-addr", "127.0.0.1:9", *args, "-list")
        assert done.returncode == EXIT_USAGE, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert "argument -timeout" in done.stderr or "argument --timeout" in done.stderr
        assert "must be more than 0 seconds" in done.stderr or "not a number" in done.stderr
