"""Run an external program with a limit that really holds.

``subprocess.run(..., capture_output=True, timeout=t)`` kills the child it started when ``t`` runs out,
then waits for its pipes to close.  A program that starts helpers of its own (Chromium's renderer, GPU
and crash-reporter processes; ``jupyter-book``'s Sphinx workers) leaves them holding those pipes, so the
wait never ends.  :func:`run` starts the program in a new process group, writes its output to a file
rather than a pipe, and on time-out kills the whole group: it returns (or raises) within ``timeout``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass
class Finished:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


class TimedOut(RuntimeError):
    """The program ran past its limit; its process group was killed.  ``output`` is what it wrote."""

    def __init__(self, args: list[str], timeout: float, output: str):
        self.args_, self.timeout, self.output = args, timeout, output
        tail = "\n".join(output.splitlines()[-40:])
        super().__init__(f"{args[0]} ran past {timeout:.0f} s and was killed (its process group with it); "
                         f"the end of its output:\n{tail}")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(args: list[str], timeout: float, *, env: dict | None = None, merge_stderr: bool = False) -> Finished:
    """Run ``args`` to completion within ``timeout`` seconds; raise :class:`TimedOut` otherwise.

    ``merge_stderr=True`` sends stderr into stdout (one interleaved log), as ``stderr=STDOUT`` would."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out, \
            tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=out if merge_stderr else err, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        code = None
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:  # always, also on a KeyboardInterrupt or a test's own time-out: the helpers left in its group
            _kill_group(proc.pid)
            proc.wait()
        out.seek(0)
        if code is None:
            raise TimedOut(list(args), timeout, out.read())
        err.seek(0)
        return Finished(list(args), code, out.read(), "" if merge_stderr else err.read())
