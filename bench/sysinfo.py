"""Machine description, git state and CPU accounting from /proc (Linux)."""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
REPO = Path(__file__).resolve().parent.parent


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, object]:
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (
            int(ln.split()[1])
            for ln in _read("/proc/meminfo").splitlines()
            if ln.startswith("MemTotal:")
        ),
        0,
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
    }


def _git(*args: str, strip: bool = True) -> str:
    # --no-optional-locks: read-only, never refreshes the index.
    out = subprocess.run(
        ["git", "--no-optional-locks", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if strip else out.stdout


def git_state(source: str = "worktree") -> dict[str, object]:
    """The commit and, when the working tree is measured, whether it differs from it."""
    # -z: NUL-separated entries "XY path" (stripping the output would eat the first X)
    changed = [
        e[3:] for e in _git("status", "--porcelain", "-z", strip=False).split("\0") if len(e) > 3
    ]
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    if source != "worktree":
        commit = _git("rev-parse", "--short", f"{source}^{{commit}}") or "unknown"
        return {
            "commit": commit,
            "src_commit": _git("log", "-1", "--format=%h", commit, "--", "src") or "unknown",
            "head": head,
            "source": f"git archive {source} (a clean snapshot of src/ and tests/)",
            "dirty": False,
            "worktree_changed_files": len(changed),
        }
    return {
        "commit": head,
        # the last commit that changed the code under test (bench/ commits change no result)
        "src_commit": _git("log", "-1", "--format=%h", "HEAD", "--", "src") or "unknown",
        "source": "working tree",
        "dirty": bool(changed),
        "src_dirty": any(c.startswith("src/") for c in changed),
        "changed_files": changed[:50],
    }


def export_source(ref: str) -> Path:
    """A clean copy of ``src/`` and ``tests/`` at ``ref`` (read-only ``git archive``), cached
    under /tmp by commit."""
    commit = _git("rev-parse", f"{ref}^{{commit}}")
    if not commit:
        raise ValueError(f"not a git commit: {ref!r}")
    target = Path(tempfile.gettempdir()) / f"carnet-bench-src-{commit[:12]}"
    if (target / "src" / "carnet").is_dir():
        return target
    archive = subprocess.run(
        ["git", "--no-optional-locks", "archive", "--format=tar", commit, "src", "tests"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    partial = Path(tempfile.mkdtemp(prefix="carnet-bench-src-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(partial, filter="data")
    try:
        partial.rename(target)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return target


def package_versions(names: list[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


# --- CPU accounting -------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, str, float, float] | None:
    """(ppid, comm, own CPU seconds, reaped children's CPU seconds), None if it is gone."""
    raw = _read(f"/proc/{pid}/stat")
    if not raw:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14 to 17.
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return int(fields[1]), comm, own, children


def _cmdline(pid: int) -> str:
    return _read(f"/proc/{pid}/cmdline").replace("\0", " ").strip()


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process (/proc/<pid>/statm), None if it is gone."""
    raw = _read(f"/proc/{pid}/statm").split()
    return int(raw[1]) * PAGE_SIZE if len(raw) > 1 else None


def server_role(pid: int, server_pid: int | None, workers: int) -> str:
    """``worker`` (serves requests), ``supervisor`` (uvicorn's parent of several workers) or
    ``helper`` (multiprocessing's resource tracker and the like)."""
    cmd = _cmdline(pid)
    if pid == server_pid:
        return "worker" if workers <= 1 else "supervisor"
    if "multiprocessing.spawn" in cmd or "multiprocessing.forkserver" in cmd:
        return "worker"
    if "resource_tracker" in cmd:
        return "helper"
    return "worker" if "uvicorn" in cmd or "carnet" in cmd else "helper"


GROUPS = ("server", "loadgen", "pg_ours", "pg_shared", "pg_other", "other")


def _machine_ticks() -> tuple[float, float, float]:
    """(busy, total, steal) CPU seconds of the machine since boot, all cores. Steal (time the
    hypervisor gave to other guests) counts as busy: no process of ours could run."""
    first = _read("/proc/stat").splitlines()[0].split()[1:]
    ticks = [int(x) for x in first]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    total = sum(ticks[:8])
    steal = ticks[7] if len(ticks) > 7 else 0
    return (total - idle) / CLK_TCK, total / CLK_TCK, steal / CLK_TCK


def _scan() -> dict[int, tuple[int, str, float, float]]:
    procs: dict[int, tuple[int, str, float, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None:
                procs[int(entry)] = st
    return procs


class CpuSampler:
    """CPU used during an interval by: the server (process tree), this load generator, PostgreSQL
    (``pg_ours``: our database's backends; ``pg_shared``: checkpointer, WAL writer…;
    ``pg_other``: other databases' backends) and everything else on the machine (``other``).

    /proc is scanned every ``interval`` seconds in a thread so that processes which exit during
    the interval still count (SQLAlchemy closes its pool's overflow connections, so PostgreSQL
    backends come and go); at most the last ``interval`` of an exiting process is missed.
    """

    def __init__(
        self,
        server_pid: int | None,
        dbname: str | None,
        interval: float = 0.5,
        workers: int = 1,
    ):
        self.server_pid = server_pid
        self.dbname = dbname
        self.workers = workers
        self.rss_max: dict[int, int] = {}  # server processes: the largest RSS seen
        self.roles: dict[int, str] = {}
        self.interval = interval
        self.group: dict[int, str] = {}
        self.first: dict[int, float] = {}  # CPU at start; 0 for processes started since
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")
        self._machine0 = (0.0, 0.0, 0.0)
        self._reaped0 = 0.0
        self._lock = threading.Lock()

    def _classify(self, pid: int, procs: dict[int, tuple[int, str, float, float]]) -> str:
        me = os.getpid()
        if pid == me:
            return "loadgen"
        p = pid
        for _ in range(16):  # walk up to the server
            if p == self.server_pid:
                return "server"
            st = procs.get(p)
            if st is None or st[0] <= 1:
                break
            p = st[0]
        if procs[pid][1].startswith("postgres"):
            title = _cmdline(pid)
            if self.dbname and f" {self.dbname} " in f"{title} ":
                return "pg_ours"
            if title.startswith("postgres: ") and "(" in title:  # a client backend
                return "pg_other"
            return "pg_shared"
        return "other"

    def _sample(self, initial: bool = False) -> None:
        procs = _scan()
        with self._lock:
            for pid, (_ppid, _comm, cpu, _children) in procs.items():
                if pid not in self.group:
                    self.group[pid] = self._classify(pid, procs)
                    self.first[pid] = cpu if initial else 0.0
                self.last[pid] = cpu
                if self.group[pid] == "server":
                    rss = rss_bytes(pid)
                    if rss is not None and rss > self.rss_max.get(pid, 0):
                        self.rss_max[pid] = rss
                    if pid not in self.roles:
                        self.roles[pid] = server_role(pid, self.server_pid, self.workers)

    def _reaped_by_postmaster(self) -> float:
        for pid, (ppid, comm, _cpu, children) in _scan().items():
            if comm.startswith("postgres") and ppid <= 1 and pid:
                return children
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self._machine0 = _machine_ticks()
        self._reaped0 = self._reaped_by_postmaster()
        self._sample(initial=True)
        self._thread.start()

    def stop(self, requests: int) -> dict[str, float]:
        """Stop sampling; CPU per group in ms per successful request and as shares of the
        machine (100 % = every core busy for the whole interval)."""
        self._stop.set()
        self._thread.join()
        self._sample()
        busy1, total1, steal1 = _machine_ticks()
        busy = busy1 - self._machine0[0]
        total = max(total1 - self._machine0[1], 1e-9)
        steal = max(steal1 - self._machine0[2], 0.0)
        used = dict.fromkeys(GROUPS, 0.0)
        for pid, group in self.group.items():
            used[group] += max(self.last[pid] - self.first[pid], 0.0)
        started = sum(1 for pid, g in self.group.items() if g == "pg_ours" and not self.first[pid])
        out: dict[str, float] = {
            "machine_busy_percent": round(100 * busy / total, 1),
            "pg_backends_started": started,
            # exited children of the postmaster, all databases (other work included)
            "pg_reaped_all_percent": round(
                100 * max(self._reaped_by_postmaster() - self._reaped0, 0.0) / total, 1
            ),
        }
        for name, seconds in used.items():
            out[f"{name}_percent"] = round(100 * seconds / total, 1)
            if requests:
                out[f"{name}_ms_per_request"] = round(1000 * seconds / requests, 3)
        if requests:
            out["pg_ms_per_request"] = out["pg_ours_ms_per_request"]
        out["steal_percent"] = round(100 * steal / total, 1)
        out["unaccounted_percent"] = round(
            100 * max(busy - steal - sum(used.values()), 0.0) / total, 1
        )
        return out

    def memory(self) -> dict[str, object]:
        """The largest RSS seen of each server process, sampled every ``interval`` seconds."""
        procs = [
            {
                "pid": pid,
                "role": self.roles.get(pid, "helper"),
                "max_rss_mib": round(rss / 2**20, 1),
            }
            for pid, rss in sorted(self.rss_max.items())
        ]
        workers = [
            round(rss / 2**20, 1)
            for pid, rss in self.rss_max.items()
            if self.roles.get(pid) == "worker"
        ]
        return {
            "max_rss_mib_per_worker": max(workers) if workers else None,
            "workers_seen": len(workers),
            "processes": procs,
            "sampled_every_s": self.interval,
        }


def loadavg() -> str:
    return _read("/proc/loadavg").strip()
