"""The environment of CloudStack's event exporter (cs-powerdns-integration), for
`skydns-cloudstack`: its variables fill what the config file leaves unset, so its users can
switch by changing the image (docs/migration.md maps them). Pure, like skydns2.py.

DNS_COMMON_ZONE counts only with DNS_ADD_TO_COMMON_ZONE=true, as in the exporter.
"""

from __future__ import annotations

from .skydns2 import _LISTS, _unset

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
_BROKER_LISTS = _LISTS | {"bootstrap"}


def fill_from_environment(cfg, known: dict, environ) -> dict[tuple[str, str], str]:
    """Set each variable's key in the parsed file `cfg` where the file leaves it unset;
    {(section, key): variable} of the keys set, so an error can name the variable."""
    used = {}
    for variable, (section, key) in ENVIRONMENT.items():
        value = environ.get(variable, "").strip()
        if not value or key not in known.get(section, ()):
            continue
        if variable == "DNS_COMMON_ZONE" and \
                environ.get("DNS_ADD_TO_COMMON_ZONE", "").strip().lower() != "true":
            continue
        if key == "secret-key" and str(cfg.get(section, {}).get("secret-key-file", "")).strip():
            continue  # the file names the secret's file: that wins
        if section in cfg and key in cfg[section] and not _unset(cfg[section][key]):
            continue  # the file says it: the file wins
        if section not in cfg:
            cfg[section] = {}
        items = [item.strip() for item in value.split(",")]
        cfg[section][key] = items if key in _BROKER_LISTS and len(items) > 1 else value
        used[section, key] = variable
    return used
