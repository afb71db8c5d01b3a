"""The Kubernetes sync (kubeapi/kubesync.py) against the fake API server (tests/fakekube.py,
the real list/watch protocol) and a real etcd: what lands in etcd, and when."""

import asyncio
import json
from contextlib import asynccontextmanager

import pytest

from kubeapi.etcd import EtcdStore
from kubeapi.kubesync import KubeSync
from kubeapi.plan import Layout

from apitest import REFS, STATUS
from etcdtest import async_wait_for, free_port, run_async
from fakekube import FakeKubeThread, endpoint_slice, make_cert, service

ZONE = "cluster.test."
SVC_PREFIX = "/skydns/test/cluster/svc/"
TOKEN = "sync-token"


def kube_section(url: str, token_file: str, **overrides) -> dict:
    section = {"kube-enable": True, "kube-master": url, "kube-token-file": token_file,
               "kube-cafile": "", "kube-config": "", "kube-namespaces": [],
               "kube-ip-source": ["external", "cluster"], "kube-watch-timeout": 30.0,
               "kube-backoff-max": 0.5}
    section.update(overrides)
    return section


@pytest.fixture
def fake():
    kube = FakeKubeThread(token=TOKEN, bookmark_interval=0.2)
    kube.start()
    yield kube
    kube.close()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


@asynccontextmanager
async def running_sync(etcd, url, token_file, **overrides):
    store = EtcdStore(etcd.etcd_section(**{"etcd-timeout": 1.0}))
    sync = KubeSync(kube_section(url, token_file, **overrides), store,
                    Layout(ZONE, STATUS, REFS), backoff_min=0.05)
    await sync.start()
    try:
        yield sync
    finally:
        await sync.stop()
        await store.close()


def kube_records(etcd) -> dict[str, list]:
    """name -> sorted [(type, host, port)] of the kubernetes-owned keys."""
    out: dict[str, list] = {}
    for key, value in etcd.get_prefix(SVC_PREFIX).items():
        obj = json.loads(value)
        if obj.get("owner") != "kubernetes":
            continue
        labels = key[len("/skydns/"):].split("/")[:-1]
        name = ".".join(reversed(labels)) + "."
        out.setdefault(name, []).append((obj["type"], obj["host"], obj.get("port", 0)))
    return {k: sorted(v) for k, v in out.items()}


def names(etcd) -> set[str]:
    return set(kube_records(etcd))


async def until(predicate, timeout=10.0, message=""):
    await async_wait_for(predicate, timeout=timeout, interval=0.05, message=message)


WEB = "web.default.svc.cluster.test."


def test_service_records_follow_adds_changes_and_deletes(etcd, fake, token_file):
    async def main():
        async with running_sync(etcd, fake.url, token_file) as sync:
            fake.put("services", service("web", cluster_ip="10.96.0.5"))
            await until(lambda: kube_records(etcd).get(WEB) == [("A", "10.96.0.5", 0)])
            assert kube_records(etcd)["_http._tcp." + WEB] == [("SRV", WEB, 80)]
            status = json.loads(etcd.get(STATUS + "10.96.0.5"))
            assert status == {"status": "UP", "ports": [80]}  # the scanners probe port 80
            fake.put("services", service("web", cluster_ip="10.96.0.5",
                                         external_ips=["192.0.2.9"], ports=(("http", 81),)))
            await until(lambda: kube_records(etcd).get(WEB) == [("A", "192.0.2.9", 0)])
            await until(lambda: kube_records(etcd)["_http._tcp." + WEB] == [("SRV", WEB, 81)])
            await until(lambda: etcd.get(STATUS + "10.96.0.5") is None,
                        message="the last reference gone takes the status key along")
            fake.delete("services", "default", "web")
            await until(lambda: names(etcd) == set())
            assert etcd.get(STATUS + "192.0.2.9") is None
            assert sync.stats.relists == 2 and sync.stats.synced >= 2

    run_async(main())


def test_api_server_starting_after_the_daemon(etcd, token_file):
    port = free_port()
    kube = FakeKubeThread(token=TOKEN, port=port)

    async def main():
        async with running_sync(etcd, f"http://127.0.0.1:{port}", token_file,
                                **{"kube-backoff-max": 0.3}) as sync:
            await until(lambda: sync.stats.errors.get("api", 0) >= 3)
            assert names(etcd) == set()
            kube.put("services", service("web", cluster_ip="10.96.0.6"))
            kube.start()
            await until(lambda: kube_records(etcd).get(WEB) == [("A", "10.96.0.6", 0)])
            # Backoff, not a storm: a handful of attempts per informer while it was away.
            failed = sync.stats.errors["api"]
            assert failed < 60, failed

    try:
        run_async(main())
    finally:
        kube.close()


def test_watch_cut_by_the_server_resumes_without_relisting(etcd, fake, token_file):
    async def main():
        async with running_sync(etcd, fake.url, token_file) as sync:
            fake.put("services", service("web", cluster_ip="10.96.0.7"))
            await until(lambda: WEB in names(etcd))
            relists = sync.stats.relists
            fake.cut_watches()
            await until(lambda: sync.stats.watch_restarts >= 2)
            fake.put("services", service("db", cluster_ip="10.96.0.8"))
            await until(lambda: "db.default.svc.cluster.test." in names(etcd))
            assert sync.stats.relists == relists
            # The resumed watch asked from the last version seen, not from scratch.
            watches = [p for m, p in fake.kube.requests if "watch=1" in p]
            assert all("resourceVersion=" in p and "resourceVersion=0" not in p for p in watches)
            assert any("allowWatchBookmarks=true" in p for p in watches)

    run_async(main())


@pytest.mark.parametrize("as_http", [False, True], ids=["error-event", "http-410"])
def test_410_relists_and_catches_a_delete_missed_in_the_gap(etcd, token_file, as_http):
    port = free_port()
    kube = FakeKubeThread(token=TOKEN, port=port)
    kube.kube.gone_as_http = as_http
    kube.start()

    async def main():
        async with running_sync(etcd, kube.url, token_file) as sync:
            kube.put("services", service("web", cluster_ip="10.96.0.9"))
            kube.put("services", service("db", cluster_ip="10.96.0.10"))
            await until(lambda: names(etcd) >= {WEB, "db.default.svc.cluster.test."})
            relists = sync.stats.relists
            kube.stop()  # the sync loses the server...
            kube.delete("services", "default", "db")  # ...a delete happens meanwhile...
            kube.put("services", service("new", cluster_ip="10.96.0.11"))
            kube.compact()  # ...and the history it would resume from is gone
            kube.start()
            await until(lambda: "db.default.svc.cluster.test." not in names(etcd))
            assert "new.default.svc.cluster.test." in names(etcd) and WEB in names(etcd)
            assert etcd.get(STATUS + "10.96.0.10") is None
            assert sync.stats.relists > relists

    try:
        run_async(main())
    finally:
        kube.close()


def test_a_service_deleted_while_the_sync_was_down_is_removed_at_start(etcd, fake, token_file):
    async def main():
        async with running_sync(etcd, fake.url, token_file):
            fake.put("services", service("web", cluster_ip="10.96.0.12"))
            fake.put("services", service("db", cluster_ip="10.96.0.13"))
            await until(lambda: len(names(etcd)) == 4)
        fake.delete("services", "default", "db")
        async with running_sync(etcd, fake.url, token_file):
            await until(lambda: names(etcd) == {WEB, "_http._tcp." + WEB})

    run_async(main())


def test_headless_endpoints_turning_ready_touch_only_their_keys(etcd, fake, token_file):
    sub = "_http._tcp." + WEB

    async def main():
        async with running_sync(etcd, fake.url, token_file) as sync:
            fake.put("services", service("web", headless=True))
            fake.put("endpointslices", endpoint_slice("web", [
                ("10.1.0.1", True, "web-0"), ("10.1.0.2", False, "web-1")]))
            await until(lambda: kube_records(etcd).get(WEB) == [("A", "10.1.0.1", 0)])
            recs = kube_records(etcd)
            assert recs["web-0." + WEB] == [("A", "10.1.0.1", 0)]
            assert "web-1." + WEB not in recs
            assert recs[sub] == [("SRV", "web-0." + WEB, 8080)]
            # The keys can be visible before the sync counts its commit: wait for the count.
            await until(lambda: sync.stats.etcd_ops == 5)  # 3 record keys, refs, status
            before = {k: rev for k, rev in mod_revisions(etcd).items()}
            ops = sync.stats.etcd_ops
            fake.put("endpointslices", endpoint_slice("web", [
                ("10.1.0.1", True, "web-0"), ("10.1.0.2", True, "web-1")]))
            await until(lambda: len(kube_records(etcd).get(WEB, [])) == 2)
            await until(lambda: sync.stats.etcd_ops > ops)
            recs = kube_records(etcd)
            assert recs["web-1." + WEB] == [("A", "10.1.0.2", 0)]
            assert recs[sub] == [("SRV", "web-0." + WEB, 8080), ("SRV", "web-1." + WEB, 8080)]
            after = mod_revisions(etcd)
            # The ready endpoint's keys were not rewritten: no gap in its answers.
            assert all(after[k] == rev for k, rev in before.items()), "existing keys rewritten"
            # 3 record keys (A at the service, A at web-1, SRV) + refs + status of 10.1.0.2
            assert sync.stats.etcd_ops - ops == 5
            # And back: not ready again removes exactly those.
            fake.put("endpointslices", endpoint_slice("web", [
                ("10.1.0.1", True, "web-0"), ("10.1.0.2", False, "web-1")]))
            await until(lambda: "web-1." + WEB not in names(etcd))
            assert etcd.get(STATUS + "10.1.0.2") is None

    run_async(main())


def mod_revisions(etcd) -> dict[str, int]:
    out = etcd.etcdctl("get", "--prefix", "/skydns/", "-w", "json")
    return {_b64(kv["key"]): kv["mod_revision"] for kv in json.loads(out).get("kvs", [])}


def _b64(text: str) -> str:
    import base64

    return base64.b64decode(text).decode()


def test_namespaces_limit_what_is_synced(etcd, fake, token_file):
    async def main():
        async with running_sync(etcd, fake.url, token_file,
                                **{"kube-namespaces": ["team-a"]}):
            fake.put("services", service("web", "team-b", cluster_ip="10.96.1.2"))
            fake.put("services", service("web", "team-a", cluster_ip="10.96.1.1"))
            await until(lambda: "web.team-a.svc.cluster.test." in names(etcd))
            await asyncio.sleep(0.3)  # a team-b record would have been written by now
            assert "web.team-b.svc.cluster.test." not in names(etcd)
            assert all("/namespaces/team-a/" in p for _, p in fake.kube.requests
                       if "services" in p or "endpointslices" in p)

    run_async(main())


@pytest.mark.parametrize("source,want", [
    (["external", "cluster"], ["192.0.2.20", "192.0.2.21"]),
    (["cluster"], ["10.96.2.1"]),
    (["cluster", "external"], ["10.96.2.1"]),
])
def test_external_vs_cluster_ips(etcd, fake, token_file, source, want):
    async def main():
        async with running_sync(etcd, fake.url, token_file, **{"kube-ip-source": source}):
            fake.put("services", service("web", cluster_ip="10.96.2.1",
                                         external_ips=["192.0.2.20"], lb_ips=["192.0.2.21"]))
            fake.put("services", service("plain", cluster_ip="10.96.2.2"))
            await until(lambda: [h for _, h, _ in kube_records(etcd).get(WEB, [])] == want)
            # A service without external addresses falls back to the next kind.
            await until(lambda: kube_records(etcd).get("plain.default.svc.cluster.test.")
                        == [("A", "10.96.2.2", 0)])

    run_async(main())


def test_external_name_is_a_cname(etcd, fake, token_file):
    async def main():
        async with running_sync(etcd, fake.url, token_file):
            fake.put("services", service("web", external_name="db.example.org"))
            await until(lambda: kube_records(etcd).get(WEB) == [("CNAME", "db.example.org.", 0)])
            fake.put("services", service("web", cluster_ip="10.96.3.1"))
            await until(lambda: kube_records(etcd).get(WEB) == [("A", "10.96.3.1", 0)])

    run_async(main())


def test_relists_keep_status_and_other_owners_records(etcd, token_file):
    mine = "/skydns/test/cluster/svc/default/web/extra/aaaa0001"
    other = "/skydns/test/cluster/svc/default/other/aaaa0002"
    etcd.put(mine, {"host": "192.0.2.50", "type": "A", "owner": "alice"})
    etcd.put(other, {"host": "192.0.2.51", "type": "A", "owner": "alice"})

    fake = FakeKubeThread(token=TOKEN, port=free_port())
    fake.start()

    async def main():
        async with running_sync(etcd, fake.url, token_file) as sync:
            fake.put("services", service("web", cluster_ip="10.96.4.1"))
            fake.put("services", service("other", cluster_ip="10.96.4.2"))
            await until(lambda: WEB in names(etcd))
            etcd.put(STATUS + "10.96.4.1", {"status": "DOWN", "ports": [80]})
            revs = mod_revisions(etcd)
            relists = sync.stats.relists
            fake.stop()
            fake.put("services", service("unrelated", cluster_ip="10.96.4.3"))
            fake.compact()
            fake.start()
            await until(lambda: sync.stats.relists >= relists + 2)
            await until(lambda: sync.stats.synced > 0 and not sync.dirty)
            await asyncio.sleep(0.2)
            after = mod_revisions(etcd)
            assert after[mine] == revs[mine] and after[other] == revs[other]
            assert json.loads(etcd.get(STATUS + "10.96.4.1"))["status"] == "DOWN"
            # `other` is held by alice: the sync leaves that name alone and says so.
            assert "other.default.svc.cluster.test." not in names(etcd)
            assert sync.stats.errors.get("foreign", 0) >= 1
            assert all(after[k] == rev for k, rev in revs.items() if k.startswith(SVC_PREFIX))

    try:
        run_async(main())
    finally:
        fake.close()


def test_kubeconfig_with_tls_and_token(etcd, tmp_path):
    cert, key = make_cert(tmp_path)
    kube = FakeKubeThread(token=TOKEN, tls=(cert, key))
    kube.start()
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "fake", "cluster": {"server": kube.url,
                                                  "certificate-authority": cert}}],
        "users": [{"name": "sync", "user": {"token": TOKEN}}],
        "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "sync"}}]}))

    async def main():
        async with running_sync(etcd, "", "", **{"kube-master": "",
                                                 "kube-config": str(config)}):
            kube.put("services", service("web", cluster_ip="10.96.5.1"))
            await until(lambda: kube_records(etcd).get(WEB) == [("A", "10.96.5.1", 0)])

    try:
        run_async(main())
    finally:
        kube.close()


def test_wrong_token_is_an_error_and_retried(etcd, fake, tmp_path):
    bad = tmp_path / "bad-token"
    bad.write_text("not-the-token")

    async def main():
        async with running_sync(etcd, fake.url, str(bad)) as sync:
            await until(lambda: sync.stats.errors.get("api", 0) >= 2)
            assert names(etcd) == set()
            bad.write_text(TOKEN)  # a rotated token file is read again
            fake.put("services", service("web", cluster_ip="10.96.5.2"))
            await until(lambda: WEB in names(etcd))

    run_async(main())


def test_etcd_outage_delays_but_never_stops_the_sync(etcd, fake, token_file):
    async def main():
        async with running_sync(etcd, fake.url, token_file) as sync:
            fake.put("services", service("web", cluster_ip="10.96.6.1"))
            await until(lambda: WEB in names(etcd))
            etcd.pause()
            try:
                fake.put("services", service("db", cluster_ip="10.96.6.2"))
                await until(lambda: sync.stats.errors.get("etcd", 0) >= 1, timeout=15)
            finally:
                etcd.resume()
            await until(lambda: "db.default.svc.cluster.test." in names(etcd), timeout=15)
            assert all(t.done() is False for t in sync._tasks)

    run_async(main())


def test_a_big_headless_service_is_written_in_several_transactions(etcd, fake, token_file):
    ips = [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(150)]

    async def main():
        async with running_sync(etcd, fake.url, token_file) as sync:
            fake.put("services", service("web", headless=True))
            fake.put("endpointslices", endpoint_slice("web", [(ip, True, f"w-{i}")
                                                              for i, ip in enumerate(ips)]))
            await until(lambda: len(kube_records(etcd).get(WEB, [])) == 150, timeout=30)
            await until(lambda: len(etcd.get_prefix(STATUS)) == 150)
            fake.delete("services", "default", "web")
            await until(lambda: names(etcd) == set(), timeout=30)
            assert etcd.get_prefix(STATUS) == {} and etcd.get_prefix(REFS) == {}
            assert "internal" not in sync.stats.errors

    run_async(main())


def test_watches_end_by_timeout_seconds_and_resume(etcd, fake, token_file):
    async def main():
        async with running_sync(etcd, fake.url, token_file,
                                **{"kube-watch-timeout": 1.0}) as sync:
            await until(lambda: sync.stats.watch_restarts >= 4)
            fake.put("services", service("web", cluster_ip="10.96.7.1"))
            await until(lambda: WEB in names(etcd))
            assert sync.stats.relists == 2
            assert any("timeoutSeconds=1" in p for _, p in fake.kube.requests)

    run_async(main())
