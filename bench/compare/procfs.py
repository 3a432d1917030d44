"""What /proc says about a process (CPU, memory, fds) and about the box (CPU, TCP states).

The figures of every table come from here, read the same way for both exporters."""

from __future__ import annotations

import contextlib
import os
import resource
from collections import Counter

CLK_TCK = os.sysconf("SC_CLK_TCK")
# /proc/net/tcp's hexadecimal state codes, for the states worth reporting after a level
TCP_STATES = {
    "01": "ESTABLISHED",
    "03": "SYN_RECV",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "08": "CLOSE_WAIT",
}


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may contain spaces and parentheses)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def user_sys_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, all threads, in seconds."""
    fields = _stat_fields(pid)
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_s(pid: int) -> float:
    """utime + stime of a process, all threads, in seconds."""
    return sum(user_sys_s(pid))


def group_pids(pgid: int) -> list[int]:
    """The processes of one process group: an exporter and any workers it forked."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat_fields(int(entry))[2]) == pgid:
                    pids.append(int(entry))
    return pids


def group_cpu_s(pgid: int) -> float:
    total = 0.0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError, ValueError):
            total += cpu_s(pid)
    return total


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) and Threads from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM so that it shows the peak of the coming window (root or the same uid)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def machine_cpu() -> tuple[int, int]:
    """(total, idle) jiffies of the whole machine since boot."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return sum(ticks), ticks[3] + ticks[4]


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time that was busy between two machine_cpu() reads."""
    total, idle = after[0] - before[0], after[1] - before[1]
    return round(1 - idle / max(1, total), 3)


def children_cpu_s() -> float:
    """CPU of this process's waited-for children (how wrk's own cost is counted)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tcp_states() -> dict[str, int]:
    """How many TCP sockets of the box are in each reported state (TIME_WAIT piles up)."""
    counts: Counter[str] = Counter()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(path) as f:
            next(f, None)
            for line in f:
                state = TCP_STATES.get(line.split()[3])
                if state:
                    counts[state] += 1
    return dict(counts)
