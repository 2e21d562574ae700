"""How much of the machine's CPU *other* processes took while a row was timed.

Times are only comparable on an otherwise idle machine: on our 2-core machine a second torch
process slows a training by up to 4 x (measured). :class:`CpuMeter` reads, at its start and at
its end, the busy time of the CPUs this process may run on (``/proc/stat``) and this process's
own CPU time (all its threads, its reaped children and its live descendants, such as Ray's
workers); what the CPUs spent beyond that went to other processes. Linux only; elsewhere the
meter records nothing.
"""
import os
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Set

_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (of /proc/stat's cpuN line)


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def machine_busy_s(cpus: Set[int]) -> Optional[float]:
    """Seconds the CPUs ``cpus`` have been busy since boot, ``None`` without ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            fields = rest.split()
            ticks += sum(int(fields[i]) for i in _BUSY_FIELDS)
    return ticks / _clock_ticks()


def _descendant_cpu_s(root: int) -> float:
    """CPU seconds of the live descendants of process ``root`` (theirs and their reaped
    children's), from ``/proc/<pid>/stat``."""
    parent, cpu, ticks = {}, {}, _clock_ticks()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # after the command: state, ppid, ..., utime (14th field), stime, cutime, cstime
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(v) for v in fields[11:15]) / ticks
    total = 0.0
    for pid in cpu:
        ancestor, steps = parent.get(pid), 0
        while ancestor and ancestor != root and steps < len(parent):  # bounded: pids can be reused
            ancestor, steps = parent.get(ancestor), steps + 1
        if ancestor == root and pid != root:
            total += cpu[pid]
    return total


def own_cpu_s() -> float:
    """CPU seconds of this process: every thread, reaped children and live descendants (Linux)."""
    import resource  # POSIX only; the meter runs only where /proc/stat exists

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _descendant_cpu_s(os.getpid())


#: CPU seconds descendants of this process had spent when code in :func:`descendants_ended` ended
#: them unreaped by this process (a replaced local Ray's workers): gone from :func:`own_cpu_s`, so a
#: meter started before counted them at its start and not at its end (as other processes')
_ENDED_DESCENDANTS_CPU_S = 0.0


@contextmanager
def descendants_ended() -> Iterator[None]:
    """Around code that ends descendant processes nobody in this process reaps (``ray.shutdown``):
    what this process's own CPU time loses meanwhile is theirs, handed to the meters running.
    (Its own CPU spent inside is taken off with it: a few tenths of a second at most.)"""
    global _ENDED_DESCENDANTS_CPU_S
    try:
        before = own_cpu_s()
    except (OSError, ImportError):  # no /proc (not Linux): the meter records nothing there
        yield
        return
    try:
        yield
    finally:
        _ENDED_DESCENDANTS_CPU_S += max(0.0, before - own_cpu_s())


def cpu_usage(wall: float, own: float, others: float, cpus: int) -> Dict[str, float]:
    """``{"wall_s", "own_cpu_s", "others_cpu_s", "others_share"}`` of a span of ``wall`` seconds
    in which this process took ``own`` CPU seconds and other processes ``others``:
    ``others_share`` = ``others`` / (``wall`` x ``cpus``, the CPUs this process may use), 0 on an
    idle machine, 1 when others kept every CPU busy."""
    share = others / (wall * cpus) if wall > 0 else 0.0
    return {"wall_s": round(wall, 3), "own_cpu_s": round(own, 3), "others_cpu_s": round(others, 3),
            "others_share": round(min(share, 1.0), 3)}


class CpuMeter:
    """Started on creation; :meth:`result` gives what other processes took since then."""

    def __init__(self):
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
        self.start_wall = time.perf_counter()
        self.start_busy = machine_busy_s(self.cpus)
        self.start_own = own_cpu_s() if self.start_busy is not None else 0.0
        self.start_ended = _ENDED_DESCENDANTS_CPU_S

    def result(self) -> Optional[Dict[str, float]]:
        """:func:`cpu_usage` since the start; ``None`` where the machine's busy time cannot be read."""
        end_busy = machine_busy_s(self.cpus)
        if self.start_busy is None or end_busy is None:
            return None
        own = own_cpu_s() - self.start_own + (_ENDED_DESCENDANTS_CPU_S - self.start_ended)
        return cpu_usage(time.perf_counter() - self.start_wall, own, max(0.0, end_busy - self.start_busy - own),
                         len(self.cpus))


def busy_rows_note(rows: List[dict], share: float) -> Optional[str]:
    """A note naming the rows timed while other processes took more than ``share`` of the CPU
    (``busy_cpu_share``) over the whole row or over its forget alone (``forget_others_share``:
    the span its seconds measure), ``None`` if there is none; rows without a meter record are
    skipped."""
    def busiest(meter: dict) -> float:
        return max(meter.get("others_share", 0.0), meter.get("forget_others_share", 0.0))

    busy = [(row["method"], busiest(row["cpu_meter"])) for row in rows
            if row.get("cpu_meter") and busiest(row["cpu_meter"]) > share]
    if not busy:
        return None
    named = ", ".join(f"{method} ({100 * others:.0f}%)" for method, others in busy)
    return (f"other processes took more than {100 * share:.0f}% of the CPU while these rows ran: {named}; "
            "their seconds are inflated and do not compare with the others (time on an otherwise idle machine)")
