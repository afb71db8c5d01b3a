"""A real etcd for tests, plus polling helpers.

Test modules import this as `from etcdtest import EtcdServer, wait_for` (tests/ is not a
package, so pytest puts it on sys.path). The sync helpers shell out to etcdctl on purpose:
they must not share code, or bugs, with the skydns code under test.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import inspect
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from devup.localetcd import find_binary

STARTUP_TIMEOUT = 30.0
TXN_MAX_OPS = 128  # etcd's default --max-txn-ops


# --- polling -----------------------------------------------------------------------------------


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.01, message: str = ""):
    """Poll a sync predicate until it returns something truthy (which is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s: {message or predicate}")
        time.sleep(interval)


async def async_wait_for(predicate, timeout: float = 5.0, interval: float = 0.01,
                         message: str = ""):
    """wait_for for async tests; the predicate may be sync or return an awaitable."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s: {message or predicate}")
        await asyncio.sleep(interval)


def run_async(coro, timeout: float = 60.0):
    """Run a coroutine from a plain test function, with an overall deadline.

    Prefer this to a bare asyncio.run: grpc.aio objects caught in reference cycles (a failed
    call keeps one) are freed by a later GC pass, and if their event loop is closed by then,
    grpc's shared poller logs "Event loop is closed" errors inside whichever test runs next.
    Collecting before the loop closes keeps each test's gRPC debris in its own loop.
    """

    async def main():
        try:
            return await asyncio.wait_for(coro, timeout)
        finally:
            gc.collect()

    return asyncio.run(main())


# --- the server --------------------------------------------------------------------------------


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free 127.0.0.1 port below the ephemeral range: while a test has etcd stopped, its
    port must not be handed to some other process's outgoing connection or bind(0)."""
    low = _ephemeral_range()[0]
    for _ in range(100):
        # SystemRandom: a test that seeds `random` must not make sessions pick alike.
        port = random.SystemRandom().randrange(10000, low) if low > 11000 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port found")


def _clean_env() -> dict[str, str]:
    # etcd reads ETCD_* and etcdctl ETCDCTL_* variables as flags; a developer's settings
    # must not leak into the test cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    env["ETCDCTL_API"] = "3"
    return env


def _text(b64: str) -> str:
    return base64.b64decode(b64).decode(errors="replace")


class EtcdError(RuntimeError):
    pass


class EtcdServer:
    """One single-member etcd on free 127.0.0.1 ports, data in a temp dir.

    stop()/start()/restart() keep the ports and the data. tls={"ca":..., "cert":..., "key":...}
    (file paths) serves https with client-certificate auth.
    """

    def __init__(self, data_dir: str | Path | None = None, *, tls: dict | None = None,
                 extra_args: Iterable[str] = (), also_listen: Iterable[str] = ()):
        self._own_dir = data_dir is None
        base = Path(tempfile.mkdtemp(prefix="skydns-etcd-") if data_dir is None else data_dir)
        base.mkdir(parents=True, exist_ok=True)
        self.base_dir = base
        self.data_dir = base / "data"
        self.log_path = base / "etcd.log"
        self.tls = tls
        self.extra_args = list(extra_args)
        # More addresses the client port is served on (a veth address a network namespace
        # made by the test reaches), beside 127.0.0.1.
        self.also_listen = list(also_listen)
        self.etcd_bin = find_binary("etcd")
        self.etcdctl_bin = find_binary("etcdctl")
        self.port = 0
        self.peer_port = 0
        self.proc: subprocess.Popen | None = None
        self.paused = False

    def __repr__(self) -> str:
        return f"<EtcdServer {self.endpoint} running={self.running}>"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def endpoint_on(self, host: str) -> str:
        """The client URL on one of the also_listen addresses."""
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def etcd_section(self, **overrides) -> dict:
        section = {
            "etcd-servers": [self.endpoint],
            "etcd-certfile": self.tls["cert"] if self.tls else "",
            "etcd-keyfile": self.tls["key"] if self.tls else "",
            "etcd-cafile": self.tls["ca"] if self.tls else "",
            "etcd-timeout": 5.0,
        }
        section.update(overrides)
        return section

    # lifecycle

    def start(self) -> None:
        if self.running:
            return
        if self.port:
            self._start_once()
            return
        # Free ports can be taken between picking and binding; only the first start may
        # move to other ports (restarts must keep the endpoint clients know).
        for attempt in range(3):
            self.port, self.peer_port = free_port(), free_port()
            try:
                self._start_once()
                return
            except EtcdError as e:
                if "address already in use" not in str(e) or attempt == 2:
                    raise

    def _start_once(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            self.etcd_bin,
            "--name", "default",
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", ",".join(
                [self.endpoint, *(self.endpoint_on(h) for h in self.also_listen)]),
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
            # Test data is disposable; fsync per write would dominate test run time.
            "--unsafe-no-fsync",
            # A restarted single member waits a full election timeout (1s by default, plus
            # jitter) before it leads again; shorter raft timers make restart() fast.
            "--heartbeat-interval=20",
            "--election-timeout=200",
        ]
        if self.tls:
            args += ["--trusted-ca-file", self.tls["ca"], "--cert-file", self.tls["cert"],
                     "--key-file", self.tls["key"], "--client-cert-auth"]
        args += self.extra_args
        start_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=_clean_env())
        self.paused = False
        try:
            self._wait_healthy(start_offset)
        except BaseException:
            self._terminate(kill=True)
            raise

    def _wait_healthy(self, log_offset: int) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise EtcdError(f"etcd exited with {self.proc.returncode}: "
                                f"{self._log_tail(log_offset)}")
            if self._port_open() and self._ctl_ok("endpoint", "health"):
                return
            if time.monotonic() >= deadline:
                raise EtcdError(f"etcd not healthy after {STARTUP_TIMEOUT}s: "
                                f"{self._log_tail(log_offset)}")
            time.sleep(0.02)

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _log_tail(self, offset: int = 0, lines: int = 15) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, kill: bool = False) -> None:
        """Stop etcd (SIGTERM, or SIGKILL with kill=True); data and ports are kept."""
        self._terminate(kill)

    def _terminate(self, kill: bool) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if self.paused:
            proc.send_signal(signal.SIGCONT)
            self.paused = False
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, kill: bool = False) -> None:
        self.stop(kill)
        self.start()

    def pause(self) -> None:
        """Freeze etcd (SIGSTOP): connections stay open but nothing answers."""
        if self.running and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.running and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def ensure_running(self) -> None:
        self.resume()
        self.start()

    def close(self) -> None:
        """Stop etcd and remove the temp dir if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # etcdctl

    def _ctl_args(self) -> list[str]:
        args = [self.etcdctl_bin, "--endpoints", self.endpoint, "--command-timeout=5s"]
        if self.tls:
            args += ["--cacert", self.tls["ca"], "--cert", self.tls["cert"],
                     "--key", self.tls["key"]]
        return args

    def _ctl_ok(self, *args: str) -> bool:
        try:
            return subprocess.run(self._ctl_args() + ["--command-timeout=1s", *args],
                                  capture_output=True, env=_clean_env(),
                                  timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def etcdctl(self, *args: str, input: bytes | None = None, timeout: float = 30.0) -> str:
        """Run etcdctl against this server; returns stdout, raises EtcdError on failure."""
        cmd = self._ctl_args() + list(args)
        try:
            done = subprocess.run(cmd, input=input, capture_output=True, env=_clean_env(),
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise EtcdError(f"etcdctl {' '.join(args)}: timed out after {timeout}s") from e
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()
            raise EtcdError(f"etcdctl {' '.join(args)}: exit {done.returncode}: {err}")
        return done.stdout.decode(errors="replace")

    @staticmethod
    def _encode(value: str | bytes | Mapping | list) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode()
        return json.dumps(value).encode()

    def put(self, key: str, value: str | bytes | Mapping | list, lease: int | None = None):
        """Put one key; dict/list values are stored as JSON. lease is a lease ID (int)."""
        data = self._encode(value)
        opts = [f"--lease={lease:x}"] if lease else []
        # The value goes through stdin so any bytes (and a leading "-") survive; etcdctl
        # reads an empty stdin as "no value", so an empty value has to be an argument.
        if data:
            self.etcdctl("put", *opts, "--", key, input=data)
        else:
            self.etcdctl("put", *opts, "--", key, "")

    def put_many(self, items: Mapping | Iterable[tuple[str, object]]) -> None:
        """Many puts in few processes: transactions of up to 128 puts each (not one atomic
        write across chunks)."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        lines = []
        for key, value in pairs:
            data = self._encode(value)
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = None
            if not data or text is None or key.startswith("-") or text.startswith("-"):
                self.put(key, data)  # cannot be quoted for the txn parser
                continue
            # etcdctl's txn parser unquotes Go-style strings; JSON string escapes are a subset.
            lines.append(f"put {json.dumps(key, ensure_ascii=False)} "
                         f"{json.dumps(text, ensure_ascii=False)}")
        for i in range(0, len(lines), TXN_MAX_OPS):
            # No compares, the puts as the success branch, no failure branch.
            script = "\n" + "\n".join(lines[i:i + TXN_MAX_OPS]) + "\n\n\n"
            out = self.etcdctl("txn", input=script.encode())
            if not out.startswith("SUCCESS"):
                raise EtcdError(f"etcdctl txn did not succeed: {out[:200]}")

    def get(self, key: str) -> str | None:
        """The value as text (undecodable bytes replaced), None if the key does not exist."""
        kvs = json.loads(self.etcdctl("get", "-w", "json", "--", key)).get("kvs") or []
        return _text(kvs[0].get("value", "")) if kvs else None

    def get_prefix(self, prefix: str) -> dict[str, str]:
        out = json.loads(self.etcdctl("get", "--prefix", "-w", "json", "--", prefix))
        return {_text(kv["key"]): _text(kv.get("value", "")) for kv in out.get("kvs") or []}

    def delete(self, key: str, prefix: bool = False) -> int:
        """Delete a key (or every key under a prefix); returns how many were deleted."""
        args = ["del", "--prefix"] if prefix else ["del"]
        return int(self.etcdctl(*args, "--", key).split()[0])

    def delete_prefix(self, prefix: str) -> int:
        return self.delete(prefix, prefix=True)

    def revision(self) -> int:
        status = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))
        return int(status[0]["Status"]["header"]["revision"])

    def compact(self, revision: int | None = None) -> int:
        """Compact history up to revision (default: the current one); returns it."""
        revision = revision or self.revision()
        try:
            self.etcdctl("compaction", "--physical", str(revision))
        except EtcdError as e:
            if "required revision has been compacted" not in str(e):
                raise
        return revision

    def grant_lease(self, ttl: int) -> int:
        return int(json.loads(self.etcdctl("lease", "grant", str(ttl), "-w", "json"))["ID"])

    def revoke_lease(self, lease: int) -> None:
        self.etcdctl("lease", "revoke", f"{lease:x}")
