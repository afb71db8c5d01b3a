"""`skydns-apicmd`: the command line of the record API (talks HTTP to skydns-kubeapi only).

Keeps the original tool's single-dash flags (`-list`, `-show NAME`, `-method create ...`);
`--flag` spellings work too. Exit status: 0 done, 1 the API refused (its `ERR, ...` is
printed), 2 bad usage or no token, 3 the API could not be reached.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from datetime import UTC, datetime

from skydns import cli
from skydns.checks import CheckError, parse_spec

from .client import DEFAULT_ADDR, ApiAnswer, Client, Unreachable
from .health import address_detail, health_table
from .health import shown_status as health_shown
from .table import table

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
TYPES = ("A", "AAAA", "SRV", "CNAME", "NS", "MX", "TXT")
UPDATE_KINDS = {"ips": None, "alias": "CNAME", "nshost": "NS", "mailhost": "MX", "text": "TXT"}

EPILOG = """\
examples:
  export SKYDNS_API_ADDR=127.0.0.1:9001 SKYDNS_API_TOKEN=123456789
  skydns-apicmd -list
  skydns-apicmd -show cctv2
  skydns-apicmd -method create -domain cctv2 -ips "192.168.10.1;192.168.10.2"
  skydns-apicmd -method create -domain cctv2 -alias tv1      (tv1 becomes an alias of cctv2)
  skydns-apicmd -method create -domain _http._tcp.web -type SRV -ips 10.0.0.1 -ports 80
  skydns-apicmd -method create -domain web -ips 10.0.0.5 -check "http:8080/healthz"
  skydns-apicmd -method update -domain web \\
      -check "https:8443/healthz expect=200,204 host=web.example.com timeout=2" \\
      -check "http:8080/ready"
  skydns-apicmd -method update -domain web -ips 10.0.0.5 -check none   (remove its checks)
  skydns-apicmd -method update -domain cctv2 -updates "ips:192.168.10.1->192.168.10.9"
  skydns-apicmd -method update -domain cctv2 -updates "alias:tv1->tv2"
  skydns-apicmd -method delete -domain cctv2 -ips 192.168.10.2
  skydns-apicmd -method delete -domain cctv2                (the whole name)
  skydns-apicmd -health                 (every address: UP/DOWN/MAINT, since, checker, why;
                                         the scanners and the scheduler leader)
  skydns-apicmd -health 10.0.0.5        (one address with its history of changes)
  skydns-apicmd -maint 10.0.0.5 -reason "disk swap"   (out of every answer until -unmaint)
  skydns-apicmd -unmaint 10.0.0.5

health checks (-check, repeatable; every one must pass for an address to stay UP):
  [SCHEME:][PORT][/PATH] [host=NAME] [expect=CODES] [timeout=SECONDS] [tls-skip-verify]
  SCHEME http (default) or https; PORT defaults to 80 / 443; PATH to "/", with its query,
  spaces percent-encoded; expect: status codes, default 200-399 (e.g. 200 or 200,204);
  timeout: seconds (default the scanner's check-timeout). "none" removes the checks.

exit status: 0 done, 1 the API answered an error, 2 bad usage or no token,
3 the API could not be reached."""


class _Usage(Exception):
    """A command line that cannot be turned into a request."""


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns-apicmd",
        description="List, show, create, update and delete skydns records, see the health of "
        "every address and take addresses out for maintenance, through the skydns-kubeapi "
        "REST API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
        allow_abbrev=False,
    )

    def flag(name: str, **kwargs) -> None:
        # Go-style `-name` as in the original tool; `--name` works too but is not listed.
        parser.add_argument(f"-{name}", dest=name, **kwargs)
        parser.add_argument(f"--{name}", dest=name, **{**kwargs, "help": argparse.SUPPRESS})

    parser.add_argument("-h", "-help", "--help", action="help",
                        help="show this help and exit")
    flag("addr", metavar="HOST:PORT",
         help=f"API address (env SKYDNS_API_ADDR, default {DEFAULT_ADDR})")
    flag("token", help="API token (env SKYDNS_API_TOKEN); sent as Authorization: Bearer")
    flag("list", action="store_true",
         help="list every record of the zone, whoever wrote it (read-only: plain SkyDNS keys)")
    flag("show", metavar="NAME", help="show one name's records")
    flag("health", metavar="IP", nargs="?", const="",
         help="health of every address (status or MAINT, since, checker, reason), the "
         "scanners and the leader; with IP that address and its history")
    flag("maint", metavar="IP", help="put IP in maintenance (needs -reason): it leaves "
         "every DNS answer, as if DOWN, until -unmaint; scanners keep probing it")
    flag("unmaint", metavar="IP", help="end IP's maintenance")
    flag("reason", metavar="TEXT", help="why, for -maint (at most 200 characters)")
    flag("method", choices=("create", "update", "delete"), help="change records of -domain")
    flag("domain", metavar="NAME", help="name to change, relative to the zone or fully qualified")
    flag("type", metavar="TYPE", help="record type: " + ", ".join(TYPES) +
         " (default: from the values given)")
    flag("ips", metavar='"IP;IP"', help="addresses, separated by ';'")
    flag("ports", metavar='"PORT;PORT"', help="SRV ports: one for all addresses or one each")
    flag("alias", metavar='"NAME;NAME"', help="aliases (CNAMEs) that point to -domain")
    flag("nshost", metavar='"HOST;HOST"', help="NS hosts")
    flag("mailhost", metavar='"HOST;HOST"', help="MX hosts")
    flag("mailpriority", metavar="N", type=int, help="MX priority (default 10)")
    flag("text", metavar="TEXT", help="TXT text")
    flag("ttl", metavar="SECONDS", type=int, help="TTL of created records")
    flag("ptr", action="store_true", help="also create the reverse (PTR) record of each address")
    flag("check", metavar='"[SCHEME:]PORT/PATH ..."', action="append",
         help="HTTP(S) health check of the addresses (repeatable; syntax below): with "
         "-method create for the new addresses, with -method update (no -updates) to replace "
         "the checks of -domain's addresses (or of -ips); \"none\" removes them")
    flag("updates", metavar='"KIND:OLD->NEW"',
         help="for -method update: ips:, alias:, nshost:, mailhost: or text:OLD->NEW")
    flag("timeout", metavar="SECONDS", type=cli.positive_seconds, default=15.0,
         help="HTTP timeout (default 15)")
    parser.add_argument("--json", "-json", action="store_true",
                        help="print the API's JSON answer instead of the table or OK")
    return parser


def _split(text: str | None) -> list[str]:
    if text is None:
        return []
    return [item.strip() for item in text.split(";") if item.strip()]


def _ip_type(ips: list[str]) -> str:
    families = set()
    for ip in ips:
        try:
            families.add(ipaddress.ip_address(ip).version)
        except ValueError:
            families.add(4)  # let the API say what is wrong with it
    if len(families) > 1:
        raise _Usage("-ips mixes IPv4 and IPv6: create them separately or give -type")
    return "AAAA" if families == {6} else "A"


def _type(args) -> str | None:
    if args.type is None:
        return None
    rtype = args.type.strip().upper()
    if rtype not in TYPES:
        raise _Usage(f"-type {args.type!r}: expected one of {', '.join(TYPES)}")
    return rtype


def _values(args) -> tuple[str | None, str | None, list[str]]:
    """(type, body field, values) named on the command line; the type may be None."""
    given = [(field, rtype, _split(raw)) for field, rtype, raw in (
        ("ips", None, args.ips), ("alias", "CNAME", args.alias),
        ("nsHost", "NS", args.nshost), ("mailHost", "MX", args.mailhost),
    ) if raw is not None]
    if args.text is not None:
        given.append(("text", "TXT", [args.text]))
    if len(given) > 1:
        raise _Usage("give only one of -ips, -alias, -nshost, -mailhost, -text")
    if not given:
        return None, None, []
    field, rtype, values = given[0]
    if not values:
        raise _Usage(f"-{field.lower()} is empty")
    return rtype, field, values


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in _split(text)]
    except ValueError:
        raise _Usage(f"-{flag} {text!r}: expected numbers separated by ';'") from None


def _checks(args) -> list[dict]:
    """The -check flags as check objects ([] for "none"); bad ones are a usage error."""
    if args.check == ["none"]:
        return []
    if "none" in args.check:
        raise _Usage('-check none removes every check; it cannot be combined with others')
    try:
        return [parse_spec(text) for text in args.check]
    except CheckError as err:
        raise _Usage(f"-check: {err}") from None


def create_body(args) -> dict:
    implied, field, values = _values(args)
    if field is None:
        raise _Usage("-method create needs -ips, -alias, -nshost, -mailhost or -text")
    if args.check is not None and field != "ips":
        raise _Usage("-check goes with -ips (health checks are for addresses)")
    rtype = _type(args) or implied or ("SRV" if args.ports else _ip_type(values))
    body: dict = {"type": rtype, field: values if field != "text" else values[0]}
    if args.ports is not None:
        body["ports"] = _ints(args.ports, "ports")
    if args.mailpriority is not None:
        body["mailPriority"] = args.mailpriority
    if args.ttl is not None:
        body["ttl"] = args.ttl
    if args.ptr:
        body["ptr"] = True
    if args.check is not None:
        checks = _checks(args)
        if checks:
            body["checks"] = checks
    return body


def checks_body(args, client: Client) -> dict:
    """-method update -check ...: PUT the checks of the name's addresses (or of -ips)."""
    implied, field, values = _values(args)
    if field not in (None, "ips"):
        raise _Usage("-check goes with -ips (health checks are for addresses)")
    rtype = _type(args)
    if rtype is None and values:
        rtype = _address_type(client, args.domain, values[0])
    if rtype is None:
        try:
            shown = client.show(args.domain)
        except ApiAnswer:
            shown = {}
        types = sorted({e["type"] for e in shown.get("records", []) if "ips" in e})
        if len(types) > 1:
            raise _Usage(f"{args.domain} has {' and '.join(types)} addresses: give -type")
        rtype = types[0] if types else "A"
    body: dict = {"type": rtype, "checks": _checks(args)}
    if values:
        body["ips"] = values
    return body


def _address_type(client: Client, name: str, ip: str) -> str:
    """The type holding `ip` at `name` (A, AAAA or SRV), so `-updates ips:` needs no -type."""
    try:
        shown = client.show(name)
    except ApiAnswer:
        shown = {}
    for entry in shown.get("records", []):
        if ip in entry.get("ips", []):
            return entry["type"]
    return _ip_type([ip])


def update_body(args, client: Client) -> dict:
    if not args.updates:
        raise _Usage('-method update needs -updates "KIND:OLD->NEW" (e.g. "ips:1.2.3.4->1.2.3.5")')
    kind, sep, pair = args.updates.partition(":")
    kind = kind.strip().lower()
    old, arrow, new = pair.partition("->")
    if not sep or not arrow or kind not in UPDATE_KINDS or not old.strip() or not new.strip():
        raise _Usage(f'-updates {args.updates!r}: expected KIND:OLD->NEW with KIND one of '
                     f'{", ".join(UPDATE_KINDS)}')
    old, new = old.strip(), new.strip()
    rtype = _type(args) or UPDATE_KINDS[kind] or _address_type(client, args.domain, old)
    return {"type": rtype, "update": {old: new}}


def delete_body(args, client: Client) -> dict | None:
    implied, field, values = _values(args)
    rtype = _type(args) or implied
    if field is None:
        return {"type": rtype} if rtype else None
    if rtype is None:  # -ips without -type: whichever address type holds them
        rtype = _address_type(client, args.domain, values[0])
    return {"type": rtype, field: values if field != "text" else values[0]}


def show(client: Client, name: str, rtype: str | None) -> dict:
    """One name's records. As in the original tool, `-show nginx.default` also finds the
    Kubernetes service name `nginx.default.svc.<zone>` when nothing is at `nginx.default`."""
    try:
        return client.show(name, rtype)
    except ApiAnswer as err:
        labels = name.rstrip(".").split(".")
        if err.status != 404 or name.endswith(".") or len(labels) != 2:
            raise
        try:
            return client.show(f"{name}.svc", rtype)
        except ApiAnswer:
            raise err from None


def _print_table(answer: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    for line in table(answer.get("records", [])):
        print(line)


def health_modes(args) -> list[str]:
    return [m for m, on in (("-health", args.health is not None),
                            ("-maint", args.maint is not None),
                            ("-unmaint", args.unmaint is not None)) if on]


def run_health(args, client: Client) -> int:
    """-health [IP], -maint IP -reason TEXT, -unmaint IP."""
    now = datetime.now(UTC)
    if args.reason is not None and args.maint is None:
        raise _Usage("-reason goes with -maint IP")
    if args.maint is not None:
        if not (args.reason or "").strip():
            raise _Usage("-maint IP needs -reason TEXT: say why the address is taken out")
        answer = client.maintenance(args.maint, args.reason)
    elif args.unmaint is not None:
        answer = client.maintenance(args.unmaint, None)
    else:
        answer = client.health(args.health or None)
        if args.json:
            print(json.dumps(answer, indent=2, ensure_ascii=False))
        elif args.health:
            print("\n".join(address_detail(answer, now)))
        else:
            print("\n".join(health_table(answer, now)))
        return EXIT_OK
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
    else:
        print(f"OK: {answer.get('ip')} is {health_shown(answer)}")
    return EXIT_OK


def run(args, client: Client) -> int:
    if health_modes(args):
        return run_health(args, client)
    if args.list:
        _print_table(client.listing(_type(args)), args.json)
        return EXIT_OK
    if args.show is not None:
        _print_table(show(client, args.show, _type(args)), args.json)
        return EXIT_OK
    if not args.domain:
        raise _Usage(f"-method {args.method} needs -domain NAME")
    if args.method == "create":
        method, body = "POST", create_body(args)
    elif args.method == "update" and args.check is not None and not args.updates:
        method, body = "PUT", checks_body(args, client)
    elif args.method == "update":
        if args.check is not None:
            raise _Usage("-check with -method update replaces checks: leave out -updates")
        method, body = "PUT", update_body(args, client)
    else:
        method, body = "DELETE", delete_body(args, client)
    _, answer = client.write(method, args.domain, body)
    print(json.dumps(answer) if args.json else answer.get("result", "OK"))
    return EXIT_OK


def _client(args, token: str) -> Client:
    """The client for -addr (or SKYDNS_API_ADDR); a bad address is a usage error naming
    where it came from."""
    if args.addr:
        addr, source = args.addr, "-addr"
    elif os.environ.get("SKYDNS_API_ADDR"):
        addr, source = os.environ["SKYDNS_API_ADDR"], "SKYDNS_API_ADDR"
    else:
        addr, source = DEFAULT_ADDR, "the default address"
    try:
        return Client(addr, token, timeout=args.timeout)
    except ValueError as err:
        raise _Usage(f"{source} {addr!r}: {err}") from None


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    modes = [m for m, on in (("-list", args.list), ("-show", args.show is not None),
                             ("-method", args.method is not None)) if on] + health_modes(args)
    if len(modes) != 1:
        parser.print_usage(sys.stderr)
        what = ("one of -list, -show NAME, -method, -health, -maint IP or -unmaint IP"
                if not modes else " and ".join(modes))
        print(f"skydns-apicmd: give {what}" if not modes else
              f"skydns-apicmd: {what} cannot be combined", file=sys.stderr)
        return EXIT_USAGE
    token = args.token if args.token is not None else os.environ.get("SKYDNS_API_TOKEN", "")
    if not token:
        print("skydns-apicmd: no token: use -token or set SKYDNS_API_TOKEN", file=sys.stderr)
        return EXIT_USAGE
    try:
        client = _client(args, token)
    except _Usage as err:
        print(f"skydns-apicmd: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run(args, client)
    except _Usage as err:
        print(f"skydns-apicmd: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ApiAnswer as err:
        print(f"skydns-apicmd: {err}", file=sys.stderr)
        return EXIT_API
    except Unreachable as err:
        print(f"skydns-apicmd: {err}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
