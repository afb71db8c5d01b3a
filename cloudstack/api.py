"""The CloudStack API, as much of it as skydns-cloudstack needs: signed GET requests.

Signing (`sign`, pure) is CloudStack's: the parameters sorted by name, each value URL-encoded
as Java's URLEncoder does (spaces as %20), joined with '&', the whole string lower-cased,
HMAC-SHA1 with the secret key, base64. With `expires` the request also carries
`signatureVersion=3` and the expiry time (both signed), so a captured URL stops working.

Errors: `Missing` for CloudStack's "entity does not exist" (error 431: the VM is gone, not an
outage); `ApiDown` for everything the caller should retry (network, timeouts, 5xx, a refused
signature, which may be a key being rotated).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import aiohttp

log = logging.getLogger("skydns.cloudstack.api")

EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
NOT_FOUND = 431  # CloudStack's ApiErrorCode.PARAM_ERROR, what a lookup of a gone id answers


class ApiDown(Exception):
    """The CloudStack API did not answer usefully; try again later."""


class Missing(Exception):
    """CloudStack says the entity does not exist (error 431)."""


def encode_value(value: str) -> str:
    # java.net.URLEncoder keeps only [A-Za-z0-9.*_-]; '+' for space becomes %20 in CloudStack.
    return quote(value, safe="*").replace("~", "%7E")


def sign(params: dict[str, str], secret: str) -> str:
    """The signature CloudStack computes for these parameters (without `signature`)."""
    text = "&".join(f"{k}={encode_value(str(v))}" for k, v in sorted(params.items())
                    if k.lower() != "signature")
    digest = hmac.new(secret.encode(), text.lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_params(command: str, params: dict, api_key: str, secret: str,
                  expires: datetime | None = None) -> dict[str, str]:
    """The full query of one call: command, response=json, apiKey, [v3 expiry], signature."""
    out = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    out.update(command=command, response="json", apiKey=api_key)
    if expires is not None:
        out["signatureVersion"] = "3"
        out["expires"] = expires.astimezone(UTC).strftime(EXPIRES_FORMAT)
    out["signature"] = sign(out, secret)
    return out


def unwrap(command: str, body) -> dict:
    """`{"<command>response": {...}}` -> the inner object (CloudStack lower-cases the name)."""
    if not isinstance(body, dict):
        raise ApiDown(f"{command}: the answer is not a JSON object")
    inner = body.get(command.lower() + "response")
    if inner is None and len(body) == 1:
        inner = next(iter(body.values()))
    if not isinstance(inner, dict):
        raise ApiDown(f"{command}: no {command.lower()}response in the answer")
    return inner


class CloudStackClient:
    def __init__(self, section: dict, session: aiohttp.ClientSession | None = None,
                 signature_ttl: float = 600.0):
        self.endpoint = section["endpoint"]
        self.api_key = section["api-key"]
        self.secret = section["secret-key"]
        self.verify = section["verify-tls"]
        self.timeout = section["timeout"]
        self.page_size = section["page-size"]
        self.signature_ttl = signature_ttl  # v3 expiry; <= 0: version 1 signatures
        self._session = session
        self.calls = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(ssl=None if self.verify else False))
        return self._session

    async def call(self, command: str, **params) -> dict:
        expires = None
        if self.signature_ttl > 0:
            expires = datetime.now(UTC) + timedelta(seconds=self.signature_ttl)
        query = signed_params(command, params, self.api_key, self.secret, expires)
        self.calls += 1
        try:
            async with self._client().get(self.endpoint, params=query) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise ApiDown(f"{command}: {type(err).__name__}: {err}") from None
        try:
            body = json.loads(text)
        except ValueError:
            raise ApiDown(f"{command}: HTTP {status}, not JSON") from None
        if status != 200:
            inner = unwrap(command, body) if isinstance(body, dict) else {}
            code = inner.get("errorcode", status)
            reason = inner.get("errortext", "")
            if code == NOT_FOUND:
                raise Missing(f"{command}: {reason}")
            raise ApiDown(f"{command}: HTTP {status} error {code}: {reason}")
        return unwrap(command, body)

    async def list_all(self, command: str, item: str, **params) -> list[dict]:
        """Every item of a list command, page by page (CloudStack caps a page's size)."""
        out: list[dict] = []
        page = 1
        while True:
            inner = await self.call(command, page=page, pagesize=self.page_size, **params)
            items = inner.get(item) or []
            if not isinstance(items, list):
                raise ApiDown(f"{command}: {item} is not a list")
            out.extend(i for i in items if isinstance(i, dict))
            count = inner.get("count")
            if not items or len(items) < self.page_size or \
                    (isinstance(count, int) and len(out) >= count):
                return out
            page += 1

    async def virtual_machine(self, vm_id: str) -> dict | None:
        """One VM by id (listall: any account's), None when CloudStack has none."""
        try:
            inner = await self.call("listVirtualMachines", id=vm_id, listall=True)
        except Missing:
            return None
        vms = inner.get("virtualmachine") or []
        return vms[0] if isinstance(vms, list) and vms and isinstance(vms[0], dict) else None
