"""mlbook.tools.subproc: a limit that holds even when the program leaves helpers holding its output."""
import sys
import time

import pytest

from mlbook.tools import subproc

# a parent that starts a helper sharing its stdout, then hangs: subprocess.run(timeout=…) would kill the
# parent and then wait for the helper to close the pipe, i.e. forever
HANGS_WITH_A_HELPER = (
    "import subprocess, sys, time; print('started', flush=True); "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"
)


def test_returns_code_and_both_streams():
    r = subproc.run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
                    timeout=60)
    assert (r.returncode, r.stdout.strip(), r.stderr.strip()) == (3, "out", "err")
    merged = subproc.run([sys.executable, "-c", "import sys; print('a', flush=True); print('b', file=sys.stderr)"],
                         timeout=60, merge_stderr=True)
    assert merged.stdout.split() == ["a", "b"] and merged.stderr == ""


def test_a_hang_with_a_helper_ends_at_the_limit():
    t0 = time.monotonic()
    with pytest.raises(subproc.TimedOut) as e:
        subproc.run([sys.executable, "-c", HANGS_WITH_A_HELPER], timeout=3)
    assert time.monotonic() - t0 < 20
    assert "started" in e.value.output and "ran past 3 s" in str(e.value)
