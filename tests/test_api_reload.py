"""SIGHUP makes skydns-kubeapi re-read its tokens (rotation without a restart); a bad file
keeps the running ones."""

from __future__ import annotations

import signal

from apitest import ADMIN_TOKEN, KubeApi, write_config
from etcdtest import wait_for

NEW_ADMIN = "rotated-admin-token-0123456789"


def status_with(api: KubeApi, token: str) -> int:
    return api.request("GET", "/skydns/api", token=token)[0]


def test_sighup_rotates_tokens_and_keeps_them_on_a_bad_file(etcd):
    api = KubeApi(etcd.endpoint).start()
    try:
        assert status_with(api, ADMIN_TOKEN) == 200
        write_config(api.config, etcd.endpoint, api.port, admin=NEW_ADMIN,
                     tokens={"team-web": "team-web-token-rotated-42"})
        api.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: status_with(api, NEW_ADMIN) == 200, timeout=10,
                 message=f"new token not accepted after SIGHUP: {api.logs()}")
        assert status_with(api, ADMIN_TOKEN) == 401
        assert status_with(api, "team-web-token-rotated-42") == 200

        # A broken file is logged; the tokens in force stay.
        api.config.write_text("[SkydnsApi]\napi-address = 127.0.0.1:70000\n")
        api.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reload failed" in api.logs(), timeout=10,
                 message="no log line for the bad reload")
        assert status_with(api, NEW_ADMIN) == 200
        assert api.proc.poll() is None
    finally:
        assert api.stop() == 0
