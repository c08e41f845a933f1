"""Fault injection for the engine: fail the k-th I/O call with a realistic errno.

The engine reaches the file system only through each module's ``os`` name (and
``_fsatomic._exchange_syscall`` for RENAME_EXCHANGE).  ``inject`` swaps those
for a proxy that counts every I/O call and raises ``OSError(errno)`` at call
number ``fail_at``: once (``persistent=False``, a transient fault) or from then
on (``persistent=True``, a dead disk).  ``sweep`` drives an operation with
k = 1, 2, ... until it completes without the fault firing.

The proxy keeps the real semantics of what it wraps, so a fault looks to the
engine exactly like the kernel's:

* ``close`` releases the descriptor and then reports the error (Linux close(2)).
* ``os.path.exists``/``isdir``/``isfile``/``islink``/``lexists`` answer False on
  a failed stat, as the real ones do -- an EIO there looks like "missing".  They
  are logged as ``path.isdir`` etc.: a fault there is silent, so sampled sweeps
  always include them.
* ``os.walk`` reports a failed directory listing to ``onerror`` (default: skip
  the directory silently), as the real one does.
* ``os.scandir`` fails when opened; its entries' ``stat()`` counts as an lstat.

Instead of raising, a plan can ``os.kill(os.getpid(), SIGKILL)`` just before or
just after call k (``action='kill'``) -- a crash at an exact point, e.g. between
two renames or between a rename and the directory fsync.  An ``observer``
(see tests/lib/durability.py) sees every call before and after it runs.
"""

import collections
import contextlib
import errno as errno_mod
import os as real_os
import posixpath
import signal
import threading

# Calls that change or read file data and metadata.  Listing a name here routes
# it through the plan; anything else the engine reaches through ``os`` (constants,
# getpid, fspath, ...) is passed through untouched.
IO_CALLS = frozenset((
    'open', 'read', 'pread', 'readv', 'write', 'pwrite', 'writev', 'fsync', 'fdatasync',
    'replace', 'rename', 'renames', 'link', 'symlink', 'unlink', 'remove', 'rmdir', 'removedirs',
    'mkdir', 'makedirs', 'mknod', 'mkfifo', 'chmod', 'fchmod', 'lchmod', 'chown', 'fchown',
    'lchown', 'utime', 'setxattr', 'getxattr', 'listxattr', 'removexattr', 'copy_file_range',
    'sendfile', 'ftruncate', 'truncate', 'posix_fallocate', 'posix_fadvise', 'lseek', 'close', 'stat', 'lstat',
    'fstat', 'readlink', 'listdir', 'scandir', 'access', 'statvfs', 'fstatvfs', 'exchange',
    'walk', 'fwalk', 'dup', 'flock', 'lockf',
) + tuple('path.' + name for name in ('exists', 'lexists', 'isdir', 'isfile', 'islink', 'ismount')))

# Calls that change the file system (the subset a "read-only" check cares about).
MUTATING_CALLS = frozenset((
    'write', 'pwrite', 'writev', 'replace', 'rename', 'renames', 'link', 'symlink', 'unlink',
    'remove', 'rmdir', 'removedirs', 'mkdir', 'makedirs', 'mknod', 'mkfifo', 'chmod', 'fchmod',
    'lchmod', 'chown', 'fchown', 'lchown', 'utime', 'setxattr', 'removexattr', 'copy_file_range',
    'sendfile', 'ftruncate', 'truncate', 'posix_fallocate', 'exchange',
))

REALISTIC_ERRNOS = (errno_mod.EIO, errno_mod.ENOSPC, errno_mod.EDQUOT, errno_mod.EACCES, errno_mod.EROFS)

# os.path predicates that swallow OSError and answer False, and the ones that raise.
_PATH_PREDICATES = ('exists', 'lexists', 'isdir', 'isfile', 'islink', 'ismount')
_PATH_STATTERS = ('getsize', 'getmtime', 'getatime', 'getctime', 'samefile')

# Totals for the reliability summary table (tests/reliability/conftest.py prints them).
STATS = collections.Counter()


def record(kind, amount=1):
    """Add ``amount`` to the summary counter ``kind`` (fault_points, crash_iterations, inputs_fuzzed)."""
    STATS[kind] += amount


class InjectedFault(OSError):
    """The OSError raised by the injector (a subclass so tests can tell it apart)."""


class FaultPlan:
    """Which call fails, how, and a log of every call made.

    ``fail_at``: the call number (1-based, counting only calls in ``only`` when
    given) that fails.  ``persistent``: every later call fails too.  ``err``: the
    errno.  ``action``: ``'raise'`` or ``'kill'`` (SIGKILL this process);
    ``when``: ``'before'`` the real call runs or ``'after'`` it (kill only: the
    call took effect, then the process died).  ``observer``: an object with
    ``before(name, args, kwargs)`` and ``after(name, args, kwargs, result, token)``,
    and optionally ``failed(name, args, kwargs)`` (told when a fault hits a call) and
    ``error(name, args, kwargs, exc)`` (told when the real call raised).
    """

    def __init__(self, fail_at=None, persistent=False, err=errno_mod.EIO, only=None,
                 action='raise', when='before', observer=None):
        if action not in ('raise', 'kill'):
            raise ValueError('action must be raise or kill')
        if when not in ('before', 'after'):
            raise ValueError('when must be before or after')
        self.fail_at = fail_at
        self.persistent = persistent
        self.err = err
        self.only = frozenset(only) if only else None
        self.action = action
        self.when = when
        self.observer = observer
        self.calls = 0
        self.fired = 0
        self.log = []
        self.fired_at = None
        self._lock = threading.Lock()

    def _hit(self, name):
        if self.only is not None and name not in self.only:
            return None
        with self._lock:
            self.calls += 1
            number = self.calls
            self.log.append(name)
            hit = self.fail_at is not None and (number == self.fail_at or (self.persistent and number > self.fail_at))
            if hit:
                self.fired += 1
                if self.fired_at is None:
                    self.fired_at = (number, name)
        return number if hit else None

    def check(self, name, args):
        """Count a call; raise (or die) if it is the one that fails."""
        number = self._hit(name)
        if number is not None:
            self._fire(name, args, number)

    def _fire(self, name, args, number):
        if self.action == 'kill':
            real_os.kill(real_os.getpid(), signal.SIGKILL)
        target = args[0] if args and isinstance(args[0], (str, bytes)) else None
        raise InjectedFault(self.err, 'injected %s in %s() (call %d)' % (real_os.strerror(self.err), name, number), target)

    def call(self, name, func, args, kwargs, release=None):
        """Run ``func`` under the plan: count, observe, fail or kill as planned."""
        number = self._hit(name)
        observer = self.observer
        if number is not None and self.when == 'before':
            if observer is not None and self.action == 'raise' and hasattr(observer, 'failed'):
                observer.failed(name, args, kwargs)
            if release is not None:
                release()
            self._fire(name, args, number)
        token = observer.before(name, args, kwargs) if observer is not None else None
        try:
            result = func(*args, **kwargs)
        except OSError as exc:
            if observer is not None and hasattr(observer, 'error'):
                observer.error(name, args, kwargs, exc)
            raise
        if observer is not None:
            observer.after(name, args, kwargs, result, token)
        if number is not None:
            self._fire(name, args, number)
        return result

    @property
    def fired_call(self):
        """The name of the call the fault hit first, or None."""
        return self.fired_at[1] if self.fired_at else None


class _FaultyDirEntry:
    """A DirEntry whose ``stat()`` (an lstat on a cache miss) goes through the plan."""

    def __init__(self, entry, plan):
        self._entry = entry
        self._plan = plan
        self.name = entry.name
        self.path = entry.path

    def stat(self, follow_symlinks=True):
        return self._plan.call('stat', self._entry.stat, (), {'follow_symlinks': follow_symlinks})

    def __getattr__(self, name):
        return getattr(self._entry, name)

    def __fspath__(self):
        return self._entry.path

    def __repr__(self):
        return '<faulty %r>' % (self._entry,)


class _FaultyScandir:
    def __init__(self, iterator, plan):
        self._iterator = iterator
        self._plan = plan

    def __iter__(self):
        return self

    def __next__(self):
        return _FaultyDirEntry(next(self._iterator), self._plan)

    def close(self):
        self._iterator.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._iterator.close()
        return False


class _FaultyPath:
    """``os.path`` for a FaultyOS: the stat-based helpers count as stat calls."""

    def __init__(self, plan):
        self._plan = plan

    def __getattr__(self, name):
        value = getattr(posixpath, name)
        plan = self._plan
        if name in _PATH_PREDICATES:
            def predicate(*args, **kwargs):
                try:
                    plan.check('path.' + name, args)
                except OSError:
                    return False
                return value(*args, **kwargs)
            return predicate
        if name in _PATH_STATTERS:
            def statter(*args, **kwargs):
                plan.check('stat', args)
                return value(*args, **kwargs)
            return statter
        return value


class FaultyOS:
    """A stand-in for the ``os`` module whose I/O calls consult a FaultPlan."""

    def __init__(self, plan):
        self._plan = plan
        self.path = _FaultyPath(plan)

    def __getattr__(self, name):
        value = getattr(real_os, name)
        if name in IO_CALLS and callable(value):
            plan = self._plan
            special = getattr(self, '_call_' + name, None)
            if special is not None:
                return special

            def wrapper(*args, **kwargs):
                return plan.call(name, value, args, kwargs)
            wrapper.__name__ = name
            return wrapper
        return value

    def _call_close(self, fd):
        # close(2) releases the descriptor even when it reports an error.
        return self._plan.call('close', real_os.close, (fd,), {}, release=lambda: real_os.close(fd))

    def _call_scandir(self, path='.'):
        iterator = self._plan.call('scandir', real_os.scandir, (path,), {})
        return _FaultyScandir(iterator, self._plan)

    def _call_walk(self, top, topdown=True, onerror=None, followlinks=False):
        """os.walk over the proxied scandir, with the real one's error handling."""
        top = real_os.fspath(top)
        try:
            listing = self._call_scandir(top)
        except OSError as exc:
            if onerror is not None:
                onerror(exc)
            return
        dirs, nondirs, walk_into = [], [], []
        with listing:
            for entry in listing:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                (dirs if is_dir else nondirs).append(entry.name)
                if not topdown and is_dir:
                    if followlinks or not entry.is_symlink():
                        walk_into.append(entry.path)
        if topdown:
            yield top, dirs, nondirs
            for name in dirs:
                path = real_os.path.join(top, name)
                if followlinks or not real_os.path.islink(path):
                    yield from self._call_walk(path, topdown, onerror, followlinks)
        else:
            for path in walk_into:
                yield from self._call_walk(path, topdown, onerror, followlinks)
            yield top, dirs, nondirs


@contextlib.contextmanager
def inject(modules, plan):
    """Route the given engine modules' ``os`` through ``plan`` for the duration."""
    proxy = FaultyOS(plan)
    saved = []
    for module in modules:
        if not hasattr(module, 'os'):
            continue  # pure logic, no file-system access
        saved.append((module, 'os', module.os))
        module.os = proxy
        real_exchange = getattr(module, '_exchange_syscall', None)
        if real_exchange is not None:
            saved.append((module, '_exchange_syscall', real_exchange))

            def exchange(first, second, _real=real_exchange):
                return plan.call('exchange', _real, (first, second), {})
            module._exchange_syscall = exchange
    try:
        yield plan
    finally:
        for module, name, value in reversed(saved):
            setattr(module, name, value)


def sweep(modules, operation, after_each, persistent=False, err=errno_mod.EIO, limit=100000, only=None,
          observer_factory=None, start=1, stride=1, points=None):
    """Run ``operation()`` failing call k for k = 1, 2, ... until it completes unfaulted.

    ``after_each(k, plan, error)`` runs after every attempt (``error`` is the exception
    the operation raised, or None) and holds the test's assertions.  ``only`` limits
    the counted calls to those names; ``observer_factory()`` gives each attempt a fresh
    observer (``plan.observer``); ``start``/``stride`` sample every stride-th call
    from call ``start`` on; ``points`` (sorted call numbers) samples exactly those,
    then runs once more past the last call.  Returns the number of fault points exercised.
    """
    if points is not None:
        chosen = iter(list(points) + [limit])
    k = start - stride
    exercised = 0
    while True:
        k = next(chosen) if points is not None else k + stride
        if k > limit:
            raise AssertionError('operation did not complete within %d fault points' % limit)
        observer = observer_factory() if observer_factory is not None else None
        plan = FaultPlan(fail_at=k, persistent=persistent, err=err, only=only, observer=observer)
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
            record('fault_points', exercised)
            return exercised
        exercised += 1


def count_calls(modules, operation, only=None):
    """How many I/O calls ``operation`` makes (no fault injected)."""
    plan = FaultPlan(only=only)
    with inject(modules, plan):
        operation()
    return plan.calls


# The calls where a fault or crash changes what is on disk or what is durable; a
# sampled sweep always includes every one of them.
CRITICAL_CALLS = frozenset(('fsync', 'fdatasync', 'replace', 'rename', 'exchange', 'link', 'symlink', 'unlink',
                            'remove', 'rmdir', 'mkdir') + tuple('path.' + name for name in _PATH_PREDICATES))


def sample_points(log, budget, critical=CRITICAL_CALLS, offset=0):
    """Call numbers (1-based) of ``log`` to fault: every ``critical`` call, plus other calls
    spread evenly (shifted by ``offset``) up to ``budget`` points in all."""
    must = [k for k, name in enumerate(log, 1) if name in critical]
    others = [k for k, name in enumerate(log, 1) if name not in critical]
    room = max(0, budget - len(must))
    if others and room:
        step = max(1, len(others) // room)
        must.extend(others[(offset % step)::step][:room])
    return sorted(set(must))


def call_log(modules, operation, only=None, observer=None):
    """The names of the I/O calls ``operation`` makes, in order (no fault injected)."""
    plan = FaultPlan(only=only, observer=observer)
    with inject(modules, plan):
        operation()
    return list(plan.log)
