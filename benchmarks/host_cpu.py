"""How busy the host's cores were over a timed run, for the scaling rows (docs/scale.md).

On a GPU host the CPU stages around the critic, not the GPUs, set cprs's ceiling, so each
scaling row says how much of the host's CPU it used. Read from /proc/stat (Linux) rather than
through psutil: psutil is not a cprs dependency and the GPU machines do not have it. Elsewhere the
meter reports nothing rather than a made-up number.
"""

from __future__ import annotations

import os


def _sample() -> tuple[int, int] | None:
    """(busy, total) jiffies over all cores since boot, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user / nice
    return total - idle, total


class CpuMeter:
    """`CpuMeter()` at the start, `.read()` at the end: the host's mean CPU use in between."""

    def __init__(self) -> None:
        self.start = _sample()

    def read(self) -> dict:
        end = _sample()
        if self.start is None or end is None or end[1] <= self.start[1]:
            return {}
        share = (end[0] - self.start[0]) / (end[1] - self.start[1])
        cores = os.cpu_count() or 1
        return {"host_cpu_util": round(share, 3), "host_cpu_busy_cores": round(share * cores, 1),
                "host_cpus": cores}
