"""`skydns-kubeapi` as a command: help, config errors, token checks, start-up refusals."""

import socket
import subprocess
import sys

from apitest import ROOT, KubeApi, write_config
from etcdtest import free_port


def kubeapi(*args, timeout: float = 20):
    return subprocess.run([sys.executable, "-m", "kubeapi", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


def test_help():
    done = kubeapi("--help")
    assert done.returncode == 0
    for text in ("--config-file", "/skydns/api", "/healthz", "ERR, <reason>", "[Tokens]"):
        assert text in done.stdout


def test_config_errors_are_one_line_and_exit_2(tmp_path):
    cases = [
        ({"SkydnsApi": {"api-address": "127.0.0.1:99999"}}, "[SkydnsApi] api-address:"),
        ({"SkydnsApi": {"max-body": "0"}}, "[SkydnsApi] max-body:"),
        ({"Tokens": {"admin": "tok-1"}}, "[Tokens] admin: the owner name 'admin' is kept"),
        ({"Tokens": {"a": "same-token", "b": "same-token"}}, "[Tokens] b: same token as owner"),
        ({"Tokens": {"a": "123456789"}}, "[Tokens] a: same token as [SkydnsApi] skydns-auth"),
    ]
    for sections, message in cases:
        path = write_config(tmp_path / "api.conf", "http://127.0.0.1:1", free_port(),
                            tokens={}, **sections)
        done = kubeapi("--config-file", str(path))
        assert done.returncode == 2, (sections, done.stderr)
        assert message in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    missing = kubeapi("--config-file", str(tmp_path / "nope.conf"))
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_api_enable_false_exits_at_once(tmp_path):
    path = write_config(tmp_path / "api.conf", "http://127.0.0.1:1", free_port(),
                        SkydnsApi={"api-enable": "false"})
    done = kubeapi("--config-file", str(path))
    assert done.returncode == 0
    assert "api-enable is false" in done.stderr


def test_address_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        path = write_config(tmp_path / "api.conf", "http://127.0.0.1:1",
                            busy.getsockname()[1])
        done = kubeapi("--config-file", str(path))
    assert done.returncode == 1
    assert "cannot listen on 127.0.0.1:" in done.stderr and "Traceback" not in done.stderr


def test_without_tokens_everything_is_401(etcd):
    api = KubeApi(etcd.endpoint, admin="", tokens={}).start()
    try:
        assert api.request("GET", "/skydns/api", token="")[0] == 401
        assert api.request("GET", "/skydns/api", token="anything")[0] == 401
        assert "no tokens configured" in api.logs()
    finally:
        api.stop()
