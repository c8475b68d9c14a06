"""Sampling profile of the server process with py-spy, and a text report of its hot spots.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;…;leaf count``, one line
per distinct stack). Idle threads (the event loop waiting in epoll) are not sampled, so shares
are of the time the server spent on the CPU (or blocked outside the event loop).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_PROCESS = re.compile(r'(?:process \d+:"[^"]*";?|thread \(0x[0-9A-Fa-f]+\);?)')
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy_path() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


def start_recording(
    pid: int,
    seconds: float,
    output: Path,
    *,
    rate: int = 100,
    subprocesses: bool = False,
    native: bool = False,
) -> subprocess.Popen[bytes]:
    exe = py_spy_path()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    cmd = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--function",
        "--full-filenames",
        "--output",
        str(output),
    ]
    if subprocesses:
        cmd.append("--subprocesses")
    if native:
        cmd.append("--native")  # needs to pause the process for each sample
    else:
        cmd.append("--nonblocking")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@dataclass(frozen=True)
class Frame:
    func: str
    file: str
    line: str

    @property
    def key(self) -> str:
        return f"{self.func} ({short_path(self.file)}:{self.line})"


def short_path(path: str) -> str:
    for marker in ("/site-packages/", "/src/"):
        if marker in path:
            return path.split(marker, 1)[1]
    m = re.search(r"/lib/python3\.\d+/(.*)$", path)
    if m:
        return "stdlib/" + m.group(1)
    return path


def area(path: str) -> str:
    """A coarse owner of a file: the package, or carnet's sub-package."""
    short = short_path(path)
    if short == "?":
        return "(no Python frame)"
    if short.startswith("carnet/"):
        parts = short.split("/")
        return "/".join(parts[:2]) if len(parts) > 2 else short
    if short.startswith("stdlib/"):
        mod = short.split("/")[1]
        return "stdlib:" + mod.removesuffix(".py")
    return short.split("/")[0].removesuffix(".py")


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text.strip())
    if not m:
        return Frame(text.strip(), "?", "")
    return Frame(m["func"], m["file"], m["line"] or "")


def load_stacks(path: Path) -> list[tuple[list[Frame], int]]:
    stacks = []
    for raw in path.read_text(errors="replace").splitlines():
        if not raw.strip():
            continue
        body, _, count = raw.rpartition(" ")
        if not count.isdigit():
            continue
        # --subprocesses prefixes pseudo-frames naming the processes (command lines may hold ';')
        body = _PROCESS.sub("", body)
        frames = [parse_frame(f) for f in body.split(";") if f]
        if not frames:
            frames = [Frame("(no Python frame: native code or GIL wait)", "?", "")]
        stacks.append((frames, int(count)))
    return stacks


def report(path: Path, top: int = 25, wall_seconds: float | None = None, rate: int = 100) -> str:
    stacks = load_stacks(path)
    total = sum(c for _, c in stacks)
    if not total:
        return "no samples"
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_area: Counter[str] = Counter()
    carnet_inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        leaf = frames[-1]
        self_time[leaf.key] += count
        self_area[area(leaf.file)] += count
        seen: set[str] = set()
        for f in frames:
            if f.key not in seen:
                seen.add(f.key)
                inclusive[f.key] += count
                if short_path(f.file).startswith("carnet/"):
                    carnet_inclusive[f.key] += count
    lines = [f"samples: {total}"]
    if wall_seconds:
        busy = total / (rate * wall_seconds)
        lines.append(
            f"server busy: {100 * busy:.0f} % (non-idle samples / samples possible for one "
            f"process over {wall_seconds:g} s at {rate} Hz)"
        )

    def table(title: str, counter: Counter[str]) -> None:
        lines.append("")
        lines.append(title)
        for key, count in counter.most_common(top):
            lines.append(f"  {100 * count / total:5.1f} %  {key}")

    table("self time by package / carnet module (leaf frame's file):", self_area)
    table("self time by function (leaf frames):", self_time)
    table("inclusive time, carnet functions (time with callees):", carnet_inclusive)
    table("inclusive time, all functions:", inclusive)
    return "\n".join(lines)


if __name__ == "__main__":  # python -m bench.profile <raw file> [top]
    print(report(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
