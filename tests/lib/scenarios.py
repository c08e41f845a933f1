"""Engine operations as repeatable scenarios for the reliability suite.

A scenario builds a starting state once (``prepare``), can put the work
directory back to exactly that state (``reset``, hardlinks and metadata kept),
runs one engine operation (``run``), runs the engine's recovery entry point
(``recover``) and describes the state a user would see (``observe``).  The
fault sweep and the crash loop drive every scenario the same way:

    prepare -> [reset -> run (faulted or killed) -> recover -> check] * N

and ``check`` asserts the promise: the observed state is exactly the state
before the operation or exactly the state after a clean run, every published
backup verifies, and nothing unfinished is left behind.

A scenario whose engine file has not landed yet is reported as unavailable
(the tests skip it with the reason) rather than failing the suite.
"""

import errno
import importlib
import json
import os
import re
import shutil
import stat
import time

from lib import durability, faults, trees

FSYNC_CALLS = ('fsync', 'fdatasync')
ENGINE = 'ansible_collections.lastgood.rollback.plugins.module_utils.'

# Fixed identity for everything that would otherwise vary between runs, so that
# "the state after a clean run" is one value.
FIXED_TS = '2026-11-21T23:15:00.000000Z'
FIXED_HOST = 'reliability-host'
FIXED_USER = 'reliability'


class Unavailable(Exception):
    """The engine file a scenario needs is not there (yet)."""


def engine(name):
    try:
        return importlib.import_module(ENGINE + name)
    except ImportError as exc:
        raise Unavailable('engine module %s is not available: %s' % (name, exc)) from None


def engine_modules():
    """Every engine module that exists now (all of them are routed through the fault proxy)."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        'plugins', 'module_utils')
    found = []
    for name in sorted(os.listdir(here)):
        if name.startswith('_') and name.endswith('.py') and name != '__init__.py':
            try:
                found.append(importlib.import_module(ENGINE + name[:-3]))
            except ImportError:
                continue
    return found


def clone_tree(src, dst):
    """Copy ``src`` to ``dst`` keeping modes, owners, mtimes, symlinks and hardlinks."""
    seen = {}
    st = os.lstat(src)
    os.mkdir(dst)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        out_dir = dst if rel == '.' else os.path.join(dst, rel)
        for name in dirnames + filenames:
            source = os.path.join(dirpath, name)
            target = os.path.join(out_dir, name)
            entry = os.lstat(source)
            if stat.S_ISLNK(entry.st_mode):
                os.symlink(os.readlink(source), target)
                os.lchown(target, entry.st_uid, entry.st_gid)
                os.utime(target, ns=(entry.st_atime_ns, entry.st_mtime_ns), follow_symlinks=False)
            elif stat.S_ISDIR(entry.st_mode):
                os.mkdir(target)
            elif stat.S_ISREG(entry.st_mode):
                key = (entry.st_dev, entry.st_ino)
                if entry.st_nlink > 1 and key in seen:
                    os.link(seen[key], target)
                    continue
                seen[key] = target
                shutil.copyfile(source, target, follow_symlinks=False)
                _copy_meta(target, entry)
    # directories last (bottom-up) so that creating their entries does not move their mtimes
    for dirpath, dirnames, _files in os.walk(src, topdown=False):
        rel = os.path.relpath(dirpath, src)
        out_dir = dst if rel == '.' else os.path.join(dst, rel)
        for name in dirnames:
            entry = os.lstat(os.path.join(dirpath, name))
            if not stat.S_ISLNK(entry.st_mode):
                _copy_meta(os.path.join(out_dir, name), entry)
    _copy_meta(dst, st)


def _copy_meta(path, entry):
    os.chown(path, entry.st_uid, entry.st_gid)
    os.chmod(path, stat.S_IMODE(entry.st_mode))
    os.utime(path, ns=(entry.st_atime_ns, entry.st_mtime_ns))


def remove_tree(path):
    if not os.path.lexists(path):
        return
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    shutil.rmtree(path)


class Scenario:
    """One engine operation over a private work directory (see the module docstring)."""

    name = None
    needs = ()               # engine module names that must exist
    durable = True           # the durability tracker applies to a clean run
    has_recovery = False     # the engine has a recovery entry point for this operation
    markers = durability.DEFAULT_MARKERS
    # regexes over paths whose failed fsync the engine documents as a warning, not a failure
    best_effort_fsync = ()
    # (regex over a problem message, description): engine bugs found and reported, not fixed yet
    known_bugs = ()

    def __init__(self, base):
        self.base = os.path.abspath(os.fspath(base))
        self.work = os.path.join(self.base, 'work')
        self.template = os.path.join(self.base, 'template')
        self.old = None
        self.new = None
        for name in self.needs:
            engine(name)

    # -- to implement -----------------------------------------------------------

    def build(self):
        """Create the starting state under ``self.work`` (may use the engine, unfaulted)."""
        raise NotImplementedError

    def run(self):
        """The operation under test; returns the engine's result."""
        raise NotImplementedError

    def recover(self):
        """The engine's recovery entry point after an interrupted operation."""

    def observe(self):
        """The state a user sees, comparable between runs (digests, parsed content)."""
        raise NotImplementedError

    def invariants(self):
        """Problems that must never exist after recovery, as a list of messages."""
        if self.has_recovery:
            return ['left behind: %s' % path for path in self.leftovers()]
        # without a recovery step, the next operation must clean up what an interrupted one left
        return self.probe(self.follow_up)

    def follow_up(self):
        """The next operation a user would run; it must work and leave nothing behind."""

    def probe(self, action):
        """Run ``action`` on a throwaway copy of the work directory (same paths); return its problems."""
        aside = os.path.join(self.base, 'aside')
        remove_tree(aside)
        os.rename(self.work, aside)
        problems = []
        try:
            clone_tree(aside, self.work)
            try:
                problems.extend(action() or [])
            except Exception as exc:  # pylint: disable=broad-except
                problems.append('the next operation fails after the interruption: %r' % (exc,))
            problems.extend('left behind (the next operation did not clean it up): %s' % path
                            for path in self.leftovers())
        finally:
            remove_tree(self.work)
            os.rename(aside, self.work)
        return problems

    def leftovers(self):
        return trees.leftovers(self.work, markers=self.markers)

    def did_its_job(self, result):
        """After a clean run: problems with what it was asked to do, judged independently of
        the engine (so that an engine that silently does less cannot define "new")."""
        return []

    def pending_recovery(self):
        """Whether the interrupted state holds something recovery has to finish or undo."""
        return bool(self.leftovers())

    def reported_trouble(self, result):
        """Whether a result that did not raise still says something went wrong (a warning)."""
        return False

    # -- driver -------------------------------------------------------------------

    def prepare(self):
        os.makedirs(self.base, exist_ok=True)
        remove_tree(self.work)
        remove_tree(self.template)
        self.build()
        clone_tree(self.work, self.template)
        self.reset()
        self.old = self.observe()
        result = self.run()
        self.new = self.observe()
        problems = self.did_its_job(result)
        assert not problems, '%s: a clean run did not do its job: %s' % (self.name, problems)
        assert self.new != self.old, '%s: a clean run changed nothing; the scenario proves nothing' % self.name
        problems = self.invariants()
        assert not problems, '%s: a clean run breaks the invariants: %s' % (self.name, problems)
        self.reset()
        return self

    def reset(self):
        remove_tree(self.work)
        clone_tree(self.template, self.work)

    def snapshot(self, where):
        remove_tree(where)
        clone_tree(self.work, where)

    def restore_snapshot(self, where):
        remove_tree(self.work)
        clone_tree(where, self.work)

    def verdict(self, error=None, result=None):
        """Everything wrong with the current (recovered) state, as a list of messages."""
        problems = list(self.invariants())
        state = self.observe()
        if state == self.old:
            if error is None and result is not None and not self.reported_trouble(result):
                problems.append('the operation reported success but the state is the old one')
        elif state != self.new and not self.documented_partial(state):
            problems.append('state is neither the old nor the new one: %s'
                            % describe_difference(self.old, self.new, state))
        return problems

    def documented_partial(self, state):
        """Whether ``state`` is a documented stop between two independent atomic steps."""
        return False


def describe_difference(old, new, state):
    if isinstance(state, dict) and isinstance(old, dict) and isinstance(new, dict):
        parts = []
        for key in sorted(set(state) | set(old) | set(new), key=str):
            value = state.get(key)
            if value != old.get(key) and value != new.get(key):
                parts.append('%s=%s (old %s, new %s)' % (key, _short(value), _short(old.get(key)), _short(new.get(key))))
            elif value == old.get(key) and value != new.get(key):
                parts.append('%s is old' % key)
            elif value == new.get(key) and value != old.get(key):
                parts.append('%s is new' % key)
        return '; '.join(parts)
    return '%s (old %s, new %s)' % (_short(state), _short(old), _short(new))


def _short(value):
    text = repr(value)
    return text if len(text) < 120 else text[:117] + '...'


# -- audit log -------------------------------------------------------------------------


class AuditAppend(Scenario):
    """Append one event to a hash-chained audit log that is full enough to rotate first."""

    name = 'audit_append'
    needs = ('_audit',)
    best_effort_fsync = (r'\.jsonl\.head\.', r'/audit$')

    def build(self):
        audit = engine('_audit')
        self.log = os.path.join(self.work, 'audit', 'audit.jsonl')
        for number in range(3):
            audit.append(self.log, 'seed', run_id='r%d' % number, host=FIXED_HOST, user=FIXED_USER, ts=FIXED_TS,
                         detail={'n': number})

    def run(self):
        return engine('_audit').append(self.log, 'checkpoint', run_id='run-1', host=FIXED_HOST, user=FIXED_USER,
                                       ts=FIXED_TS, detail={'what': 'reliability'},
                                       rotate_bytes=os.path.getsize(self.log) + 64)

    def did_its_job(self, result):
        audit = engine('_audit')
        problems = []
        if len(audit.rotated_files(self.log)) != 1:
            problems.append('the append did not rotate the full log')
        records = audit.records(self.log)
        if not records or records[-1].get('event') != 'checkpoint' or records[-1].get('_file') != self.log:
            problems.append('the new event is not the first line of the new live file')
        if not audit.verify(self.log)['ok']:
            problems.append('the chain does not verify across the rotation')
        return problems

    def recover(self):
        # the audit log has no separate recovery step: the next append cuts a torn tail
        pass

    def observe(self):
        records = engine('_audit').records(self.log)
        return tuple(json.dumps({k: v for k, v in r.items() if not k.startswith('_')}, sort_keys=True)
                     for r in records)

    def invariants(self):
        problems = super().invariants()
        result = engine('_audit').verify(self.log)
        if not result['ok']:
            problems.append('audit chain does not verify: %s' % result['message'])
        return problems

    def follow_up(self):
        audit = engine('_audit')
        audit.append(self.log, 'after', host=FIXED_HOST, user=FIXED_USER, ts=FIXED_TS)
        after = audit.verify(self.log)
        if not after['ok'] or after['torn_tail_bytes'] or after['unanchored_lines']:
            return ['the next append does not leave a clean, anchored chain: %s' % after['message']]
        return []

    def reported_trouble(self, result):
        return bool(result and result.get('warning'))


# -- lock ------------------------------------------------------------------------------


class LockAcquire(Scenario):
    """Take over a stale lock (its holder's pid is dead), with an audit event."""

    name = 'lock'
    needs = ('_lock', '_audit')
    # the takeover's audit line is fsynced; only its head anchor (temp file, then the
    # directory) is best effort, as _audit documents
    best_effort_fsync = (r'\.jsonl\.head\.', r'/audit$')

    def build(self):
        lock = engine('_lock')
        self.lock = os.path.join(self.work, 'run', 'rollback.lock')
        self.audit_log = os.path.join(self.work, 'audit', 'audit.jsonl')
        os.makedirs(os.path.dirname(self.lock))
        dead = lock.new_holder('old-run', 3600, pid=_dead_pid(), user=FIXED_USER)
        with open(self.lock, 'w') as handle:
            json.dump(dead, handle)

    def run(self):
        return engine('_lock').acquire(self.lock, 'new-run', ttl=600, pid=os.getpid(), user=FIXED_USER,
                                       audit_log=self.audit_log)

    def did_its_job(self, result):
        holder = engine('_lock').status(self.lock)['holder'] or {}
        audit = engine('_audit').records(self.audit_log) if os.path.exists(self.audit_log) else []
        problems = [] if holder.get('run_id') == 'new-run' else ['the lock is not held by the run that took it']
        if not any(record.get('event') == 'lock_stale_taken_over' for record in audit):
            problems.append('taking over the stale lock wrote no audit event')
        return problems

    def observe(self):
        # what a user can tell: who holds the lock (a stale holder and no holder are both "nobody")
        state = engine('_lock').status(self.lock)
        return state['holder'].get('run_id') if state['held'] else None

    def invariants(self):
        lock = engine('_lock')
        problems = super().invariants()
        state = lock.status(self.lock)
        if state['held'] and state['holder'].get('run_id') not in ('old-run', 'new-run'):
            problems.append('lock held by an unknown run: %r' % (state['holder'],))
        if state['held'] and state['holder'].get('run_id') == 'old-run':
            problems.append('a dead holder still counts as holding the lock')
        return problems

    def follow_up(self):
        lock = engine('_lock')
        if (lock.status(self.lock)['holder'] or {}).get('run_id') == 'new-run':
            lock.release(self.lock, 'new-run')
        lock.acquire(self.lock, 'next-run', ttl=600, pid=os.getpid(), user=FIXED_USER, audit_log=self.audit_log)
        lock.release(self.lock, 'next-run')
        if lock.status(self.lock)['holder'] is not None:
            return ['the lock is not free after its holder released it']
        return []


def _dead_pid():
    """A pid that is not running (the highest pid numbers are almost never in use)."""
    with open('/proc/sys/kernel/pid_max') as handle:
        pid = int(handle.read()) - 1
    while pid > 1:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        pid -= 1
    raise RuntimeError('no free pid')


# -- run state -------------------------------------------------------------------------


class RunStatePhase(Scenario):
    """Record a completed phase in a running run's state file."""

    name = 'run_state'
    needs = ('_state',)

    def build(self):
        state = engine('_state')
        self.state_dir = os.path.join(self.work, 'state')
        state.start(self.state_dir, 'run-7', meta={'level': 2})
        state.phase_done(self.state_dir, 'run-7', 'preflight', artifacts={'free_bytes': 1})

    def run(self):
        return engine('_state').phase_done(self.state_dir, 'run-7', 'checkpoint', artifacts={'backup': 'b1'})

    def did_its_job(self, result):
        state = engine('_state').load(self.state_dir, 'run-7')
        if state['completed_phases'] != ['preflight', 'checkpoint'] or state['artifacts'].get('checkpoint') != {
                'backup': 'b1'}:
            return ['the phase was not recorded: %r' % (state['completed_phases'],)]
        return []

    def follow_up(self):
        state = engine('_state')
        state.phase_done(self.state_dir, 'run-7', 'verify')
        if 'verify' not in state.load(self.state_dir, 'run-7')['completed_phases']:
            return ['the next phase_done was not recorded']
        return []

    def observe(self):
        current = engine('_state').load(self.state_dir, 'run-7')
        current.pop('updated', None)
        return json.dumps(current, sort_keys=True)


# -- config update ---------------------------------------------------------------------

CONFIG_ORIGINAL = {'partyMode': {'enabled': True, 'level': 3}, 'modes': ['a', 'b'], 'name': 'registry'}


class ConfigUpdate(Scenario):
    """Flip a key in a JSON registry file, with a sibling backup and automatic restore."""

    name = 'config_update'
    needs = ('_config',)

    def build(self):
        self.path = os.path.join(self.work, 'etc', 'app', 'custom_modes.json')
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, 'w') as handle:
            json.dump(CONFIG_ORIGINAL, handle, indent=2)
            handle.write('\n')
        os.chmod(self.path, 0o640)
        with open(self.path, 'rb') as handle:
            self.original = handle.read()
        self.original_mtime = os.stat(self.path).st_mtime_ns

    def run(self):
        return engine('_config').update(self.path, set_values={'partyMode.enabled': False},
                                        required_keys=['partyMode.enabled', 'name'])

    def observe(self):
        with open(self.path, 'rb') as handle:
            data = handle.read()
        st = os.stat(self.path)
        # the old state includes the old mtime: an automatic restore must put it back too
        return (data, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                st.st_mtime_ns if data == self.original else None)

    def invariants(self):
        problems = super().invariants()
        directory = os.path.dirname(self.path)
        for name in os.listdir(directory):
            if name.startswith(os.path.basename(self.path) + '.bak.'):
                with open(os.path.join(directory, name), 'rb') as handle:
                    if handle.read() != self.original:
                        problems.append('backup %s does not hold the original bytes' % name)
        return problems

    def follow_up(self):
        engine('_config').update(self.path, set_values={'partyMode.level': 4})
        return []

    def did_its_job(self, result):
        with open(self.path) as handle:
            document = json.load(handle)
        want = dict(CONFIG_ORIGINAL, partyMode={'enabled': False, 'level': 3})
        problems = [] if document == want else ['the file holds %r' % (document,)]
        backups = [name for name in os.listdir(os.path.dirname(self.path)) if '.bak.' in name]
        if len(backups) != 1:
            problems.append('expected one sibling backup, found %s' % backups)
        return problems


# -- backup store and restore --------------------------------------------------------------

MTIME = trees.MTIME_NS


def build_app_v1(root):
    """A small application tree with every entry type the store records."""
    trees.write_file(os.path.join(root, 'config.json'), b'{"feature": true, "version": 1}\n', 0o640)
    trees.write_file(os.path.join(root, 'bin', 'run.sh'), b'#!/bin/sh\nexec app --v1\n', 0o755)
    trees.write_file(os.path.join(root, 'data', 'blob.bin'), bytes(range(256)) * 64, 0o600)
    trees.write_file(os.path.join(root, 'data', 'hard-a'), b'shared inode\n', 0o644)
    os.link(os.path.join(root, 'data', 'hard-a'), os.path.join(root, 'data', 'hard-b'))
    os.symlink('config.json', os.path.join(root, 'current'))
    os.makedirs(os.path.join(root, 'empty'))
    os.chmod(os.path.join(root, 'bin'), 0o750)


def change_app_to_v2(root):
    """The live tree after a bad deploy: content, modes, added and removed entries all differ."""
    trees.write_file(os.path.join(root, 'config.json'), b'{"feature": false, "version": 2, "broken": true}\n', 0o644,
                     MTIME + 10 ** 9)
    trees.write_file(os.path.join(root, 'bin', 'run.sh'), b'#!/bin/sh\nexec app --v2\n', 0o700, MTIME + 10 ** 9)
    os.unlink(os.path.join(root, 'data', 'hard-b'))
    trees.write_file(os.path.join(root, 'data', 'new.txt'), b'added by v2\n', 0o644)
    os.unlink(os.path.join(root, 'current'))
    os.symlink('bin/run.sh', os.path.join(root, 'current'))
    os.rmdir(os.path.join(root, 'empty'))
    os.chmod(os.path.join(root, 'bin'), 0o755)


class StoreScenario(Scenario):
    """Shared set-up: a live tree at work/live/app and a store at work/store (set 'app')."""

    needs = ('_store', '_manifest')
    has_recovery = True

    def paths(self):
        self.live_root = os.path.join(self.work, 'live')
        self.target = os.path.join(self.live_root, 'app')
        self.backup_root = os.path.join(self.work, 'store')

    def store(self):
        return engine('_store').Store(self.backup_root, 'app')

    def recover(self):
        self.store().recover()

    def leftovers(self):
        found = trees.leftovers(self.work, markers=self.markers)
        journal = os.path.join(self.backup_root, 'app', '.journal')
        if os.path.isdir(journal):
            found.extend(os.path.join(journal, name) for name in os.listdir(journal))
        return found

    def backups(self):
        """{id: info} of every backup directory the store lists."""
        return {info['id']: info for info in self.store().list()}

    def data_digest(self, backup_id):
        return trees.tree_digest(os.path.join(self.store().data_dir(backup_id), self.target.lstrip('/')))

    def store_problems(self):
        """Every listed backup must be complete and verify; LASTGOOD must name one of them."""
        problems = []
        store = self.store()
        for backup_id, info in sorted(self.backups().items()):
            if not info['complete']:
                problems.append('backup %s is listed but incomplete: %s' % (backup_id, info['error']))
                continue
            check = store.verify(backup_id)
            if not check['ok']:
                problems.append('backup %s does not verify: %s' % (backup_id, check['mismatches'][:3]))
        lastgood = os.path.join(store.set_dir, 'LASTGOOD')
        if os.path.exists(lastgood):
            with open(lastgood) as handle:
                named = handle.read().strip()
            if named not in self.backups():
                problems.append('LASTGOOD names %s, which is not a backup' % named)
        return problems

    def invariants(self):
        return super().invariants() + self.store_problems()


class Backup(StoreScenario):
    """An incremental backup of a changed tree, marked last-good."""

    name = 'backup'

    def build(self):
        self.paths()
        build_app_v1(self.target)
        self.store().create([self.target], mark_lastgood=True)
        change_app_to_v2(self.target)

    def run(self):
        return self.store().create([self.target], incremental=True, mark_lastgood=True)

    def did_its_job(self, result):
        store = self.store()
        lastgood = [info for info in store.list() if info['lastgood']]
        if len(store.list()) != 2 or not lastgood:
            return ['expected two backups, the new one last-good: %r' % ([i['id'] for i in store.list()],)]
        if self.data_digest(lastgood[0]['id']) != trees.tree_digest(self.target):
            return ['the new backup does not hold the live tree']
        return []

    def documented_partial(self, state):
        # publishing the backup and marking it last-good are two atomic steps; the
        # engine reports "created, verified and published, but marking failed"
        return state == dict(self.new, lastgood=self.old['lastgood'])

    def observe(self):
        backups = self.backups()
        lastgood = [backup_id for backup_id, info in backups.items() if info['lastgood']]
        return {
            'live': trees.tree_digest(self.target),
            'backups': tuple(sorted(self.data_digest(backup_id) if info['complete'] else 'incomplete'
                                    for backup_id, info in backups.items())),
            'lastgood': self.data_digest(lastgood[0]) if lastgood else None,
        }


class Retention(StoreScenario):
    """keep_last=1 over four backups: LASTGOOD, the pinned checkpoint and the newest survive."""

    name = 'retention'

    def build(self):
        self.paths()
        build_app_v1(self.target)
        store = self.store()
        store.create([self.target], name='before-upgrade')
        for number in range(3):
            trees.write_file(os.path.join(self.target, 'config.json'), b'{"n": %d}\n' % number, 0o640, MTIME + number)
            created = store.create([self.target], mark_lastgood=(number == 0))
            time.sleep(0.01)
            del created

    def run(self):
        return self.store().retention(keep_last=1)

    def did_its_job(self, result):
        infos = self.store().list()
        kept = [info['id'] for info in infos]
        wanted = {infos[-1]['id']} if infos else set()
        wanted |= {info['id'] for info in infos if info['lastgood'] or info['pinned']}
        problems = [] if len(kept) == 3 and set(kept) == wanted else ['retention kept %s' % kept]
        if any(name.startswith('.deleting-') for name in os.listdir(self.store().set_dir)):
            problems.append('a deleted backup is still on disk')
        return problems

    def observe(self):
        backups = self.backups()
        return tuple(sorted((backup_id, info['complete'], info['lastgood'], info['pinned'])
                            for backup_id, info in backups.items()))


class RetentionRuns(StoreScenario):
    """keep_runs=1 over three finished runs' checkpoints and a failed one: the old finished ones go."""

    name = 'retention_runs'

    def build(self):
        self.paths()
        self.state_dir = os.path.join(self.work, 'runs')
        build_app_v1(self.target)
        store = self.store()
        state = engine('_state')
        for number, (run_id, ok) in enumerate((('r1', True), ('r2', False), ('r3', True), ('r4', True))):
            trees.write_file(os.path.join(self.target, 'config.json'), b'{"run": %d}\n' % number, 0o640,
                             MTIME + number)
            store.create([self.target], name='run-' + run_id, mark_lastgood=(number == 0))
            state.start(self.state_dir, run_id)
            if ok:
                state.finish(self.state_dir, run_id)
            else:
                state.fail(self.state_dir, run_id, 'failed')
            time.sleep(0.01)

    def run(self):
        return self.store().retention(keep_runs=1, state_dir=self.state_dir)

    def did_its_job(self, result):
        kept = sorted(self.backups())
        # r1 is LASTGOOD, r2 failed, r4 the newest: only r3 goes
        return [] if kept == ['run-r1', 'run-r2', 'run-r4'] and result == ['run-r3'] else [
            'retention kept %s, removed %s' % (kept, result)]

    def observe(self):
        return tuple(sorted((backup_id, info['complete'], info['lastgood'], info['pinned'],
                             self.data_digest(backup_id) if info['complete'] else None)
                            for backup_id, info in self.backups().items()))

    def documented_partial(self, state):
        # the pins are released in one atomic write, then the backups are removed one by one
        released = tuple((item[0], item[1], item[2], item[3] and item[0] not in ('run-r1', 'run-r3'), item[4])
                         for item in self.old)
        return state == released


class Remove(StoreScenario):
    """Remove a pinned checkpoint that later incremental backups hardlink their files from."""

    name = 'remove'
    doomed = 'before-upgrade'
    force = False

    def build(self):
        self.paths()
        build_app_v1(self.target)
        store = self.store()
        store.create([self.target], name=self.doomed)
        for number in range(2):
            trees.write_file(os.path.join(self.target, 'config.json'), b'{"n": %d}\n' % number, 0o640, MTIME + number)
            store.create([self.target], mark_lastgood=(number == 0))
            time.sleep(0.01)

    def run(self):
        return self.store().remove(self.doomed, force=self.force)

    def did_its_job(self, result):
        store = self.store()
        problems = []
        if os.path.lexists(store.backup_dir(self.doomed)):
            problems.append('%s is still there' % self.doomed)
        if self.doomed in store._read_pins():  # pylint: disable=protected-access
            problems.append('%s is still pinned' % self.doomed)
        if any(name.startswith('.deleting-') for name in os.listdir(store.set_dir)):
            problems.append('a removed backup is still on disk')
        if len(store.list()) != 2:
            problems.append('the other backups were not all kept: %s' % [info['id'] for info in store.list()])
        return problems

    def observe(self):
        # the data of every listed backup (store_problems verifies each against its manifest) and the marks
        return tuple(sorted((backup_id, info['complete'], info['lastgood'], info['pinned'],
                             self.data_digest(backup_id) if info['complete'] else None)
                            for backup_id, info in self.backups().items()))


class RemoveLastgood(Remove):
    """Force the removal of the LASTGOOD backup, the base of the newest (incremental) one."""

    name = 'remove_lastgood'
    force = True

    def build(self):
        super().build()
        infos = self.store().list()
        self.doomed = [info['id'] for info in infos if info['lastgood']][0]

    def documented_partial(self, state):
        # the LASTGOOD mark goes first (so it never names a missing backup), then the backup in one rename
        unmarked = tuple((item[0], item[1], False, item[3], item[4]) for item in self.old)
        return state == unmarked


class Restore(StoreScenario):
    """Restore the last-good backup over a live tree a bad deploy changed."""

    name = 'restore'
    needs = ('_store', '_manifest', '_restore')

    def build(self):
        self.paths()
        build_app_v1(self.target)
        self.backup_id = self.store().create([self.target], mark_lastgood=True)['id']
        change_app_to_v2(self.target)
        self.before = trees.tree_digest(self.target)

    def recover(self):
        store = self.store()
        engine('_restore').recover_journal(store.set_dir)
        store.recover()

    def run(self):
        store = self.store()
        return engine('_restore').restore(store, store.set_dir)

    def did_its_job(self, result):
        if trees.tree_digest(self.target) != self.data_digest(self.backup_id):
            return ['the target does not hold backup %s' % self.backup_id]
        return []

    def observe(self):
        return trees.tree_digest(self.target)

    def pending_recovery(self):
        return bool(self.leftovers())

    def invariants(self):
        problems = super().invariants()
        backups = self.backups()
        if self.backup_id not in backups:
            problems.append('the restored-from backup %s is gone' % self.backup_id)
        displaced = [backup_id for backup_id in backups if backup_id.startswith('pre-')]
        for backup_id in displaced:
            if backups[backup_id]['complete'] and self.data_digest(backup_id) != self.before:
                problems.append('%s does not hold the version the restore displaced' % backup_id)
        if self.observe() == self.new and not displaced:
            problems.append('the target was restored but no pre-restore backup keeps the displaced version')
        return problems


class Undo(Restore):
    """Undo a completed restore: the version it displaced comes back."""

    name = 'undo'

    def build(self):
        super().build()
        self.v2 = self.before
        store = self.store()
        engine('_restore').restore(store, store.set_dir)
        self.before = trees.tree_digest(self.target)

    def run(self):
        store = self.store()
        return engine('_restore').restore(store, store.set_dir, undo=True)

    def did_its_job(self, result):
        if trees.tree_digest(self.target) != self.v2:
            return ['undo did not bring back the version the restore displaced']
        return []

    def invariants(self):
        problems = StoreScenario.invariants(self)
        backups = self.backups()
        if self.backup_id not in backups:
            problems.append('backup %s is gone' % self.backup_id)
        if not any(backup_id.startswith('pre-restore-') for backup_id in backups):
            problems.append('the pre-restore backup that undo reads is gone')
        return problems


class RestoreWidened(Restore):
    """A sub-path restore below a directory someone replaced with a symlink to a directory outside the tree:
    the symlink is replaced as an entry (kept in the pre-restore backup), nothing outside is written."""

    name = 'restore_widened'

    def build(self):
        self.paths()
        build_app_v1(self.target)
        self.backup_id = self.store().create([self.target], mark_lastgood=True)['id']
        self.outside = os.path.join(self.live_root, 'outside')
        trees.write_file(os.path.join(self.outside, 'blob.bin'), b'not the backup\n')
        remove_tree(os.path.join(self.target, 'data'))
        os.symlink(self.outside, os.path.join(self.target, 'data'))
        self.before = trees.tree_digest(self.target)

    def run(self):
        store = self.store()
        return engine('_restore').restore(store, store.set_dir, paths=[os.path.join(self.target, 'data', 'blob.bin')])

    def did_its_job(self, result):
        problems = []
        data = os.path.join(self.target, 'data')
        if os.path.islink(data) or trees.tree_digest(data) != trees.tree_digest(
                os.path.join(self.store().data_dir(self.backup_id), data.lstrip('/'))):
            problems.append('the symlinked directory was not replaced by the backed-up one')
        if not result.get('warnings'):
            problems.append('the widened restore gave no warning')
        return problems

    def observe(self):
        # the outside directory is part of the state: any write through the symlink makes it "neither"
        return trees.tree_digest(self.target), trees.tree_digest(self.outside)

    def invariants(self):
        problems = StoreScenario.invariants(self)
        backups = self.backups()
        if self.backup_id not in backups:
            problems.append('the restored-from backup %s is gone' % self.backup_id)
        displaced = [backup_id for backup_id in backups if backup_id.startswith('pre-')]
        for backup_id in displaced:
            kept = os.path.join(self.store().data_dir(backup_id), self.target.lstrip('/'), 'data')
            if backups[backup_id]['complete'] and (not os.path.islink(kept) or os.readlink(kept) != self.outside):
                problems.append('%s does not hold the symlink the restore replaced' % backup_id)
        if self.observe() == self.new and not displaced:
            problems.append('the target was restored but no pre-restore backup keeps the replaced symlink')
        return problems


class RestoreRejected(Restore):
    """A restore whose check after the swap fails because another process wrote into the target meanwhile:
    what the target held is kept as a pinned rejected-<id> backup, then the restore rolls back."""

    name = 'restore_rejected'
    WRITTEN = 'written-meanwhile'

    def run(self):
        restore = engine('_restore')
        store = self.store()
        real = restore._verify_targets

        def write_then_verify(*args):
            # another process, not the engine: its write is neither counted nor faulted
            trees.write_file(os.path.join(self.target, self.WRITTEN), b'a concurrent write\n')
            return real(*args)
        restore._verify_targets = write_then_verify
        try:
            return restore.restore(store, store.set_dir)
        except restore.RestoreError as exc:
            # the outcome this scenario is about; a rollback that reports more trouble is an error like any other
            if 'files written during the restore are kept in backup' not in str(exc) or 'failed (' in str(exc):
                raise
            return {'rejected': str(exc)}
        finally:
            restore._verify_targets = real

    def rejected(self):
        return [backup_id for backup_id in self.backups() if backup_id.startswith('rejected-')]

    def did_its_job(self, result):
        problems = []
        if 'rejected' not in result:
            problems.append('the restore did not report the rejected backup: %r' % (result,))
        if trees.tree_digest(self.target) != self.before:
            problems.append('the restore was not rolled back')
        kept = [os.path.join(self.store().data_dir(backup_id), self.target.lstrip('/'), self.WRITTEN)
                for backup_id in self.rejected()]
        if len(kept) != 1 or not os.path.isfile(kept[0]):
            problems.append('no rejected backup keeps the concurrent write')
        return problems

    def observe(self):
        return trees.tree_digest(self.target), tuple(sorted(
            (backup_id.split('-')[0], self.data_digest(backup_id)) for backup_id, info in self.backups().items()
            if info['complete']))

    def documented_partial(self, state):
        # interrupted after the swap (before the check failed, or while rolling back): recovery rolls the journal
        # forward, so the restored version stays -- with the concurrent write in it when that had happened -- and
        # the pre-restore backup keeps the old one (a rejected backup taken before the rollback failed stays too)
        kinds = [kind for kind, _digest in state[1]]
        restored = state[0] == self.data_digest(self.backup_id) or self.WRITTEN in os.listdir(self.target)
        return restored and kinds.count('pre') == 1 and kinds.count('rejected') <= 1

    def invariants(self):
        problems = StoreScenario.invariants(self)
        backups = self.backups()
        if self.backup_id not in backups:
            problems.append('the restored-from backup %s is gone' % self.backup_id)
        pins = self.store()._read_pins()  # pylint: disable=protected-access
        strays = sorted(pin for pin in pins if pin.startswith('pre-') and trees.tree_digest(self.target) == self.before)
        if strays:
            problems.append('a rolled-back restore left pinned %s' % ', '.join(strays))
        for backup_id in self.rejected():
            if backup_id not in pins:
                problems.append('%s is not pinned' % backup_id)
        return problems


SCENARIOS = {cls.name: cls for cls in (AuditAppend, LockAcquire, RunStatePhase, ConfigUpdate, Backup, Retention,
                                       RetentionRuns, Remove, RemoveLastgood, Restore, Undo, RestoreWidened, RestoreRejected)}


def engine_errors():
    """OSError and the error types the engine defines: the only exceptions allowed to escape."""
    allowed = [OSError]
    for module in engine_modules():
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == module.__name__:
                allowed.append(value)
    return tuple(allowed)


def sweep_scenario(sc, persistent, err, points=None, only=None):
    """Fail call k of ``sc.run`` for each k (``points``: just those; ``only``: count only
    those calls), recover after each, and judge; returns (fault points, problems found)."""
    modules = engine_modules()
    allowed = engine_errors()
    problems = []
    box = {}

    def operation():
        box['result'] = None
        box['result'] = sc.run()

    def after_each(k, plan, error):
        tracker = plan.observer
        where = '%s: %s %s at call %d (%s)' % (sc.name, 'persistent' if persistent else 'transient',
                                               errno.errorcode[err], k, plan.fired_call or 'not reached')
        if error is not None and not isinstance(error, allowed):
            problems.append('%s: escaped as %s: %s' % (where, type(error).__name__, error))
        if not plan.fired and sc.durable:
            problems.extend('%s: clean run not durable: %s' % (where, p) for p in tracker.problems())
        if plan.fired_call in FSYNC_CALLS and error is None and not sc.reported_trouble(box['result']):
            failed = tracker.failed_fsync_paths[0] if tracker.failed_fsync_paths else ''
            if not any(re.search(pattern, failed or '') for pattern in sc.best_effort_fsync):
                problems.append('%s: fsync of %s failed but the operation reported success' % (where, failed))
        problems.extend('%s: fsync retried after it failed: %s' % (where, p) for p in tracker.fsyncs_after_failure())
        try:
            sc.recover()
        except Exception as exc:  # pylint: disable=broad-except
            problems.append('%s: recovery failed: %r' % (where, exc))
        problems.extend('%s: %s' % (where, p) for p in sc.verdict(error, box['result']))
        sc.reset()

    points = faults.sweep(modules, operation, after_each, persistent=persistent, err=err,
                          observer_factory=lambda: durability.DurabilityTracker(sc.markers),
                          points=points, only=only)
    return points, problems


def unknown_problems(sc, problems):
    """``problems`` minus known, reported engine bugs; when only known ones remain, xfail with them."""
    import pytest  # only the tests use this helper
    if not problems or not sc.known_bugs:
        return problems
    unknown = [p for p in problems if not any(re.search(pattern, p) for pattern, _why in sc.known_bugs)]
    if not unknown:
        seen = sorted({why for pattern, why in sc.known_bugs if any(re.search(pattern, p) for p in problems)})
        pytest.xfail('known engine bug(s), reported: %s (%d occurrence(s), e.g. %s)'
                     % ('; '.join(seen), len(problems), problems[0]))
    return unknown


def make(name, base):
    """Build scenario ``name`` under ``base``; raises Unavailable when its engine is missing."""
    if name not in SCENARIOS:
        raise Unavailable('scenario %s needs an engine part that has not landed yet' % name)
    return SCENARIOS[name](base).prepare()
