"""Kubernetes objects -> the records they stand for, pure (no I/O, no etcd, no asyncio).

The Kubernetes protocol half of the `[Kube2Skydns]` sync (kubeapi/kubesync.py runs the
informers; sources/reconciler.py writes what this module wants).

Input are raw API objects as decoded JSON (a Service, the discovery.k8s.io/v1 EndpointSlices
labelled with its name); output is what the zone should hold for that service, by name:

    <svc>.<ns>.svc.<zone>               A/AAAA: by kube-ip-source, the first kind it has
                                        (headless: the ready endpoints), or a CNAME
                                        (ExternalName)
    <hostname>.<svc>.<ns>.svc.<zone>    A/AAAA of a ready endpoint that carries a hostname
    _<port>._<proto>.<svc>...           SRV per named port: target the service name;
                                        headless: the endpoint's name (its hostname name, or
                                        its address, which the DNS server names from the key)

Every name lies at or below the service's own name, so "what this service owns" is one etcd
prefix; that is what lets the sync compare one service's wanted and stored records alone.
"""

from __future__ import annotations

import ipaddress
import re

from .want import Want

OWNER = "kubernetes"  # the owner of every record this source writes
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PROTOCOLS = ("TCP", "UDP", "SCTP")


def service_domain(namespace: str, name: str, zone: str) -> str:
    return f"{name}.{namespace}.svc.{zone}"


def object_key(obj: dict) -> tuple[str, str] | None:
    """(namespace, name) of an API object, None when it lacks them."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return None
    ns, name = meta.get("namespace"), meta.get("name")
    if not isinstance(ns, str) or not isinstance(name, str) or not ns or not name:
        return None
    return ns, name


def slice_service(obj: dict) -> tuple[str, str] | None:
    """(namespace, service name) an EndpointSlice belongs to, from its well-known label."""
    key = object_key(obj)
    labels = obj.get("metadata", {}).get("labels") or {}
    svc = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
    if key is None or not isinstance(svc, str) or not svc:
        return None
    return key[0], svc


def _ip(text) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _address_type(ip: str) -> str:
    return "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"


def _label(text) -> str | None:
    if isinstance(text, str) and _LABEL_RE.fullmatch(text.lower()):
        return text.lower()
    return None


def _external_ips(spec: dict, status: dict) -> list[str]:
    ips = list(spec.get("externalIPs") or [])
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    ips += [i.get("ip") for i in ingress if isinstance(i, dict)]
    return [ip for ip in map(_ip, ips) if ip]


def _cluster_ips(spec: dict) -> list[str]:
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in map(_ip, ips) if ip]


def is_headless(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("clusterIP") == "None" and spec.get("type", "ClusterIP") != "ExternalName"


def _named_ports(ports) -> list[tuple[str, str, int]]:
    """(name, protocol, port) of the ports that have a name, as SRV owner labels."""
    out = []
    for port in ports or []:
        if not isinstance(port, dict):
            continue
        name = _label(port.get("name"))
        proto = str(port.get("protocol") or "TCP").upper()
        number = port.get("port")
        if name and proto in _PROTOCOLS and isinstance(number, int) and 0 < number < 65536:
            out.append((name, proto.lower(), number))
    return out


def _srv_name(port_name: str, proto: str, domain: str) -> str:
    return f"_{port_name}._{proto}.{domain}"


def ready_endpoints(slices: list[dict], publish_not_ready: bool = False):
    """(ip, hostname or None, slice) for every ready endpoint address of the slices.

    `conditions.ready` absent counts as ready (the API's own rule for consumers).
    """
    for sl in slices:
        if sl.get("addressType") not in ("IPv4", "IPv6"):
            continue  # FQDN slices name no addresses
        for ep in sl.get("endpoints") or []:
            if not isinstance(ep, dict):
                continue
            ready = (ep.get("conditions") or {}).get("ready")
            if ready is False and not publish_not_ready:
                continue
            hostname = _label(ep.get("hostname"))
            for text in ep.get("addresses") or []:
                ip = _ip(text)
                if ip:
                    yield ip, hostname, sl


def service_records(svc: dict, slices: list[dict], zone: str,
                    ip_source: list[str]) -> list[Want]:
    """What the zone holds for one service, sorted (so equal inputs give equal lists)."""
    key = object_key(svc)
    if key is None or not _label(key[0]) or not _label(key[1]):
        return []  # the API server allows no other names; a label with a dot would nest
    ns, name = key[0].lower(), key[1].lower()
    domain = service_domain(ns, name, zone)
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    kind = spec.get("type", "ClusterIP")
    wants: set[Want] = set()
    if kind == "ExternalName":
        target = spec.get("externalName")
        if isinstance(target, str) and target.strip(".") and " " not in target:
            wants.add(Want(domain, "CNAME", target.lower().rstrip(".") + "."))
        return sorted(wants)
    if is_headless(svc):
        publish = spec.get("publishNotReadyAddresses") is True
        for ip, hostname, sl in ready_endpoints(slices, publish):
            rtype = _address_type(ip)
            wants.add(Want(domain, rtype, ip))
            target = ip
            if hostname:
                target = f"{hostname}.{domain}"
                wants.add(Want(target, rtype, ip))
            for port_name, proto, number in _named_ports(sl.get("ports")):
                wants.add(Want(_srv_name(port_name, proto, domain), "SRV", target, number))
        return sorted(wants)
    ips: list[str] = []
    for source in ip_source:
        ips = _external_ips(spec, status) if source == "external" else _cluster_ips(spec)
        if ips:
            break
    for ip in ips:
        wants.add(Want(domain, _address_type(ip), ip))
    if ips:
        for port_name, proto, number in _named_ports(spec.get("ports")):
            wants.add(Want(_srv_name(port_name, proto, domain), "SRV", domain, number))
    return sorted(wants)


def _tcp_ports(ports) -> list[int]:
    return sorted({p["port"] for p in ports or [] if isinstance(p, dict)
                   and str(p.get("protocol") or "TCP").upper() == "TCP"
                   and isinstance(p.get("port"), int) and 0 < p["port"] < 65536})


def probe_ports(svc: dict, slices: list[dict], wants: list[Want]) -> dict[str, list[int]]:
    """The TCP ports a scanner may probe on each address of `wants` (for a new status key):
    the service's ports on its own addresses, each slice's ports on its endpoints."""
    ports: dict[str, set[int]] = {}
    addresses = {w.value for w in wants if w.rtype in ("A", "AAAA")}
    if is_headless(svc):
        for ip, _, sl in ready_endpoints(slices, True):
            ports.setdefault(ip, set()).update(_tcp_ports(sl.get("ports")))
    else:
        own = _tcp_ports((svc.get("spec") or {}).get("ports"))
        for ip in addresses:
            ports.setdefault(ip, set()).update(own)
    return {ip: sorted(p) for ip, p in ports.items() if ip in addresses and p}
