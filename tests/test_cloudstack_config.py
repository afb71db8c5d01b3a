"""skydns-cloudstack's config: its spec's checks, secrets from files, and the exporter's
environment variables filling what the file leaves unset."""

import pytest

from cloudstack.consumer import consumer_options
from skydns.config import ConfigError, load_config


def write(tmp_path, text: str) -> str:
    path = tmp_path / "skydns-cloudstack.conf"
    path.write_text(text)
    return str(path)


def test_exporter_environment_fills_unset_keys(tmp_path):
    env = {"KAFKA_BOOTSTRAP": "10.0.0.4:9092,10.0.0.3", "KAFKA_TOPIC": "cs-events",
           "KAFKA_GROUP": "export-1", "CS_ENDPOINT": "https://cs.example/client/api",
           "CS_API_KEY": "k", "CS_SECRET_KEY": "s", "DNS_RECORD_TTL": "120",
           "DNS_COMMON_ZONE": "all.skydns.local", "DNS_ADD_TO_COMMON_ZONE": "true"}
    cfg = load_config(None, "cloudstack", environ=env)
    assert cfg["Kafka"]["bootstrap"] == ["10.0.0.4:9092", "10.0.0.3:9092"]
    assert (cfg["Kafka"]["topic"], cfg["Kafka"]["group"]) == ("cs-events", "export-1")
    assert cfg["CloudStack"]["endpoint"] == "https://cs.example/client/api"
    assert (cfg["CloudStack"]["api-key"], cfg["CloudStack"]["secret-key"]) == ("k", "s")
    assert cfg["Records"]["ttl"] == 120
    assert cfg["Records"]["common-zone"] == "all.skydns.local."
    # the exporter added to the common zone only with DNS_ADD_TO_COMMON_ZONE=true
    off = load_config(None, "cloudstack", environ={**env, "DNS_ADD_TO_COMMON_ZONE": "false"})
    assert off["Records"]["common-zone"] == ""
    # the file wins
    path = write(tmp_path, "[Kafka]\ntopic = from-file\n[Records]\nttl = 5\n")
    cfg = load_config(path, "cloudstack", environ=env)
    assert cfg["Kafka"]["topic"] == "from-file" and cfg["Records"]["ttl"] == 5


def test_resync_interval_zero_means_only_at_start(tmp_path):
    cfg = load_config(write(tmp_path, "[CloudStack]\nresync-interval = 0\n"), "cloudstack",
                      environ={})
    assert cfg["CloudStack"]["resync-interval"] == 0.0


def test_a_bad_value_from_the_environment_names_the_variable():
    with pytest.raises(ConfigError, match="DNS_RECORD_TTL"):
        load_config(None, "cloudstack", environ={"DNS_RECORD_TTL": "soon"})


@pytest.mark.parametrize("text, where", [
    ("[Kafka]\nbootstrap = host:99999\n", "[Kafka] bootstrap: port 99999 out of range"),
    ("[Kafka]\ntopic = no spaces\n", "[Kafka] topic:"),
    ("[CloudStack]\nendpoint = ftp://x/client/api\n", "[CloudStack] endpoint:"),
    ("[CloudStack]\npage-size = 501\n", "[CloudStack] page-size: at most 500"),
    ("[CloudStack]\nresync-interval = -1\n", "[CloudStack] resync-interval:"),
    ("[CloudStack]\nsecret-key = a\nsecret-key-file = f\n",
     "[CloudStack] secret-key-file: set secret-key or secret-key-file, not both"),
    ("[CloudStack]\nsecret-key-file = missing\n", "[CloudStack] secret-key-file: cannot read"),
    ("[Kafka]\nsecurity-protocol = tls\n", "[Kafka] security-protocol:"),
    ("[Records]\nptr = maybe\n", "[Records] ptr:"),
])
def test_bad_values_are_one_line_errors(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, "cloudstack", environ={})
    assert str(info.value).startswith(f"{path}: {where}")


def test_secret_from_a_file_and_kafka_options(tmp_path):
    (tmp_path / "secret").write_text("s3cret\n")
    (tmp_path / "sasl").write_text("pw\n")
    path = write(tmp_path, "[CloudStack]\nsecret-key-file = secret\n[Kafka]\n"
                 "security-protocol = sasl_plaintext\nsasl-mechanism = scram-sha-512\n"
                 "sasl-username = u\nsasl-password-file = sasl\n")
    cfg = load_config(path, "cloudstack", environ={})
    assert cfg["CloudStack"]["secret-key"] == "s3cret"
    opts = consumer_options(cfg["Kafka"])
    assert opts["security_protocol"] == "SASL_PLAINTEXT"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512" and opts["sasl_plain_password"] == "pw"
    assert opts["enable_auto_commit"] is False and opts["session_timeout_ms"] == 6000
