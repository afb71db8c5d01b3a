"""SkyDNS2's runtime settings: read `/skydns/config` from etcd as a worker starts.

The supervisor starts fresh workers on SIGHUP, so a changed key is applied by a reload,
without a restart. etcd not answering, or a bad value in the key, is logged and the config
file's values are used: a setting must never keep the server from answering.
"""

from __future__ import annotations

import asyncio
import logging

from skydns import store
from skydns.skydns2 import SETTINGS_KEY, apply_runtime_settings

log = logging.getLogger("skydns.settings")


async def with_runtime_settings(cfg: dict) -> dict:
    """`cfg` with the JSON at /skydns/config laid over it (see skydns.skydns2)."""
    timeout = float(cfg["Etcd"].get("etcd-timeout") or 5.0)
    try:
        client = store.make_client(cfg["Etcd"])
    except ValueError as err:
        log.warning("cannot read runtime settings", extra={"kv": {"error": str(err)}})
        return cfg
    try:
        found = await asyncio.wait_for(client.get(SETTINGS_KEY.encode()), timeout)
    except Exception as err:  # noqa: BLE001 - any etcd failure: serve with the file's values
        log.warning(
            "cannot read runtime settings; using the config file's",
            extra={"kv": {"key": SETTINGS_KEY, "error": store.describe_error(err)}},
        )
        return cfg
    finally:
        try:
            await client.close()
        except Exception:  # noqa: BLE001
            pass
    if found is None:
        return cfg
    new, problems = apply_runtime_settings(cfg, found.value)
    for problem in problems:
        log.error("bad runtime setting", extra={"kv": {"problem": problem}})
    changed = sorted(k for k in new["Dns"] if new["Dns"][k] != cfg["Dns"].get(k))
    if changed:
        log.info(
            "runtime settings applied",
            extra={"kv": {"key": SETTINGS_KEY, "changed": ",".join(changed)}},
        )
    return new
