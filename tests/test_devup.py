"""`skydns up` (what `make demo` runs): everything starts, answers, and stops without leftovers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import dns.message
import dns.query

from dnstest import ROOT, free_port
from etcdtest import wait_for


def test_up_serves_samples_and_stops_clean(tmp_path):
    port = free_port()
    out = tmp_path / "out.txt"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dnsserver", "up", "--config-dir", str(ROOT / "etc"),
             "--data-dir", str(tmp_path / "demo"), "--dns-port", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: "Ctrl-C stops everything" in out.read_text() or proc.poll() is not None,
                 timeout=60)
        text = out.read_text()
        assert proc.poll() is None, text
        assert f"dig @127.0.0.1 -p {port} web.skydns.local A" in text
        q = dns.message.make_query("web.skydns.local.", "A")
        reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        assert sorted(rr.address for rr in reply.answer[0]) == ["127.0.10.1", "127.0.10.2"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    # no etcd or skydns of this run is left
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        if str(tmp_path / "demo") not in ps:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"processes left behind:\n{ps}")
