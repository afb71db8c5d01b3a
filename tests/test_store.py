import asyncio
import contextlib
import logging
import shutil
import subprocess

import pytest

from skydns import store
from skydns.store import KV, Mirror, load_prefix, make_client

from etcdtest import EtcdServer, async_wait_for, run_async

P = "/skydns/test/"


class Recorder:
    """A Mirror caller that keeps a dict copy and everything it was told."""

    def __init__(self):
        self.state: dict[str, bytes] = {}
        self.resets: list[tuple[list[KV], int]] = []
        self.batches: list[tuple[list[tuple[str, KV]], int]] = []

    def on_reset(self, kvs, revision):
        self.resets.append((kvs, revision))
        self.state = {kv.key: kv.value for kv in kvs}

    def on_events(self, batch, revision):
        self.batches.append((batch, revision))
        for kind, kv in batch:
            if kind == "put":
                self.state[kv.key] = kv.value
            else:
                self.state.pop(kv.key, None)

    @property
    def events(self) -> list[tuple[str, KV]]:
        return [event for batch, _ in self.batches for event in batch]

    def seen(self, key: str) -> bool:
        return any(kv.key == key for _, kv in self.events)


@contextlib.asynccontextmanager
async def mirrored(section, prefix=P, recorder=None, wait_ready=True, setup=None, **kwargs):
    recorder = recorder or Recorder()
    mirror = Mirror(section, prefix, recorder.on_reset, recorder.on_events, **kwargs)
    if setup:
        setup(mirror)
    task = asyncio.create_task(mirror.run())
    try:
        if wait_ready:
            await asyncio.wait_for(mirror.ready.wait(), 10)
            # Writes made before the watch exists come in one catch-up batch; tests that
            # look at batches want the watch live first.
            await async_wait_for(lambda: mirror.connected, message="watch created")
        yield mirror, recorder
    finally:
        await asyncio.wait_for(mirror.stop(), 10)
        await task  # run() must end cleanly, never raise
    assert not mirror.connected


def etcd_state(etcd, prefix=P) -> dict[str, bytes]:
    return {k: v.encode() for k, v in etcd.get_prefix(prefix).items()}


# --- loading -----------------------------------------------------------------------------------


def test_load_in_pages_gives_every_key_once_at_one_revision(etcd):
    etcd.put_many({f"{P}k{i:03d}": {"host": f"10.0.{i // 256}.{i % 256}"} for i in range(230)})
    etcd.put_many({"/skydns/testx/outside": "no", "/skydns/tes": "no"})

    async def main():
        async with mirrored(etcd.etcd_section(), page_size=50) as (mirror, rec):
            assert len(rec.resets) == 1
            kvs, revision = rec.resets[0]
            keys = [kv.key for kv in kvs]
            assert keys == sorted(f"{P}k{i:03d}" for i in range(230))
            assert revision == etcd.revision() == mirror.revision
            assert all(0 < kv.mod_revision <= revision and kv.lease == 0 for kv in kvs)
            assert kvs[7].value == b'{"host": "10.0.0.7"}'

    run_async(main())


class FirstPageHook:
    """Wraps a KV stub to run a hook right after the first Range page is returned."""

    def __init__(self, stub, hook):
        self.stub, self.hook, self.calls = stub, hook, 0

    async def Range(self, request, **kwargs):
        response = await self.stub.Range(request, **kwargs)
        self.calls += 1
        if self.calls == 1:
            await asyncio.to_thread(self.hook)
        return response


def test_load_pages_are_pinned_to_the_first_page_revision(etcd):
    etcd.put_many({f"{P}k{i}": "v" for i in range(10)})
    before = etcd.revision()

    def write_between_pages():
        etcd.put(f"{P}k9", "changed")
        etcd.put(f"{P}new", "late")
        etcd.delete(f"{P}k8")

    async def main():
        client = make_client(etcd.etcd_section())
        await client.connect()
        hooked = client.kvstub = FirstPageHook(client.kvstub, write_between_pages)
        try:
            kvs, revision = await load_prefix(client, P, page_size=3)
        finally:
            await client.close()
        assert hooked.calls == 4
        assert revision == before
        assert {kv.key: kv.value for kv in kvs} == {f"{P}k{i}": b"v" for i in range(10)}

        async with make_client(etcd.etcd_section()) as client:
            assert await load_prefix(client, "/skydns/nothing-here/") == ([], etcd.revision())

    run_async(main())


# --- watching ----------------------------------------------------------------------------------


def test_events_arrive_in_order_with_revisions_and_only_under_the_prefix(etcd):
    etcd.put(f"{P}existing", "1")

    async def main():
        async with mirrored(etcd.etcd_section()) as (mirror, rec):
            start = mirror.revision
            etcd.put(f"{P}a", {"host": "10.0.0.1"})
            etcd.put("/skydns/testx/a", "other prefix")
            etcd.put(f"{P}b", "2")
            etcd.delete(f"{P}a")
            etcd.put_many({f"{P}t1": "x", f"{P}t2": "y", f"{P}t3": "z"})  # one transaction
            etcd.put(f"{P}done", "")
            await async_wait_for(lambda: rec.seen(f"{P}done"), message="last event")

            kinds = [(kind, kv.key) for kind, kv in rec.events]
            assert kinds == [("put", f"{P}a"), ("put", f"{P}b"), ("delete", f"{P}a"),
                             ("put", f"{P}t1"), ("put", f"{P}t2"), ("put", f"{P}t3"),
                             ("put", f"{P}done")]
            revisions = [kv.mod_revision for _, kv in rec.events]
            assert revisions[0] == start + 1
            assert revisions[:3] == sorted(set(revisions[:3]))
            assert revisions[3] == revisions[4] == revisions[5] < revisions[6]
            assert [len(batch) for batch, _ in rec.batches] == [1, 1, 1, 3, 1]
            assert all(rev == batch[-1][1].mod_revision for batch, rev in rec.batches)

            deleted = rec.events[2][1]
            assert deleted.value == b"" and deleted.mod_revision == revisions[2]
            assert rec.events[0][1].value == b'{"host": "10.0.0.1"}'
            assert mirror.revision == revisions[-1] == etcd.revision()
            assert rec.state == etcd_state(etcd)
            assert len(rec.resets) == 1

    run_async(main())


def test_a_raising_callback_does_not_stop_the_mirror(etcd, caplog):
    rec = Recorder()

    def on_events(batch, revision):
        if any(kv.key.endswith("boom") for _, kv in batch):
            raise ValueError("bad record")
        rec.on_events(batch, revision)

    def on_reset(kvs, revision):
        raise RuntimeError("index broken")

    async def main():
        mirror = Mirror(etcd.etcd_section(), P, on_reset, on_events)
        task = asyncio.create_task(mirror.run())
        await asyncio.wait_for(mirror.ready.wait(), 10)  # ready although on_reset raised
        await async_wait_for(lambda: mirror.connected)
        etcd.put(f"{P}boom", "x")
        etcd.put(f"{P}after", "y")
        await async_wait_for(lambda: rec.seen(f"{P}after"))
        assert mirror.revision == etcd.revision()
        await mirror.stop()
        await task

    with caplog.at_level(logging.ERROR, logger="skydns.store"):
        run_async(main())
    # the house log style: a fixed message, the details as kv fields
    fields = [(r.getMessage(), r.kv) for r in caplog.records]
    assert any(m == "on_reset callback failed" and kv["prefix"] == P for m, kv in fields)
    assert any(m == "on_events callback failed" and f"{P}boom" in kv["keys"] for m, kv in fields)


# --- outages -----------------------------------------------------------------------------------


def test_etcd_restart_resumes_the_watch_without_a_reload(etcd):
    async def main():
        async with mirrored(etcd.etcd_section()) as (mirror, rec):
            etcd.put(f"{P}before", "1")
            await async_wait_for(lambda: rec.seen(f"{P}before"))
            await asyncio.to_thread(etcd.restart)
            etcd.put(f"{P}after", "2")
            await async_wait_for(lambda: rec.seen(f"{P}after"), timeout=10)
            await async_wait_for(lambda: mirror.connected)
            assert len(rec.resets) == 1
            assert rec.state == etcd_state(etcd)

    run_async(main())


def hold_reconnects(mirror):
    mirror.reconnect_gate.clear()


def test_writes_made_before_the_mirror_reconnects_are_not_lost(etcd):
    etcd.put(f"{P}old", "1")

    async def main():
        async with mirrored(etcd.etcd_section(), setup=hold_reconnects) as (mirror, rec):
            await asyncio.to_thread(etcd.restart)
            await async_wait_for(lambda: not mirror.connected, message="mirror saw the restart")
            etcd.put(f"{P}new", "2")
            etcd.delete(f"{P}old")
            mirror.reconnect_gate.set()
            await async_wait_for(lambda: rec.seen(f"{P}old"), timeout=10)
            assert [(kind, kv.key) for kind, kv in rec.events] == [
                ("put", f"{P}new"), ("delete", f"{P}old")]
            assert len(rec.resets) == 1
            assert rec.state == etcd_state(etcd) == {f"{P}new": b"2"}

    run_async(main())


def test_compacted_resume_revision_reloads_everything(etcd):
    etcd.put_many({f"{P}keep": "1", f"{P}gone": "2"})

    async def main():
        async with mirrored(etcd.etcd_section(), setup=hold_reconnects) as (mirror, rec):
            await asyncio.to_thread(etcd.restart)
            await async_wait_for(lambda: not mirror.connected, message="mirror saw the restart")
            etcd.put(f"{P}new", "3")
            etcd.delete(f"{P}gone")
            compacted = etcd.compact()
            assert compacted > mirror.revision + 1
            mirror.reconnect_gate.set()
            await async_wait_for(lambda: len(rec.resets) == 2, timeout=10)
            kvs, revision = rec.resets[1]
            assert revision == etcd.revision()
            assert {kv.key: kv.value for kv in kvs} == {f"{P}keep": b"1", f"{P}new": b"3"}
            assert rec.events == []
            etcd.put(f"{P}later", "4")  # and the watch runs again after the reload
            await async_wait_for(lambda: rec.seen(f"{P}later"))
            assert rec.state == etcd_state(etcd)

    run_async(main())


def test_watchdog_notices_a_frozen_server(etcd):
    section = etcd.etcd_section(**{"etcd-timeout": 0.5})

    def fast_watchdog(mirror):
        mirror.watchdog_interval = 0.2

    async def main():
        async with mirrored(section, setup=fast_watchdog) as (mirror, rec):
            await async_wait_for(lambda: mirror.connected)
            etcd.pause()
            try:
                await async_wait_for(lambda: not mirror.connected, message="watchdog fired")
            finally:
                etcd.resume()
            etcd.put(f"{P}after", "1")
            await async_wait_for(lambda: rec.seen(f"{P}after"), timeout=10)
            assert len(rec.resets) == 1

    run_async(main())


def test_starts_before_etcd_and_logs_one_line_per_failed_attempt(etcd, caplog):
    etcd.put(f"{P}k", "v")
    etcd.stop()

    async def main():
        async with mirrored(etcd.etcd_section(), wait_ready=False) as (mirror, rec):
            await async_wait_for(lambda: len(store_warnings()) >= 3, message="retries")
            assert not mirror.ready.is_set()
            await asyncio.to_thread(etcd.start)
            await asyncio.wait_for(mirror.ready.wait(), 10)
            assert rec.state == {f"{P}k": b"v"}

    def store_warnings():
        return [r for r in caplog.records if r.name == "skydns.store" and r.levelno >= 30]

    with caplog.at_level(logging.WARNING, logger="skydns.store"):
        run_async(main())
    failures = store_warnings()
    assert len(failures) >= 3
    for record in failures:
        assert record.exc_info is None
        assert record.getMessage() == "etcd session failed" and record.kv["prefix"] == P
        assert "\n" not in record.kv["error"]
    attempts = [r.kv["attempt"] for r in failures]
    assert attempts == list(range(1, len(attempts) + 1))


def test_stop_ends_run_while_etcd_is_down(etcd):
    async def main():
        async with mirrored(etcd.etcd_section()) as (mirror, _):
            await asyncio.to_thread(etcd.stop)
            await async_wait_for(lambda: not mirror.connected)
        # leaving the block stopped the mirror while it was backing off

    run_async(main())


# --- helpers -----------------------------------------------------------------------------------


def test_lease_ttls_reports_live_leases_only(etcd):
    live = etcd.grant_lease(30)
    dead = etcd.grant_lease(30)
    etcd.revoke_lease(dead)

    async def main():
        async with make_client(etcd.etcd_section()) as client:
            return await store.lease_ttls(client, [live, dead, 0, 0x1234, live])

    assert run_async(main()) == {live: 30}
    etcd.revoke_lease(live)


def test_make_client_parses_servers_and_tls_settings(tmp_path):
    plain = make_client({"etcd-servers": ["http://127.0.0.1:4001"]})
    assert (plain.target, plain.tls, plain._timeout) == ("127.0.0.1:4001", False, 5.0)
    both = make_client({"etcd-servers": "10.1.1.1:2380, 10.1.1.2:2380"})
    assert both.target == "ipv4:10.1.1.1:2380,10.1.1.2:2380"
    v6 = make_client({"etcd-servers": ["http://[::1]:2379"], "etcd-timeout": 1.5})
    assert (v6.target, v6._timeout) == ("[::1]:2379", 1.5)
    assert make_client({"etcd-servers": ["https://etcd.example"]}).tls

    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"not really a cert")
    section = {"etcd-servers": ["http://127.0.0.1:2379"], "etcd-cafile": str(ca)}
    assert make_client(section).tls
    with pytest.raises(ValueError, match="etcd-certfile and etcd-keyfile"):
        make_client({**section, "etcd-certfile": str(ca)})
    with pytest.raises(ValueError, match="etcd-keyfile .*missing"):
        make_client({**section, "etcd-certfile": str(ca), "etcd-keyfile": "/missing"})
    with pytest.raises(ValueError, match="bad etcd server URL"):
        make_client({"etcd-servers": ["ftp://x"]})


def test_prefix_range_end():
    assert store.prefix_range_end(b"/a/") == b"/a0"
    assert store.prefix_range_end(b"a\xff") == b"b"
    assert store.prefix_range_end(b"\xff") == b"\0"


def test_etcd_fixture_helpers(etcd):
    """The etcdctl-based helpers every test file relies on."""
    etcd.put(f"{P}json", {"host": "10.0.0.1", "port": 80})
    etcd.put(f"{P}empty", "")
    etcd.put(f"{P}dash", "-starts with a dash\nand has two lines")
    etcd.put_many({f"{P}m{i}": f'"quoted" value {i} é' for i in range(300)})
    etcd.put_many([(f"{P}raw", b"\xff\x00"), (f"{P}-dashkey", "x")])
    assert etcd.get(f"{P}json") == '{"host": "10.0.0.1", "port": 80}'
    assert etcd.get(f"{P}empty") == ""
    assert etcd.get(f"{P}dash") == "-starts with a dash\nand has two lines"
    assert etcd.get(f"{P}missing") is None
    assert etcd.get(f"{P}m299") == '"quoted" value 299 é'
    assert etcd.get(f"{P}-dashkey") == "x"
    assert len(etcd.get_prefix(P)) == 305
    assert etcd.get(f"{P}raw") == "\ufffd\x00"
    assert etcd.delete(f"{P}json") == 1 and etcd.delete(f"{P}json") == 0
    assert etcd.delete_prefix(f"{P}m") == 300

    lease = etcd.grant_lease(60)
    etcd.put(f"{P}leased", "v", lease=lease)

    async def leases():
        async with make_client(etcd.etcd_section()) as client:
            return (await client.get(f"{P}leased".encode())).lease

    assert run_async(leases()) == lease
    etcd.revoke_lease(lease)
    assert etcd.get(f"{P}leased") is None

    rev = etcd.revision()
    assert etcd.compact() == rev
    assert etcd.compact() == rev  # compacting again to the same revision is not an error


# --- separate servers --------------------------------------------------------------------------


def make_certs(d):
    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    for name in ("server", "client"):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        (d / f"{name}.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth,clientAuth\n")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    return {"ca": str(d / "ca.pem"), "cert": str(d / "client.pem"), "key": str(d / "client.key")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make certificates")
def test_tls_with_client_certificates(tmp_path):
    tls = make_certs(tmp_path)
    server_tls = {**tls, "cert": str(tmp_path / "server.pem"), "key": str(tmp_path / "server.key")}
    with EtcdServer(tmp_path / "etcd", tls=server_tls) as server:
        server.put(f"{P}tls", "ok")
        section = server.etcd_section(**{"etcd-certfile": tls["cert"],
                                         "etcd-keyfile": tls["key"]})
        assert section["etcd-servers"][0].startswith("https://")

        async def main():
            async with mirrored(section) as (mirror, rec):
                assert rec.state == {f"{P}tls": b"ok"}
                server.put(f"{P}more", "yes")
                await async_wait_for(lambda: rec.seen(f"{P}more"))
            async with make_client(section) as client:
                assert (await client.get(f"{P}more".encode())).value == b"yes"

        run_async(main())


def test_progress_notifications_advance_an_idle_mirror():
    with EtcdServer(extra_args=["--experimental-watch-progress-notify-interval=100ms"]) as etcd:

        async def main():
            async with mirrored(etcd.etcd_section()) as (mirror, rec):
                etcd.put("/elsewhere/a", "1")
                etcd.put("/elsewhere/b", "2")
                target = etcd.revision()
                await async_wait_for(lambda: mirror.revision == target, message="progress")
                assert rec.events == []

        run_async(main())
