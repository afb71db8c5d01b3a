"""The core shared by scanner and scheduler (skydns/monitor.py, skydns/daemon.reload) and the
scanner's start-up limits."""

import logging
import resource
from datetime import UTC, datetime

import pytest

from scanner.__main__ import raise_fd_limit
from skydns import daemon
from skydns.keys import ip_of_key
from skydns.monitor import Warner, iso_time

STATUS = "/skydns/monitor/status/"


@pytest.mark.parametrize(
    ("key", "ip"),
    [
        (STATUS + "10.0.0.5", "10.0.0.5"),
        (STATUS + "2001:DB8::1", "2001:db8::1"),  # one address, whichever spelling
        (STATUS + "2001:db8:0:0:0:0:0:1", "2001:db8::1"),
        (STATUS + "fe80::1%eth0", "fe80::1"),
        (STATUS + "010.0.0.5", None),  # leading zeros: octal to some parsers, so no address
        (STATUS + "nested/10.0.0.5", None),
        (STATUS + "10.0.0.5/", None),
        (STATUS, None),
        (STATUS + "host.example", None),
        ("/skydns/monitor/report/10.0.0.5", None),  # another prefix
    ],
)
def test_ip_of_key(key, ip):
    assert ip_of_key(key, STATUS) == ip


def test_iso_time_is_utc_with_milliseconds():
    assert iso_time(datetime(2024, 5, 1, 12, 0, 0, 123999, tzinfo=UTC)) == \
        "2024-05-01T12:00:00.123Z"
    assert iso_time().endswith("Z")


def test_warner_warns_once_per_key_and_once_per_interval(caplog):
    caplog.set_level(logging.WARNING)
    warn = Warner(logging.getLogger("skydns.test"), every=3600)
    for _ in range(3):
        assert warn.ip_of(STATUS + "bad", STATUS) is None
        assert warn.ip_of(STATUS + "2001:DB8::1", STATUS) == "2001:db8::1"
        warn.every("overrun", "late")
    warn.every("write", "write failed")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["key does not name an IP address; ignored", "late", "write failed"]


@pytest.fixture
def root_logging():
    """Undo what reload's setup_logging does to this process's root logger."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_reload_applies_a_good_file_and_keeps_running_on_a_bad_one(tmp_path, caplog,
                                                                   root_logging):
    caplog.set_level(logging.INFO)
    path = tmp_path / "scanner.conf"
    applied = []
    path.write_text("[Check]\nfall = many\n")
    daemon.reload(str(path), "scanner", "skydns-scanner", applied.append)
    assert applied == []
    assert "config reload failed; keeping the running config" in caplog.text
    path.write_text("[Check]\nfall = 7\n[Log]\nlog-level = info\n")
    daemon.reload(str(path), "scanner", "skydns-scanner", applied.append)
    assert [cfg["Check"]["fall"] for cfg in applied] == [7]


def test_fd_limit_the_kernel_refuses_is_logged_not_fatal(monkeypatch, caplog):
    """A hard limit reported as unlimited and a max-concurrency above what the kernel allows
    (fs.nr_open): setrlimit refuses, and the scanner must start anyway."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    monkeypatch.setattr(resource, "getrlimit",
                        lambda which: (before[0], resource.RLIM_INFINITY))
    try:
        raise_fd_limit(2 ** 62)  # far above any fs.nr_open: the real setrlimit refuses it
    finally:
        monkeypatch.undo()
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == before
    assert "cannot raise the open-files limit" in caplog.text
