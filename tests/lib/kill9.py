"""Crash an operation with SIGKILL (kill -9) in a forked child, as a power cut or the OOM killer would.

The child runs the operation on the same files as the test and leaves with exit code 0 (it
finished) or 1 (it raised).  Each ``kill_*`` function returns True when the child died by
SIGKILL, that is when the crash landed before the operation finished; the test then recovers
and checks the files from the parent.
"""

import os
import signal
import time

from lib import faults


def run_in_child(action):
    """Start ``action()`` in a forked child; returns the child's pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            action()
        except BaseException:  # pylint: disable=broad-except
            code = 1
        os._exit(code)
    return pid


def died_by_sigkill(pid):
    """Wait for the child; True when SIGKILL ended it."""
    status = os.waitpid(pid, 0)[1]
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def kill_after_call(modules, k, action):
    """Run ``action()`` in a child that SIGKILLs itself right after the k-th I/O call of ``modules``."""
    def crash_at_k():
        with faults.inject(modules, faults.FaultPlan(fail_at=k, action='kill', when='after')):
            action()
    return died_by_sigkill(run_in_child(crash_at_k))


def kill_after_delay(delay, action):
    """Run ``action()`` in a child and SIGKILL it from outside ``delay`` seconds later, wherever it is."""
    pid = run_in_child(action)
    time.sleep(delay)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return died_by_sigkill(pid)


def seconds_in_child(action):
    """How long ``action()`` takes in a child, fork to exit, at least 1 ms (calibrates ``kill_after_delay``)."""
    started = time.monotonic()
    died_by_sigkill(run_in_child(action))
    return max(time.monotonic() - started, 0.001)
