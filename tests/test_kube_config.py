"""[Kube2Skydns] in etc/skydns-api.conf: defaults, the original's YES/NO, one clear error per
bad key."""

import os
import subprocess
import sys

import pytest

from skydns.config import ConfigError, load_config

from proctest import ROOT


def load(tmp_path, text: str) -> dict:
    path = tmp_path / "api.conf"
    path.write_text("[Kube2Skydns]\n" + text)
    return load_config(str(path), "api")["Kube2Skydns"]


def test_defaults():
    kube = load_config(None, "api")["Kube2Skydns"]
    assert kube["kube-enable"] is False
    assert kube["kube-ip-source"] == ["external", "cluster"]
    assert kube["kube-namespaces"] == []
    assert kube["kube-master"] == kube["kube-config"] == ""


@pytest.mark.parametrize("word,value", [("YES", True), ("NO", False), ("true", True),
                                        ("false", False)])
def test_enable_accepts_the_originals_words(tmp_path, word, value):
    assert load(tmp_path, f"kube-enable = {word}\n")["kube-enable"] is value


def test_values(tmp_path):
    (tmp_path / "token").write_text("t")
    kube = load(tmp_path, "kube-enable = YES\nkube-master = https://10.0.0.1:6443/\n"
                          "kube-token-file = token\nkube-namespaces = team-a, default\n"
                          "kube-ip-source = cluster\n")
    assert kube["kube-master"] == "https://10.0.0.1:6443"
    assert kube["kube-token-file"] == str(tmp_path / "token")
    assert kube["kube-namespaces"] == ["default", "team-a"]
    assert kube["kube-ip-source"] == ["cluster"]


@pytest.mark.parametrize("text,key,reason", [
    ("kube-enable = maybe\n", "kube-enable", "expected true or false"),
    ("kube-master = 10.0.0.1:6443\n", "kube-master", "expected http(s)://host[:port]"),
    ("kube-ip-source = internal\n", "kube-ip-source", "expected external or cluster"),
    ("kube-ip-source = cluster, cluster\n", "kube-ip-source", "listed twice"),
    ("kube-namespaces = Team_A\n", "kube-namespaces", "not a Kubernetes namespace name"),
    ("kube-enable = yes\nkube-token-file = /nonexistent/token\n", "kube-token-file",
     "does not exist"),
    ("kube-master = https://a:6443\nkube-config = /etc/hosts\n", "kube-config",
     "not both"),
    ("kube-watch-timeout = 0\n", "kube-watch-timeout", "positive"),
])
def test_bad_values_name_the_key(tmp_path, text, key, reason):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert f"[Kube2Skydns] {key}" in str(err.value) and reason in str(err.value)


def test_enabled_without_any_api_server_is_a_config_error(tmp_path):
    path = tmp_path / "api.conf"
    path.write_text("[Kube2Skydns]\nkube-enable = YES\n")
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    done = subprocess.run([sys.executable, "-m", "kubeapi", "--config-file", str(path)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=30)
    assert done.returncode == 2
    assert "[Kube2Skydns] kube-master: kube-enable is true but there is no API server" \
        in done.stderr
