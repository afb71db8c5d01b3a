"""End to end with the real client: `kubectl` creates and deletes Services on the fake API
server (HTTPS: kubectl sends a bearer token only over TLS), `skydns-kubeapi` syncs them into a
real etcd, and a real `skydns` process answers for them; `skydns-apicmd -list` shows them, and a
DOWN status on a synced address leaves the answers like any other."""

import json
import os
import shutil
import subprocess
import sys

import dns.rcode
import pytest

from apitest import ADMIN_TOKEN, ROOT, STATUS, TOKENS, KubeApi, http_request, write_config
from dnstest import Skydns
from etcdtest import free_port, wait_for
from fakekube import FakeKubeThread, endpoint_slice, make_cert
from pdnstest import Backend

ZONE = "example.test."
TOKEN = "e2e-kube-token"
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@pytest.fixture
def cluster(tmp_path, etcd):
    cert, key = make_cert(tmp_path)
    kube = FakeKubeThread(token=TOKEN, tls=(cert, key))
    kube.start()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    api = KubeApi(etcd.endpoint, zone=ZONE, Kube2Skydns={
        "kube-enable": "YES", "kube-master": kube.url, "kube-token-file": token_file,
        "kube-cafile": cert, "kube-backoff-max": 0.5}).start()
    dns_server = Skydns(etcd.endpoint).start()
    home = tmp_path / "home"
    home.mkdir()

    def kubectl(*args):
        done = subprocess.run(
            [KUBECTL, "--server", kube.url, "--certificate-authority", cert, "--token", TOKEN,
             *args], capture_output=True, text=True, timeout=60,
            env={"PATH": os.environ["PATH"], "HOME": str(home)})
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        yield kube, api, dns_server, kubectl
    finally:
        dns_server.stop()
        api.stop()
        kube.close()


def revisions(etcd) -> dict[str, int]:
    import base64

    out = json.loads(etcd.etcdctl("get", "--prefix", "/skydns/", "-w", "json"))
    return {base64.b64decode(kv["key"]).decode(): kv["mod_revision"]
            for kv in out.get("kvs") or []}


def answer(server, name, rdtype="A"):
    reply = server.query(name, rdtype)
    return reply.rcode(), sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


def eventually(server, name, rdtype, want, timeout=15.0):
    got = []

    def check():
        got[:] = [answer(server, name, rdtype)]
        return got[0] == want

    try:
        wait_for(check, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{name} {rdtype}: want {want}, got {got}") from None


def apicmd_list(api) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "apicmd.cli", "-list", "--json", "-token",
                           ADMIN_TOKEN], capture_output=True, text=True, cwd=ROOT, timeout=30,
                          env={**os.environ, "SKYDNS_API_ADDR": api.addr})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["records"]


def test_kubectl_services_become_answers(cluster, etcd):
    kube, api, dns_server, kubectl = cluster
    assert "service/web created" in kubectl("create", "service", "clusterip", "web",
                                            "--tcp=80:8080")
    ip = json.loads(kubectl("get", "service", "web", "-o", "json"))["spec"]["clusterIP"]
    name = "web.default.svc.example.test."
    eventually(dns_server, name, "A", (dns.rcode.NOERROR, [ip]))
    eventually(dns_server, "_80-8080._tcp." + name, "SRV",
               (dns.rcode.NOERROR, [f"10 100 80 {name}"]))
    listed = [e for e in apicmd_list(api) if e["domain"] == name]
    assert listed == [{"domain": name, "type": "A", "owner": "kubernetes", "ips": [ip],
                       "status": {ip: "UP"}}]
    assert "web" in kubectl("get", "services")
    text = subprocess.run([sys.executable, "-m", "apicmd.cli", "-list", "-token", ADMIN_TOKEN],
                          capture_output=True, text=True, cwd=ROOT, timeout=30,
                          env={**os.environ, "SKYDNS_API_ADDR": api.addr})
    assert text.returncode == 0 and name in text.stdout, text.stderr
    status, metrics = api.request("GET", "/metrics", token=None)
    assert status == 200
    assert "skydns_kube_services 1.0" in metrics and "skydns_kube_watch_connected 1.0" in metrics
    assert "skydns_kube_relists_total 2.0" in metrics  # one list per resource, nothing more

    # A manifest through `kubectl apply` (client-side validation needs the OpenAPI documents,
    # which the fake does not serve: --validate=false), then changed by a second apply.
    manifest = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "db.example.org"}}
    path = api.dir / "ext.json"
    path.write_text(json.dumps(manifest))
    kubectl("apply", "--validate=false", "-f", str(path))
    eventually(dns_server, "ext.default.svc.example.test.", "CNAME",
               (dns.rcode.NOERROR, ["db.example.org."]))
    manifest["spec"]["externalName"] = "db2.example.org"
    path.write_text(json.dumps(manifest))
    assert "configured" in kubectl("apply", "--validate=false", "-f", str(path))
    eventually(dns_server, "ext.default.svc.example.test.", "CNAME",
               (dns.rcode.NOERROR, ["db2.example.org."]))

    assert 'service "web" deleted' in kubectl("delete", "service", "web")
    eventually(dns_server, name, "A", (dns.rcode.NXDOMAIN, []))
    assert etcd.get(STATUS + ip) is None


def test_down_endpoint_leaves_the_answer(cluster, etcd):
    kube, api, dns_server, kubectl = cluster
    kubectl("create", "service", "clusterip", "db", "--clusterip=None", "--tcp=5432:5432")
    kube.put("endpointslices", endpoint_slice("db", [
        ("192.0.2.31", True, "db-0"), ("192.0.2.32", True, "db-1"),
        ("192.0.2.33", False, "db-2")]))
    name = "db.default.svc.example.test."
    eventually(dns_server, name, "A", (dns.rcode.NOERROR, ["192.0.2.31", "192.0.2.32"]))
    eventually(dns_server, "db-1." + name, "A", (dns.rcode.NOERROR, ["192.0.2.32"]))
    # A scanner's verdict (written here by hand) takes the address out of the answers...
    status = json.loads(etcd.get(STATUS + "192.0.2.32"))
    etcd.put(STATUS + "192.0.2.32", {**status, "status": "DOWN"})
    eventually(dns_server, name, "A", (dns.rcode.NOERROR, ["192.0.2.31"]))
    # ...and a later endpoint change does not reset it to UP.
    kube.put("endpointslices", endpoint_slice("db", [
        ("192.0.2.31", True, "db-0"), ("192.0.2.32", True, "db-1"),
        ("192.0.2.33", True, "db-2")]))
    eventually(dns_server, name, "A", (dns.rcode.NOERROR, ["192.0.2.31", "192.0.2.33"]))
    assert json.loads(etcd.get(STATUS + "192.0.2.32"))["status"] == "DOWN"


def test_powerdns_backend_answers_synced_records(cluster, etcd):
    kube, api, dns_server, kubectl = cluster
    kubectl("create", "service", "clusterip", "cache", "--tcp=6379:6379")
    ip = json.loads(kubectl("get", "service", "cache", "-o", "json"))["spec"]["clusterIP"]
    backend = Backend(etcd.endpoint).start()
    try:
        def found():
            with backend.client() as client:
                reply = client.call("lookup", qname="cache.default.svc.example.test.",
                                    qtype="A")
            return [r["content"] for r in reply["result"] if r["qtype"] == "A"] == [ip]

        wait_for(found, timeout=15)
    finally:
        backend.stop()


def test_rest_api_serves_while_the_api_server_is_away(tmp_path, etcd):
    port = free_port()
    kube = FakeKubeThread(token=TOKEN, port=port)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    api = KubeApi(etcd.endpoint, zone=ZONE, Kube2Skydns={
        "kube-enable": "true", "kube-master": f"http://127.0.0.1:{port}",
        "kube-token-file": token_file, "kube-backoff-max": 0.3}).start()
    try:
        assert api.post("cctv2", {"type": "A", "ips": ["192.0.2.77"]})[0] == 201
        wait_for(lambda: "Kubernetes API request failed" in api.logs(), timeout=10)
        assert api.request("GET", "/healthz", token=None)[0] == 200
        kube.put("services", {"metadata": {"name": "late", "namespace": "default"},
                              "spec": {"clusterIP": "10.96.9.9"}})
        kube.start()
        wait_for(lambda: etcd.get_prefix("/skydns/test/example/svc/default/late/"), timeout=15)
        assert api.get_json("/skydns/api/cctv2")["records"][0]["ips"] == ["192.0.2.77"]

        # A REST API record below the service's name survives a 410 relist untouched.
        assert api.post("extra.late.default.svc", {"type": "A", "ips": ["192.0.2.78"]},
                        token=TOKENS["alice"])[0] == 201
        before = revisions(etcd)
        kube.stop()
        kube.put("services", {"metadata": {"name": "later", "namespace": "default"},
                              "spec": {"clusterIP": "10.96.9.10"}})
        kube.compact()
        kube.start()
        wait_for(lambda: etcd.get_prefix("/skydns/test/example/svc/default/later/"), timeout=15)
        wait_for(lambda: "skydns_kube_relists_total 4.0" in api.request(
            "GET", "/metrics", token=None)[1], timeout=10)
        after = revisions(etcd)
        for key, rev in before.items():
            if "/later/" not in key:
                assert after.get(key) == rev, key
        extra = api.get_json("/skydns/api/extra.late.default.svc")["records"]
        assert extra[0]["owner"] == "alice" and extra[0]["ips"] == ["192.0.2.78"]
    finally:
        api.stop()
        kube.close()


def test_sync_alone_with_api_enable_false(tmp_path, etcd):
    kube = FakeKubeThread(token=TOKEN)
    kube.start()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    config = write_config(tmp_path / "api.conf", etcd.endpoint, port, zone=ZONE,
                          SkydnsApi={"api-enable": "false"},
                          Kube2Skydns={"kube-enable": "YES", "kube-master": kube.url,
                                       "kube-token-file": token_file})
    proc = subprocess.Popen([sys.executable, "-m", "kubeapi", "--config-file", str(config)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        kube.put("services", {"metadata": {"name": "solo", "namespace": "default"},
                              "spec": {"clusterIP": "10.96.9.20"}})
        wait_for(lambda: etcd.get_prefix("/skydns/test/example/svc/default/solo/"), timeout=15)
        with pytest.raises(OSError):
            http_request(port, "GET", "/healthz", timeout=1)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        kube.close()
    assert proc.returncode == 0, proc.stderr.read().decode()
