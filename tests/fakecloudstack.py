"""A fake CloudStack API (aiohttp) for skydns-cloudstack's tests: CloudStack itself cannot run
here. It answers listVirtualMachines, listAccounts and listDomains in CloudStack's JSON
shapes (`{"<command>response": {"count": n, "<item>": [...]}}`, `{}` inner object when
nothing matches, paging with page/pagesize) and checks each request's signature as
CloudStack's ApiServer.verifyRequest does: the parameters but `signature` sorted by name,
values URL-encoded as java.net.URLEncoder does (space as %20), joined with '&', lower-cased,
HMAC-SHA1 with the user's secret key, base64; with signatureVersion=3 an `expires`
(yyyy-MM-ddTHH:mm:ssZ) in the past is refused. A refusal is CloudStack's 401 error object.
tests/test_cloudstack_fake.py proves it against an independent client (the `cs` package).

Also here: builders of VMs, accounts, domains and the events CloudStack publishes on its
Kafka bus (async-job events with a 4.11 string or a newer object `jobResult`, action events).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from aiohttp import web

AUTH_ERROR = "unable to verify user credentials and/or request signature"
JOB_RESULT_PREFIX = "org.apache.cloudstack.api.response.UserVmResponse/virtualmachine/"


def _java_urlencode(value: str) -> str:
    # URLEncoder.encode(value, "UTF-8").replaceAll("\\+", "%20"): only [A-Za-z0-9.*_-] stay.
    return quote(value, safe="*").replace("~", "%7E")


def cloudstack_signature(params: list[tuple[str, str]], secret: str) -> str:
    names = sorted({name for name, _ in params if name.lower() != "signature"})
    first = {}
    for name, value in params:
        first.setdefault(name, value)  # a repeated parameter: CloudStack takes the first
    unsigned = "&".join(f"{n}={_java_urlencode(first[n])}" for n in names).lower()
    mac = hmac.new(secret.encode(), unsigned.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


class FakeCloudStack:
    def __init__(self, keys: dict[str, str]):
        self.keys = dict(keys)  # api key -> secret key
        self.vms: dict[str, dict] = {}
        self.accounts: dict[str, dict] = {}
        self.domains: dict[str, dict] = {}
        self.down = False  # answer 503 as a proxy in front of a stopped management server
        self.delay = 0.0  # seconds every answer is held back
        self.requests: list[dict] = []
        self.refused = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    # --- data --------------------------------------------------------------------------------

    def add_domain(self, name: str, networkdomain: str = "", domain_id: str = "") -> dict:
        dom = {"id": domain_id or str(uuid.uuid4()), "name": name, "level": 1,
               "path": f"ROOT/{name}", "haschild": False}
        if networkdomain:
            dom["networkdomain"] = networkdomain
        self.domains[dom["id"]] = dom
        return dom

    def add_account(self, name: str, domain: dict, networkdomain: str = "",
                    account_id: str = "") -> dict:
        acc = {"id": account_id or str(uuid.uuid4()), "name": name, "accounttype": 0,
               "domainid": domain["id"], "domain": domain["name"], "state": "enabled"}
        if networkdomain:
            acc["networkdomain"] = networkdomain
        self.accounts[acc["id"]] = acc
        return acc

    def add_vm(self, vm: dict) -> dict:
        self.vms[vm["id"]] = vm
        return vm

    # --- HTTP --------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> int:
        app = web.Application()
        app.router.add_route("*", "/client/api", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _error(command: str, status: int, code: int, text: str) -> web.Response:
        body = {f"{command.lower()}response": {"uuidList": [], "errorcode": code,
                                               "cserrorcode": 9999, "errortext": text}}
        return web.json_response(body, status=status)

    async def _handle(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="<html>Service Unavailable</html>",
                                content_type="text/html")
        params = list(parse_qsl(request.query_string, keep_blank_values=True))
        if request.method == "POST":
            params += parse_qsl(await request.text(), keep_blank_values=True)
        query = dict(reversed(params))  # the first of a repeated parameter wins
        command = query.get("command", "")
        self.requests.append(query)
        if not self._verify(params, query):
            self.refused += 1
            return self._error(command, 401, 401, AUTH_ERROR)
        handler = {"listVirtualMachines": self._list_vms, "listAccounts": self._list_accounts,
                   "listDomains": self._list_domains}.get(command)
        if handler is None:
            return self._error(command or "error", 432, 432,
                               "The given command does not exist or it is not available "
                               "for the user")
        try:
            response = handler(command, query)
        except LookupError as err:
            return self._error(command, 431, 431, str(err))
        if self.delay:  # the answer is as of the request; it arrives this much later
            await asyncio.sleep(self.delay)
        return response

    def _verify(self, params: list[tuple[str, str]], query: dict) -> bool:
        secret = self.keys.get(query.get("apiKey", query.get("apikey", "")))
        signature = query.get("signature")
        if secret is None or not signature:
            return False
        if query.get("signatureVersion") == "3":
            try:
                expires = datetime.strptime(query.get("expires", ""), "%Y-%m-%dT%H:%M:%S%z")
            except ValueError:
                return False
            if expires < datetime.now(UTC):
                return False
        return hmac.compare_digest(cloudstack_signature(params, secret), signature)

    @staticmethod
    def _page(command: str, item: str, items: list[dict], query: dict) -> web.Response:
        total = len(items)
        if "page" in query:
            size = int(query.get("pagesize") or 500)
            start = (int(query["page"]) - 1) * size
            items = items[start:start + size]
        inner = {"count": total, item: items} if items else {}
        return web.json_response({f"{command.lower()}response": inner})

    def _list_vms(self, command: str, query: dict) -> web.Response:
        vms = list(self.vms.values())
        if "id" in query:
            if query["id"] not in self.vms:
                raise LookupError("Unable to execute API command listvirtualmachines due to "
                                  "invalid value. Invalid parameter id value="
                                  f"{query['id']} due to incorrect long value format, or "
                                  "entity does not exist or due to incorrect parameter "
                                  "annotation for the field in api cmd class.")
            vms = [self.vms[query["id"]]]
        if "name" in query:
            vms = [v for v in vms if v["name"] == query["name"]]
        return self._page(command, "virtualmachine", vms, query)

    def _list_accounts(self, command: str, query: dict) -> web.Response:
        accounts = list(self.accounts.values())
        if "id" in query:
            accounts = [a for a in accounts if a["id"] == query["id"]]
        if "name" in query:
            accounts = [a for a in accounts if a["name"].lower() == query["name"].lower()]
        if "domainid" in query:
            accounts = [a for a in accounts if a["domainid"] == query["domainid"]]
        return self._page(command, "account", accounts, query)

    def _list_domains(self, command: str, query: dict) -> web.Response:
        domains = list(self.domains.values())
        if "id" in query:
            if query["id"] not in self.domains:
                raise LookupError(f"Unable to find domain by id {query['id']}")
            domains = [self.domains[query["id"]]]
        return self._page(command, "domain", domains, query)


class FakeCloudStackThread:
    """FakeCloudStack on its own event loop in a thread: synchronous calls for tests."""

    def __init__(self, keys: dict[str, str]):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cs = FakeCloudStack(keys)

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cs.port}/client/api"

    def start(self) -> int:
        return self.call(self.cs.start())

    def close(self) -> None:
        try:
            self.call(self.cs.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


# --- builders -------------------------------------------------------------------------------


def nic(ip: str, default: bool = True, ip6: str = "") -> dict:
    out = {"id": str(uuid.uuid4()), "networkid": str(uuid.uuid4()), "ipaddress": ip,
           "isdefault": default, "macaddress": "02:00:4c:5e:00:01", "type": "Isolated",
           "traffictype": "Guest"}
    if ip6:
        out["ip6address"] = ip6
        out["ip6cidr"] = "fd00:1::/64"
    return out


def make_vm(name: str, account: dict, ip: str = "", *, nics: list[dict] | None = None,
            group: str = "", state: str = "Running", ip6: str = "", vm_id: str = "") -> dict:
    vm = {"id": vm_id or str(uuid.uuid4()), "name": name, "displayname": f"{name} (display)",
          "account": account["name"], "domainid": account["domainid"],
          "domain": account["domain"], "state": state, "zonename": "zone1",
          "nic": nics if nics is not None else [nic(ip, ip6=ip6)]}
    if group:
        vm["group"] = group
        vm["groupid"] = str(uuid.uuid4())
    return vm


def job_event(event_type: str, vm: dict, status: str = "SUCCEEDED",
              result_form: str = "string", with_result: bool = True) -> dict:
    """An async-job event as CloudStack publishes it (`jobResult`: 4.11's string with the
    response class prefix, or a JSON object as newer releases send)."""
    msg = {"eventDateTime": "2026-12-07 16:00:00 +0000", "status": status,
           "processStatus": "0", "resultCode": "0" if status == "SUCCEEDED" else "530",
           "commandEventType": event_type, "instanceType": "VirtualMachine",
           "instanceUuid": vm["id"], "jobId": str(uuid.uuid4()),
           "user": str(uuid.uuid4()), "account": str(uuid.uuid4()),
           "cmdInfo": json.dumps({"id": vm["id"], "response": "json"})}
    if with_result and status == "SUCCEEDED":
        if result_form == "string":
            msg["jobResult"] = JOB_RESULT_PREFIX + json.dumps(vm)
        else:
            msg["jobResult"] = vm
    elif status != "SUCCEEDED":
        msg["jobResult"] = ("org.apache.cloudstack.api.response.ExceptionResponse/null/"
                            '{"uuidList":[],"errorcode":530,"errortext":"Failed"}')
    return msg


def action_event(event: str, vm_id: str, status: str = "Completed",
                 description: str = "") -> dict:
    return {"eventDateTime": "2026-12-07 16:00:00 +0000", "status": status, "event": event,
            "entity": "com.cloud.vm.VirtualMachine", "entityuuid": vm_id,
            "VirtualMachine": vm_id, "account": str(uuid.uuid4()),
            "user": str(uuid.uuid4()),
            "description": description or f"{event.lower()} vm. Vm Id: 42"}
