"""Reading the Kubernetes API: connection settings, paged lists, watch streams (raw JSON).

kubernetes_asyncio supplies what is hard to get right alone (kubeconfig contexts and their
auth plugins, in-cluster service account token and CA, TLS); the requests go through its
ApiClient with `_preload_content=False`, so objects stay plain JSON (no model building, which
would cost more than the rest of the sync) and every status code reaches the caller: a 410
means "relist", anything else "retry".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

log = logging.getLogger("skydns.kubeapi.kube")

LIST_PAGE = 500  # items per list request, as kubectl and the client-go reflector ask


class KubeError(Exception):
    """A request to the Kubernetes API failed (status 0: no answer at all)."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"{status or 'no answer'}: {reason}" if status else reason)
        self.status = status


class Gone(KubeError):
    """410: the resourceVersion is older than the server keeps; list again."""


@dataclass(frozen=True, slots=True)
class Resource:
    """A listable kind: its path for all namespaces and for one."""

    name: str  # "services", "endpointslices"
    group_path: str  # "/api/v1", "/apis/discovery.k8s.io/v1"

    def path(self, namespace: str | None) -> str:
        if namespace:
            return f"{self.group_path}/namespaces/{namespace}/{self.name}"
        return f"{self.group_path}/{self.name}"


SERVICES = Resource("services", "/api/v1")
ENDPOINTSLICES = Resource("endpointslices", "/apis/discovery.k8s.io/v1")


async def make_configuration(kube: dict):
    """A kubernetes_asyncio Configuration from the [Kube2Skydns] keys (see the README)."""
    from kubernetes_asyncio import client, config

    conf = client.Configuration()
    if kube["kube-config"]:
        await config.load_kube_config(config_file=kube["kube-config"],
                                      client_configuration=conf, persist_config=False)
    elif kube["kube-master"]:
        conf.host = kube["kube-master"]
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=conf)
    else:
        raise KubeError(0, "no API server: set [Kube2Skydns] kube-master or kube-config "
                           "(or run in a cluster)")
    if kube["kube-cafile"]:
        conf.ssl_ca_cert = kube["kube-cafile"]
    return conf


class KubeClient:
    def __init__(self, kube: dict):
        self.kube = kube
        self._api = None

    async def _client(self):
        if self._api is None:
            from kubernetes_asyncio import client

            try:
                conf = await make_configuration(self.kube)
            except KubeError:
                raise
            except Exception as err:  # a broken kubeconfig, no service account files, ...
                raise KubeError(0, f"cannot configure the Kubernetes client: {err}") from None
            self._api = client.ApiClient(conf)
        token_file = self.kube["kube-token-file"]
        if token_file:
            # Re-read every time: projected service account tokens are rotated on disk.
            try:
                with open(token_file, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as err:
                raise KubeError(0, f"cannot read kube-token-file: {err}") from None
            conf = self._api.configuration
            conf.api_key["BearerToken"] = token
            conf.api_key_prefix["BearerToken"] = "Bearer"
        return self._api

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def _get(self, path: str, query: list, timeout):
        api = await self._client()
        try:
            return await api.call_api(path, "GET", query_params=query,
                                      header_params={"Accept": "application/json"},
                                      auth_settings=["BearerToken"], _preload_content=False,
                                      _request_timeout=timeout)
        except Exception as err:  # aiohttp and the client's own errors: no answer
            raise KubeError(0, f"{type(err).__name__}: {err}") from None

    @staticmethod
    async def _check(resp) -> None:
        if 200 <= resp.status < 300:
            return
        try:
            body = await resp.read()
            reason = json.loads(body).get("message") or body[:200].decode(errors="replace")
        except Exception:
            reason = resp.reason or ""
        finally:
            resp.release()
        cls = Gone if resp.status == 410 else KubeError
        raise cls(resp.status, str(reason))

    async def list(self, resource: Resource, namespace: str | None,
                   timeout: float = 60.0) -> tuple[list[dict], str]:
        """Every object (paged), and the resourceVersion the list is consistent at."""
        items: list[dict] = []
        token = ""
        while True:
            query = [("limit", LIST_PAGE)] + ([("continue", token)] if token else [])
            resp = await self._get(resource.path(namespace), query, timeout)
            await self._check(resp)
            try:
                body = json.loads(await resp.read())
            except Exception as err:
                raise KubeError(resp.status, f"unreadable list: {err}") from None
            finally:
                resp.release()
            items.extend(i for i in body.get("items") or [] if isinstance(i, dict))
            meta = body.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def watch(self, resource: Resource, namespace: str | None, version: str,
                    timeout: float) -> AsyncIterator[dict]:
        """The events of one watch request from `version`, until the server ends it."""
        query = [("watch", "1"), ("resourceVersion", version),
                 ("allowWatchBookmarks", "true"), ("timeoutSeconds", int(max(1, timeout)))]
        # The server ends the watch after timeoutSeconds; reading longer than that (plus a
        # margin) without a byte means the connection is dead.
        import aiohttp

        resp = await self._get(resource.path(namespace), query,
                               aiohttp.ClientTimeout(sock_connect=10, sock_read=timeout + 30))
        await self._check(resp)
        try:
            while True:
                try:
                    line = await resp.content.readline()
                except Exception as err:
                    raise KubeError(0, f"watch cut: {type(err).__name__}: {err}") from None
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise KubeError(resp.status, "unreadable watch event") from None
                if isinstance(event, dict):
                    yield event
        finally:
            resp.release()
