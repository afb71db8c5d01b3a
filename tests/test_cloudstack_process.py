"""`skydns-cloudstack` as operators run it: the console script's module as a process, set up
through the exporter's environment variables, killed and restarted (it resumes from its
committed offset); a missing endpoint is a one-line config error."""

import json
import signal
import subprocess
import sys
import uuid

from etcdtest import free_port, run_async, wait_for
from fakecloudstack import FakeCloudStackThread, job_event, make_vm
from healthtest import sample, sample_sum, scrape
from kafkatest import create_topic, produce
from proctest import ROOT, Process

KEY, SECRET = "proc-key", "proc-secret"
ZONE = "cloud.test."


class CloudStackProcess(Process):
    module, what = "cloudstack", "skydns-cloudstack"

    def __init__(self, etcd_endpoint: str):
        super().__init__("skydns-cloudstack-", "cloudstack.log")
        self.metrics = f"127.0.0.1:{free_port()}"
        self.config = self.dir / "skydns-cloudstack.conf"
        # Only what the exporter's variables do not say: they fill the rest.
        self.config.write_text(
            f"[General]\ndomain = {ZONE}\nmetrics-addr = {self.metrics}\n"
            "[CloudStack]\nresync-interval = 0\ntimeout = 2.0\nbackoff-max = 0.5\n"
            "[Kafka]\nsession-timeout = 1.0\nheartbeat-interval = 0.2\n"
            f"[Etcd]\netcd-servers = {etcd_endpoint}\netcd-timeout = 1.0\n")

    def ready(self) -> bool:
        self.assert_running()
        samples = scrape(self.metrics, timeout=1.0)
        return bool(samples) and (sample(samples, "skydns_cloudstack_resyncs_total") or 0) >= 1


def test_the_exporters_environment_and_a_restart(etcd, kafka_broker):
    topic = "cs-" + uuid.uuid4().hex[:8]
    run_async(create_topic(kafka_broker.bootstrap, topic, 2))
    cloud = FakeCloudStackThread({KEY: SECRET})
    cloud.start()
    dom = cloud.cs.add_domain("dev", networkdomain="dev." + ZONE)
    acc = cloud.cs.add_account("alice", dom)
    env = {"KAFKA_BOOTSTRAP": kafka_broker.bootstrap, "KAFKA_TOPIC": topic,
           "KAFKA_GROUP": "g-" + topic, "CS_ENDPOINT": cloud.url, "CS_API_KEY": KEY,
           "CS_SECRET_KEY": SECRET, "DNS_RECORD_TTL": "90", "DNS_COMMON_ZONE": "all." + ZONE,
           "DNS_ADD_TO_COMMON_ZONE": "true"}
    proc = CloudStackProcess(etcd.endpoint)
    try:
        proc.start(**env)
        first = cloud.cs.add_vm(make_vm("one", acc, "10.30.0.1"))
        run_async(produce(kafka_broker.bootstrap, topic, [job_event("VM.CREATE", first)]))
        key = "/skydns/test/cloud/all/one/" + first["id"]
        value = wait_for(lambda: etcd.get(key), 20, 0.05, proc.logs())
        assert json.loads(value) == {"host": "10.30.0.1", "type": "A", "ttl": 90,
                                     "owner": "cloudstack"}
        assert etcd.get("/skydns/test/cloud/dev/one/" + first["id"]) is not None
        samples = wait_for(lambda: scrape(proc.metrics), 10)
        assert sample(samples, "skydns_cloudstack_events_total", kind="VM.CREATE",
                      outcome="written") == 1
        # its A in the domain's zone and in the common zone, PTR, refs, status, index
        assert sample(samples, "skydns_cloudstack_etcd_operations") == 6
        assert any(name == "skydns_cloudstack_lag_messages" for name, _ in samples)
        assert sample_sum(samples, "skydns_cloudstack_lag_messages") == 0
        # Killed (no clean leave of the group), an event published meanwhile, restarted.
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait(10)
        second = cloud.cs.add_vm(make_vm("two", acc, "10.30.0.2"))
        run_async(produce(kafka_broker.bootstrap, topic, [job_event("VM.CREATE", second)],
                          partition=1))
        proc.start(**env)
        wait_for(lambda: etcd.get("/skydns/test/cloud/dev/two/" + second["id"]), 30, 0.05,
                 proc.logs())
        assert proc.stop() == 0
    finally:
        proc.stop()
        cloud.close()


def test_a_missing_endpoint_is_a_config_error(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("[Records]\nttl = 5\n")
    out = subprocess.run([sys.executable, "-m", "cloudstack", "--config-file", str(conf)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert out.stderr.strip() == ("skydns-cloudstack: config error: [CloudStack] endpoint: "
                                  "not set (the API URL, e.g. https://cloud.example/client/api)")
