"""py-spy profiles of the daemon, and a summary of where the time went.

``python -m benchmarks.profile FILE.txt [--top 25]`` summarises a py-spy ``--format raw``
(collapsed stacks) file: the functions with the most samples on top of the stack (self) and
anywhere in the stack (inclusive).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

from benchmarks.procs import Children


class Recorder:
    """``py-spy record`` attached to a process for as long as the recorder runs."""

    def __init__(self, children: Children, pid: int, out: Path, log: Path) -> None:
        self._children = children
        self.out = out
        self._proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self._proc = children.start(
            [exe, "record", "--pid", str(pid), "--rate", "200", "--nonblocking",
             "--format", "raw", "--output", str(out)], log=log)

    def stop(self) -> Path:
        if self._proc is not None:
            self._children.stop(self._proc, timeout=30, sig=signal.SIGINT)
            self._proc = None
        return self.out


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; drop the line number.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(path.split("/")[-2:])
    return f"{name} ({short})" if path else name


def summarise(path: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return f"{path}: no samples"
    lines = [f"{path.name}: {total} samples", "", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.files:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
