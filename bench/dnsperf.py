"""Running dnsperf and reading its report.

dnsperf 2.10 prints average/min/max latency only; with -v it prints one line per query
(`> NOERROR name type 0.000123`), which is where the percentiles come from. The -v output goes
to a file and is read after the run, so parsing costs nothing while measuring.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from procs import spawn, stop


def ensure_dnsperf() -> str:
    found = shutil.which("dnsperf")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("dnsperf not found; installing the Debian package", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "dnsperf"], check=True)
        found = shutil.which("dnsperf")
        if found:
            return found
    sys.exit("bench: dnsperf is needed: `sudo apt-get install dnsperf` (Debian/Ubuntu), "
             "or build it from https://github.com/DNS-OARC/dnsperf")


@dataclass
class PerfResult:
    sent: int = 0
    completed: int = 0
    lost: int = 0
    runtime: float = 0.0
    qps: float = 0.0
    rcodes: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, max, avg


_STAT = re.compile(r"^\s+(Queries sent|Queries completed|Queries lost|Run time \(s\)|"
                   r"Queries per second|Response codes):\s+(.*)$")


def parse(path: Path) -> PerfResult:
    res = PerfResult()
    latencies: list[float] = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                try:  # lost queries have no latency field
                    latencies.append(float(line.rsplit(None, 1)[1]))
                except (ValueError, IndexError):
                    pass
                continue
            m = _STAT.match(line)
            if not m:
                continue
            what, value = m.groups()
            if what == "Response codes":
                for code, count in re.findall(r"([A-Z]+) (\d+)", value):
                    res.rcodes[code] = int(count)
            elif what == "Run time (s)":
                res.runtime = float(value)
            elif what == "Queries per second":
                res.qps = float(value)
            else:
                setattr(res, what.split()[1], int(value.split()[0]))
    if latencies:
        latencies.sort()
        n = len(latencies)
        res.latency_ms = {
            f"p{q}": round(latencies[min(n - 1, n * q // 100)] * 1000, 3) for q in (50, 90, 99)
        }
        res.latency_ms["max"] = round(latencies[-1] * 1000, 3)
        res.latency_ms["avg"] = round(sum(latencies) / n * 1000, 3)
    return res


def command(port: int, qfile: Path, *, duration: float | None = None, runs: int | None = None,
            clients: int = 4, outstanding: int = 100, rate: int | None = None,
            verbose: bool = False, mode: str = "udp") -> list[str]:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
           "-c", str(clients), "-q", str(outstanding), "-t", "2"]
    if duration:
        cmd += ["-l", str(duration)]
    if runs:
        cmd += ["-n", str(runs)]
    if rate:
        cmd += ["-Q", str(rate)]
    if verbose:
        cmd.append("-v")
    if mode != "udp":
        cmd += ["-m", mode]
    return cmd


def run(cmd: list[str], out: Path, cpus: list[int] | None, timeout: float) -> PerfResult:
    """Run dnsperf to completion (bounded by -l/-n and `timeout`) and parse its output."""
    out.unlink(missing_ok=True)
    proc = spawn(cmd, out, cpus)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, signal.SIGINT)
    finally:
        stop(proc)
    result = parse(out)
    out.unlink(missing_ok=True)  # -v output is big: tens of MB for a 10 s run
    return result
