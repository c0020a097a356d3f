"""What else the machine was doing during a measurement: the cores busy, and how many of them
were the measurement's own processes (this one and every process under it: the servers it
started, a Ray it started, their workers). Linux (``/proc``); elsewhere the figures are 0."""

from __future__ import annotations

import os


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, all) jiffies of every CPU since boot."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return 0, 0
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def _our_jiffies() -> int:
    """CPU jiffies used by this process and every living process under it."""
    parent: dict[int, int] = {}
    used: dict[int, int] = {}
    entries = os.listdir("/proc") if os.path.isdir("/proc") else []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        used[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
    ours, me = 0, os.getpid()
    for pid, cpu in used.items():
        walk = pid
        while walk > 1 and walk != me:
            walk = parent.get(walk, 0)
        if walk == me:
            ours += cpu
    return ours


class CpuWatch:
    """How many cores the machine was busy on during a block, and how many of those were this
    measurement's own processes: ``others`` is what other people's work took."""

    def __enter__(self) -> CpuWatch:
        self._busy, self._all = _cpu_jiffies()
        self._ours = _our_jiffies()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, total = _cpu_jiffies()
        ours = _our_jiffies()
        per_core = max(1, total - self._all) / (os.cpu_count() or 1)
        self.busy = (busy - self._busy) / per_core
        self.ours = (ours - self._ours) / per_core
        self.others = max(0.0, self.busy - self.ours)
