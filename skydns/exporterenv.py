"""The environment of CloudStack's event exporter (cs-powerdns-integration), for
`skydns-cloudstack`: its variables fill what the config file leaves unset, so its users can
switch by changing the image (docs/migration.md maps them). Pure, like skydns2.py.

DNS_COMMON_ZONE counts only with DNS_ADD_TO_COMMON_ZONE=true, as in the exporter.
"""

from __future__ import annotations

from . import skydns2

ENVIRONMENT = {
    "KAFKA_BOOTSTRAP": ("Kafka", "bootstrap"),
    "KAFKA_TOPIC": ("Kafka", "topic"),
    "KAFKA_GROUP": ("Kafka", "group"),
    "CS_ENDPOINT": ("CloudStack", "endpoint"),
    "CS_API_KEY": ("CloudStack", "api-key"),
    "CS_SECRET_KEY": ("CloudStack", "secret-key"),
    "DNS_RECORD_TTL": ("Records", "ttl"),
    "DNS_COMMON_ZONE": ("Records", "common-zone"),
}
_BROKER_LISTS = skydns2._LISTS | {"bootstrap"}


def fill_from_environment(cfg, known: dict, environ) -> dict[tuple[str, str], str]:
    """skydns2.fill_from_environment with the exporter's variables and its two rules:
    DNS_COMMON_ZONE only with DNS_ADD_TO_COMMON_ZONE=true, and a secret-key-file in the file
    wins over CS_SECRET_KEY."""

    def wanted(variable: str, section: str, key: str) -> bool:
        if variable == "DNS_COMMON_ZONE":
            return environ.get("DNS_ADD_TO_COMMON_ZONE", "").strip().lower() == "true"
        if key == "secret-key":
            return not str(cfg.get(section, {}).get("secret-key-file", "")).strip()
        return True

    return skydns2.fill_from_environment(cfg, known, environ, ENVIRONMENT, _BROKER_LISTS,
                                         wanted)
