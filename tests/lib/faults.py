"""Fault injection for the engine: fail the k-th I/O call with a realistic errno.

The engine reaches the file system only through each module's ``os`` name (and
``_fsatomic._exchange_syscall`` for RENAME_EXCHANGE).  ``inject`` swaps those
for a proxy that counts every I/O call and raises ``OSError(errno)`` at call
number ``fail_at``: once (``persistent=False``, a transient fault) or from then
on (``persistent=True``, a dead disk).  ``sweep`` drives an operation with
k = 1, 2, ... until it completes without the fault firing.
"""

import contextlib
import errno as errno_mod
import os as real_os
import threading

IO_CALLS = frozenset((
    'open', 'read', 'pread', 'write', 'pwrite', 'fsync', 'fdatasync', 'replace', 'rename',
    'link', 'symlink', 'unlink', 'remove', 'rmdir', 'mkdir', 'makedirs', 'chmod', 'fchmod',
    'lchmod', 'chown', 'fchown', 'lchown', 'utime', 'setxattr', 'copy_file_range', 'sendfile',
    'ftruncate', 'truncate', 'exchange',
))

REALISTIC_ERRNOS = (errno_mod.EIO, errno_mod.ENOSPC, errno_mod.EDQUOT, errno_mod.EACCES, errno_mod.EROFS)


class InjectedFault(OSError):
    """The OSError raised by the injector (a subclass so tests can tell it apart)."""


class FaultPlan:
    def __init__(self, fail_at=None, persistent=False, err=errno_mod.EIO, only=None):
        self.fail_at = fail_at
        self.persistent = persistent
        self.err = err
        self.only = frozenset(only) if only else None
        self.calls = 0
        self.fired = 0
        self.log = []
        self._lock = threading.Lock()

    def check(self, name, args):
        if self.only is not None and name not in self.only:
            return
        with self._lock:
            self.calls += 1
            number = self.calls
            self.log.append(name)
            hit = self.fail_at is not None and (number == self.fail_at or (self.persistent and number > self.fail_at))
            if hit:
                self.fired += 1
        if hit:
            target = args[0] if args and isinstance(args[0], (str, bytes)) else None
            raise InjectedFault(self.err, 'injected %s in %s() (call %d)' % (real_os.strerror(self.err), name, number), target)


class FaultyOS:
    """A stand-in for the ``os`` module whose I/O calls consult a FaultPlan."""

    def __init__(self, plan):
        self._plan = plan

    def __getattr__(self, name):
        value = getattr(real_os, name)
        if name in IO_CALLS and callable(value):
            plan = self._plan

            def wrapper(*args, **kwargs):
                plan.check(name, args)
                return value(*args, **kwargs)
            wrapper.__name__ = name
            return wrapper
        return value


@contextlib.contextmanager
def inject(modules, plan):
    """Route the given engine modules' ``os`` through ``plan`` for the duration."""
    proxy = FaultyOS(plan)
    saved = []
    for module in modules:
        saved.append((module, 'os', module.os))
        module.os = proxy
        real_exchange = getattr(module, '_exchange_syscall', None)
        if real_exchange is not None:
            saved.append((module, '_exchange_syscall', real_exchange))

            def exchange(first, second, _real=real_exchange):
                plan.check('exchange', (first, second))
                return _real(first, second)
            module._exchange_syscall = exchange
    try:
        yield plan
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


def sweep(modules, operation, after_each, persistent=False, err=errno_mod.EIO, limit=100000):
    """Run ``operation()`` failing call k for k = 1, 2, ... until it completes unfaulted.

    ``after_each(k, plan, error)`` runs after every attempt (``error`` is the exception
    the operation raised, or None) and holds the test's assertions.  Returns the
    number of fault points exercised.
    """
    k = 0
    while True:
        k += 1
        if k > limit:
            raise AssertionError('operation did not complete within %d fault points' % limit)
        plan = FaultPlan(fail_at=k, persistent=persistent, err=err)
        error = None
        with inject(modules, plan):
            try:
                operation()
            except OSError as exc:
                error = exc
            except Exception as exc:  # the engine may wrap OSError in its own error types
                error = exc
        after_each(k, plan, error)
        if not plan.fired:
            return k - 1


def count_calls(modules, operation):
    """How many I/O calls ``operation`` makes (no fault injected)."""
    plan = FaultPlan()
    with inject(modules, plan):
        operation()
    return plan.calls
