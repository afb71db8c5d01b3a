"""CloudStack virtual machines -> the records they stand for, pure (no I/O, no etcd, no asyncio).

The CloudStack half of `skydns-cloudstack` (cloudstack/ consumes the event bus and calls the
API; sources/reconciler.py writes what this module wants). Two jobs:

* `parse_event`: one message of CloudStack's event bus (decoded JSON) -> an `Event` (a VM to
  create/refresh, or to remove) or None for anything else. Async-job events carry
  `commandEventType` and `status` SUCCEEDED (the VM's id in `instanceUuid`, its response in
  `jobResult`: a string with a class prefix in CloudStack 4.11, a JSON object in newer
  releases); action events carry `event` and `status` Completed (the id in `entityuuid` or
  `VirtualMachine`) and are errors when their description starts with "Error while".
* `vm_records`: a VM (listVirtualMachines' shape) and its zones -> `Want`s:

      <vm-name>.<zone>           A/AAAA of the default NIC; PTR of each address -> this name
                                 (zone: the account's network domain, else its domain's)
      <group>-<acct8>.<zone>     the same addresses, one key per VM of the group
      both again in common-zone  (no PTR: the PTR names the account/domain zone record)

Keys derive from the VM's id (sources/planner.py, unit mode), so a replayed event writes the
same keys and a VM leaving a group removes only its own address.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

from .want import Want

OWNER = "cloudstack"  # the owner of every record this source writes
UPSERT_EVENTS = ("VM.CREATE", "VM.START")
REMOVE_EVENTS = ("VM.DESTROY", "VM.EXPUNGE")
GONE_STATES = ("destroyed", "expunging", "expunged", "error")
_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_UUID_RE = re.compile(r"[0-9a-zA-Z][0-9a-zA-Z-]{0,63}")
_GROUP_DROP = re.compile(r"[^0-9A-Za-z]")


@dataclass(frozen=True, slots=True)
class Event:
    """What one bus message asks for: `remove` the VM `vm_id`, or create/refresh it from
    `vm` (its API response, when the message carried one; may be incomplete)."""

    kind: str  # "upsert" | "remove"
    vm_id: str
    event_type: str  # "VM.CREATE", ... (upper case), for logs and metrics
    vm: dict | None = None


def parse_job_result(raw) -> dict | None:
    """A job result as the bus carries it -> the VM response dict, or None."""
    if isinstance(raw, dict):
        obj = raw
    elif isinstance(raw, str):
        text = raw.strip()
        start = text.find("{")  # "org.apache...UserVmResponse/virtualmachine/{...}"
        if start < 0:
            return None
        try:
            obj = json.loads(text[start:])
        except (ValueError, RecursionError):
            return None
    else:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("virtualmachine"), dict):
        obj = obj["virtualmachine"]
    return obj if isinstance(obj, dict) else None


def _vm_id(value) -> str | None:
    if isinstance(value, str) and _UUID_RE.fullmatch(value.strip()):
        return value.strip().lower()
    return None


def parse_event(msg) -> Event | None:
    """One decoded bus message -> the Event it asks for, None when it is none we handle."""
    if not isinstance(msg, dict):
        return None
    status = str(msg.get("status") or "").strip().lower()
    job_type = msg.get("commandEventType")
    if isinstance(job_type, str):
        kind = _kind(job_type)
        if kind is None or status != "succeeded":
            return None
        vm = parse_job_result(msg.get("jobResult"))
        vm_id = _vm_id(msg.get("instanceUuid")) or _vm_id((vm or {}).get("id"))
        if vm_id is None:
            return None
        if vm is not None and _vm_id(vm.get("id")) != vm_id:
            vm = None  # a result about something else: look the VM up instead
        return Event(kind, vm_id, job_type.strip().upper(), vm)
    action = msg.get("event")
    if isinstance(action, str):
        kind = _kind(action)
        description = str(msg.get("description") or "")
        if kind is None or status != "completed" or description.startswith("Error while"):
            return None
        vm_id = _vm_id(msg.get("entityuuid")) or _vm_id(msg.get("VirtualMachine"))
        if vm_id is None:
            return None
        return Event(kind, vm_id, action.strip().upper())
    return None


def _kind(event_type: str) -> str | None:
    name = event_type.strip().upper()
    if name in UPSERT_EVENTS:
        return "upsert"
    if name in REMOVE_EVENTS:
        return "remove"
    return None


def vm_gone(vm: dict) -> bool:
    """Destroyed/Expunging VMs are still listed to administrators; they count as gone."""
    return str(vm.get("state") or "").strip().lower() in GONE_STATES


def vm_complete(vm: dict | None) -> bool:
    """Whether a VM response has what the records need (else listVirtualMachines fills it)."""
    return (isinstance(vm, dict) and bool(_vm_id(vm.get("id")))
            and isinstance(vm.get("name"), str) and isinstance(vm.get("nic"), list)
            and isinstance(vm.get("account"), str) and isinstance(vm.get("domainid"), str)
            and isinstance(vm.get("state"), str))


def default_nic(vm: dict) -> dict | None:
    """The NIC marked `isdefault` (not the first one); a lone NIC counts as the default."""
    nics = [n for n in vm.get("nic") or [] if isinstance(n, dict)]
    for nic in nics:
        if nic.get("isdefault") is True or str(nic.get("isdefault")).lower() == "true":
            return nic
    return nics[0] if len(nics) == 1 else None


def nic_addresses(nic: dict) -> list[tuple[str, str]]:
    """(type, address) of a NIC: its IPv4 `ipaddress` and IPv6 `ip6address`."""
    out = []
    for field, rtype, version in (("ipaddress", "A", 4), ("ip6address", "AAAA", 6)):
        try:
            ip = ipaddress.ip_address(str(nic.get(field) or "").strip())
        except ValueError:
            continue
        if ip.version == version:
            out.append((rtype, str(ip)))
    return out


def vm_label(vm: dict) -> str | None:
    """The VM's `name` (not `displayname`) as a DNS label, None when it cannot be one."""
    name = vm.get("name")
    if isinstance(name, str) and _LABEL_RE.fullmatch(name.strip().lower()):
        return name.strip().lower()
    return None


def group_label(group, account_id: str) -> str | None:
    """`www` + account 'edd2ab05-...' -> 'www-edd2ab05': the group kept to [0-9A-Za-z],
    lower-cased, joined with the first 8 characters of the owning account's UUID."""
    if not isinstance(group, str) or not isinstance(account_id, str):
        return None
    kept = _GROUP_DROP.sub("", group).lower()
    suffix = _GROUP_DROP.sub("", account_id).lower()[:8]
    if not kept or not suffix:
        return None
    label = f"{kept[:54]}-{suffix}"
    return label if _LABEL_RE.fullmatch(label) else None


def network_domain(account: dict | None, domain: dict | None) -> str | None:
    """The zone of a VM's records: its account's network domain, else its domain's."""
    for obj in (account, domain):
        value = (obj or {}).get("networkdomain")
        if isinstance(value, str) and value.strip().strip("."):
            return value.strip().lower().rstrip(".") + "."
    return None


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def vm_records(vm: dict, zone: str | None, account_id: str | None, *, common_zone: str = "",
               ttl: int = 0, ptr: bool = True, groups: bool = True) -> list[Want]:
    """What the zone holds for one VM, sorted (equal inputs give equal lists). `zone` is its
    account/domain zone (absolute), `account_id` its owning account's UUID (for the group)."""
    label = vm_label(vm)
    nic = default_nic(vm)
    if label is None or nic is None or vm_gone(vm):
        return []
    addresses = nic_addresses(nic)
    group = group_label(vm.get("group"), account_id) if groups and account_id else None
    wants: set[Want] = set()
    zones = [z for z in (zone, common_zone or None) if z]
    for z in zones:
        for rtype, ip in addresses:
            wants.add(Want(f"{label}.{z}", rtype, ip, ttl=ttl, ptr=ptr and z == zone))
            if group:
                wants.add(Want(f"{group}.{z}", rtype, ip, ttl=ttl))
    return sorted(wants)


def vm_summary(vm: dict) -> dict:
    """What the index key keeps about a VM beside its names (for operators reading etcd)."""
    return {k: vm[k] for k in ("name", "account", "domain") if isinstance(vm.get(k), str)}
