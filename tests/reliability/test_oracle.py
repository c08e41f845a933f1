"""Differential suite: every restore is judged by an outside oracle, rsync -aHAXS.

The rest of the suite checks the engine against the project's own model of a tree
(tests/lib/trees.tree_digest) -- a model that only holds what the project thought of.
Here Hypothesis draws trees holding every kind of object and metadata a Linux file
system has (tests/lib/hostile_trees.py: hardlink groups across directories and depths,
symlinks relative/absolute/dangling, FIFOs, sparse files, owners, setuid/setgid/sticky,
user/trusted/security xattrs, access and default ACLs whose mask is not the group entry,
names with spaces, newlines, invalid UTF-8 and 255 bytes, nanosecond mtimes on files,
directories and symlinks), copies each with ``rsync -aHAXS --numeric-ids`` (the reference),
backs it up with the engine, runs one operation, restores, and asks rsync whether the
restored tree differs from the reference:

    rsync -aHAXSn --numeric-ids --itemize-changes --checksum --delete REF/ TARGET/

must print nothing, and every file sparse in the reference must not be dense in the
target (``du``-style allocation, tests/lib/oracle.sparse_problems).

Operations (one per tree): delete everything then restore (disaster recovery); a random
wreck then restore; a random wreck then a partial restore of one sub-path (only it comes
back, the rest stays as wrecked); restore then undo (back to the wrecked state, judged
against an rsync copy of it); an incremental chain (backup, change, backup, change,
restore the first, restore the second); a restore killed with SIGKILL at a random I/O
call, then run again.

A failing tree does not stop the run: every tree of the operation is judged and the
failure lists each class of difference (what a developer fixes), how many trees showed
it, and one example with rsync's itemized line and both sides' metadata.  The
``test_judge_*`` tests prove the judge can fail.

Default run: 6 operations x 50 trees; ``-m slow``: 6 x 850.  Needs root (owners,
trusted.* and security.* xattrs), rsync and a file system with xattrs and ACLs.
"""

import collections
import os
import re
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lib import faults, hostile_trees, kill9, oracle, scenarios

DEFAULT_TREES = 50
SLOW_TREES = 850
OPERATIONS = ('delete_all', 'wreck', 'partial', 'undo', 'chain', 'kill9')
KILL_CALLS = 600  # a restore of a tree this size makes a few hundred I/O calls: kills land all along it
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT = os.path.join(ROOT, 'tests', 'output')

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: owners, trusted.* and security.* xattrs'),
    pytest.mark.skipif(shutil.which('rsync') is None, reason='needs rsync (the oracle): bash scripts/setup.sh'),
]


def oracle_settings(count):
    # no shrinking: differences are collected, not raised, so only a broken harness raises, and it
    # should say so at once
    return settings(max_examples=count, deadline=None, derandomize=True, database=None,
                    phases=(Phase.explicit, Phase.generate),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


@pytest.fixture
def lab_dir():
    """Scratch space on tmpfs when it has xattrs and ACLs (fast), else the system temp directory."""
    for parent in (_fast_tmp(), None):
        path = tempfile.mkdtemp(prefix='lastgood-oracle-', dir=parent)
        if _supports_metadata(path):
            break
        scenarios.remove_tree(path)
    else:
        pytest.skip('neither /dev/shm nor the temp directory keeps user.*/trusted.* xattrs and ACLs')
    try:
        yield path
    finally:
        scenarios.remove_tree(path)


def _fast_tmp():
    return '/dev/shm' if os.access('/dev/shm', os.W_OK) else None


def _supports_metadata(path):
    probe = os.path.join(path, 'probe')
    with open(probe, 'wb'):
        pass
    try:
        os.setxattr(probe, 'trusted.probe', b'1')
        os.setxattr(probe, 'user.probe', b'1')
        os.setxattr(probe, hostile_trees.ACL_ACCESS, hostile_trees.acl_xattr(
            hostile_trees.access_acl(0o640, 0, [(hostile_trees.ACL_USER, 4, 1234)])))
    except OSError:
        return False
    finally:
        os.unlink(probe)
    return True


# -- one tree in its own directory ---------------------------------------------------------------------


class Stop(Exception):
    """The operation cannot go on (its backup failed); what failed is in ``Lab.found``."""


class Lab:
    """One tree: live/tree (the backed-up path), the reference copies and the store, all under ``base``."""

    def __init__(self, base):
        self.base = base
        self.live = os.path.join(base, 'live')
        self.target = os.path.join(self.live, 'tree')
        self.store = scenarios.engine('_store').Store(os.path.join(base, 'store'), 'oracle')
        self.steps = []
        self.found = []
        os.mkdir(self.live)

    def path(self, name):
        return os.path.join(self.base, name)

    def reference(self, name):
        """An rsync copy of the live tree now (checked: the judge finds no difference between the two)."""
        where = self.path(name)
        oracle.copy(self.target, where)
        disagree = oracle.differences(self.target, where)
        if disagree:
            raise oracle.OracleError('rsync\'s copy %s differs from the tree it copied (a generator or oracle '
                                     'problem, not the engine\'s):\n%s' % (where, oracle.report(disagree)))
        return where

    def backup(self):
        """A backup of the live tree; a failure is a finding and ends the operation (``Stop``)."""
        try:
            result = self.store.create([self.target])
        except Exception as exc:  # pylint: disable=broad-except
            self.steps.append('backup')
            self.found.append(oracle.Difference(_exception_class(exc), 'backup raised %s' % type(exc).__name__,
                                                str(exc)))
            raise Stop() from exc
        self.steps.append('backup -> %s' % result['id'])
        return result['id']

    def restore(self, backup_id=None, paths=None, undo=False):
        what = 'undo' if undo else 'restore %s%s' % (backup_id, ' paths=%s' % paths if paths else '')
        self.steps.append(what)
        try:
            return scenarios.engine('_restore').restore(self.store, self.store.set_dir, ref=backup_id, paths=paths,
                                                        undo=undo)
        except Exception as exc:  # pylint: disable=broad-except
            self.found.append(oracle.Difference(_exception_class(exc), '%s raised %s' % (what, type(exc).__name__),
                                                str(exc)))
            return None

    def wreck(self, actions):
        done = hostile_trees.wreck(self.target, actions)
        self.steps.append('wreck: ' + ('; '.join(done) or 'nothing applicable'))

    def judge(self, reference, target=None, what='restored tree', links_allowed_in=()):
        found = oracle.differences(reference, target or self.target, links_allowed_in)
        beside = sorted(set(os.listdir(self.live)) - {'tree'})
        if beside:
            found.append(oracle.Difference('left behind beside the target', ', '.join(beside), 'in %s' % self.live))
        self.found.extend(d._replace(line='[%s] %s' % (what, d.line)) for d in found)


def _exception_class(exc):
    """The exception's type and errno, or its message with names, paths, ids and numbers blanked."""
    if isinstance(exc, UnicodeError):
        return 'engine raised %s (%s)' % (type(exc).__name__, exc.reason)
    text = str(exc)
    errno_text = re.search(r'\[Errno \d+\][^:\'"]*', text)
    if errno_text:
        return 'engine raised %s (%s)' % (type(exc).__name__, errno_text.group(0).strip())
    text = re.sub(r'\([^()]*\)|\'[^\']*\'|"[^"]*"|/\S*|\d{8}T\d{6}Z-\w+', '_', text)
    return 'engine raised %s: %s' % (type(exc).__name__, re.sub(r'\d+', 'N', text)[:140])


# -- the operations --------------------------------------------------------------------------------------


def op_delete_all(lab, spec, draw):
    """Disaster recovery: the whole tree is gone; restore it into the empty place."""
    ref = lab.reference('ref')
    backup_id = lab.backup()
    hostile_trees.remove(lab.target)
    lab.steps.append('rm -rf the tree')
    if lab.restore(backup_id):
        lab.judge(ref)


def op_wreck(lab, spec, draw):
    ref = lab.reference('ref')
    backup_id = lab.backup()
    lab.wreck(draw(hostile_trees.wreck_actions()))
    if lab.restore(backup_id):
        lab.judge(ref)


def op_partial(lab, spec, draw):
    """Restore one sub-path: it equals the reference's, everything else stays as wrecked."""
    ref = lab.reference('ref')
    backup_id = lab.backup()
    lab.wreck(draw(hostile_trees.wreck_actions()))
    candidates = [entry['path'] for entry in spec if entry['path'] and _real_dirs_above(lab.target, entry['path'])]
    if not candidates:
        lab.steps.append('no sub-path left whose parents are directories')
        return
    sub = draw(st.sampled_from(candidates))
    expected = lab.reference('expected')
    parent = os.path.dirname(sub)
    parent_mtime = os.lstat(os.path.join(os.fsencode(expected), parent)).st_mtime_ns
    hostile_trees.remove(os.path.join(os.fsencode(expected), sub))
    oracle.copy_entry(os.path.join(os.fsencode(ref), sub), os.path.join(os.fsencode(expected), parent))
    # the restore may rename inside the parent, which moves its mtime; the promise is that nothing
    # outside the sub-path changes, the parent's mtime included
    os.utime(os.path.join(os.fsencode(expected), parent), ns=(parent_mtime, parent_mtime), follow_symlinks=False)
    if lab.restore(backup_id, paths=[os.fsdecode(os.path.join(os.fsencode(lab.target), sub))]):
        # a link between the sub-path and the rest that the backup has may stay: the expected tree
        # (an rsync of the sub-path alone) cannot hold it
        lab.judge(expected, what='partial restore of %s' % hostile_trees.show(sub), links_allowed_in=(ref,))
        lab.found = [d._replace(cls='directory holding the restored sub-path: mtime moved by the restore')
                     if d.path == (parent or b'.') and d.cls == 'directory: mtime' else d for d in lab.found]


def _real_dirs_above(root, rel):
    parent = os.path.dirname(rel)
    while parent:
        if not os.path.isdir(os.path.join(os.fsencode(root), parent)) or \
                os.path.islink(os.path.join(os.fsencode(root), parent)):
            return False
        parent = os.path.dirname(parent)
    return True


def op_undo(lab, spec, draw):
    """Restore, then undo: the wrecked state comes back, judged against an rsync copy of it."""
    ref = lab.reference('ref')
    backup_id = lab.backup()
    lab.wreck(draw(hostile_trees.wreck_actions()))
    wrecked = lab.reference('wrecked')
    restored = lab.restore(backup_id)
    if restored:
        lab.judge(ref)
        # a wreck that changed nothing (a chown to the same owner) leaves no restore to undo
        if restored['changed'] and lab.restore(undo=True):
            lab.judge(wrecked, what='after undo')


def op_chain(lab, spec, draw):
    """backup, change, backup (incremental), change; restore the first, then the second."""
    first_ref = lab.reference('ref-1')
    first = lab.backup()
    lab.wreck(draw(hostile_trees.wreck_actions()))
    second_ref = lab.reference('ref-2')
    second = lab.backup()
    lab.wreck(draw(hostile_trees.wreck_actions()))
    if lab.restore(first):
        lab.judge(first_ref, what='first backup restored')
    if lab.restore(second):
        lab.judge(second_ref, what='second backup restored')


def op_kill9(lab, spec, draw):
    """SIGKILL the restore right after its k-th I/O call, then run the restore again."""
    ref = lab.reference('ref')
    backup_id = lab.backup()
    lab.wreck(draw(hostile_trees.wreck_actions()))
    k = draw(st.integers(1, KILL_CALLS))
    restore = scenarios.engine('_restore').restore
    killed = kill9.kill_after_call(scenarios.engine_modules(), k,
                                   lambda: restore(lab.store, lab.store.set_dir, ref=backup_id))
    lab.steps.append('restore killed after I/O call %d' % k if killed else 'restore finished before call %d' % k)
    if lab.restore(backup_id):
        lab.judge(ref)


OPERATION_FUNCS = {'delete_all': op_delete_all, 'wreck': op_wreck, 'partial': op_partial, 'undo': op_undo,
                   'chain': op_chain, 'kill9': op_kill9}


# -- running and reporting ----------------------------------------------------------------------------------


class Findings:
    """Differences of every tree of a run, by class: how many trees, and the first tree's details."""

    def __init__(self, operation):
        self.operation = operation
        self.trees = 0
        self.failed = 0
        self.by_class = collections.OrderedDict()

    def add(self, spec, lab):
        self.trees += 1
        faults.record('oracle_trees')
        if not lab.found:
            return
        self.failed += 1
        for cls in sorted({d.cls for d in lab.found}):
            if cls in self.by_class:
                self.by_class[cls]['trees'] += 1
                continue
            self.by_class[cls] = {'trees': 1, 'steps': ' -> '.join(lab.steps), 'spec': spec,
                                  'found': [d for d in lab.found if d.cls == cls]}

    def message(self, saved):
        lines = ['%d of %d trees restored by the engine differ from the rsync -aHAXS reference (operation %s).'
                 % (self.failed, self.trees, self.operation),
                 'Classes of difference (number of trees showing it):']
        lines.extend('  %4d  %s' % (first['trees'], cls) for cls, first in self.by_class.items())
        for number, (cls, first) in enumerate(self.by_class.items()):
            lines.append('\n--- %s (%d trees); first example, tree #%d in %s:\n      steps: %s\n%s'
                         % (cls, first['trees'], number, saved, first['steps'], oracle.report(first['found'], limit=4)))
            if cls.startswith('engine raised'):
                lines.append('      the tree:\n' + _indent(hostile_trees.spec_summary(first['spec']), 8))
        return _printable('\n'.join(lines))

    def save(self):
        """Write every class's first tree (its spec, to rebuild it) to tests/output/oracle-<operation>.txt."""
        path = os.path.join(OUTPUT, 'oracle-%s.txt' % self.operation)
        os.makedirs(OUTPUT, exist_ok=True)
        with open(path, 'w', errors='backslashreplace') as handle:
            handle.write('# rebuild a tree: from lib import hostile_trees; hostile_trees.materialize(PATH, SPEC)\n')
            for number, (cls, first) in enumerate(self.by_class.items()):
                summary = '\n'.join('# ' + line for line in hostile_trees.spec_summary(first['spec']).splitlines())
                handle.write('\n# tree #%d, first with: %s\n# steps: %s\n%s\nSPEC_%d = %r\n'
                             % (number, cls, first['steps'], summary, number, first['spec']))
        return os.path.relpath(path, ROOT)


def _printable(text):
    """``text`` with the surrogates of undecodable names (engine messages carry them) escaped."""
    return text.encode('utf-8', 'backslashreplace').decode('utf-8')


def _indent(text, width):
    return '\n'.join(' ' * width + line.lstrip() for line in text.splitlines())


def run_operation(operation, count, base):
    findings = Findings(operation)
    numbers = iter(range(10 ** 9))

    @oracle_settings(count)
    @given(spec=hostile_trees.tree_specs(), data=st.data())
    def one_tree(spec, data):
        where = os.path.join(base, 't%d' % next(numbers))
        os.mkdir(where)
        try:
            lab = Lab(where)
            hostile_trees.materialize(lab.target, spec)
            try:
                OPERATION_FUNCS[operation](lab, spec, data.draw)
            except Stop:
                pass
            findings.add(spec, lab)
        finally:
            scenarios.remove_tree(where)

    one_tree()  # pylint: disable=no-value-for-parameter
    print('%s: %d trees judged by the rsync oracle, %d differ' % (operation, findings.trees, findings.failed))
    assert findings.trees >= count * 0.9, 'only %d trees ran' % findings.trees
    if findings.failed:
        pytest.fail(findings.message(findings.save()))


@pytest.mark.parametrize('operation', OPERATIONS)
def test_restore_equals_rsync_reference(operation, lab_dir):
    run_operation(operation, DEFAULT_TREES, lab_dir)


@pytest.mark.slow
@pytest.mark.parametrize('operation', OPERATIONS)
def test_restore_equals_rsync_reference_many_trees(operation, lab_dir):
    run_operation(operation, SLOW_TREES, lab_dir)


# -- one tree per kind: each defect class on its own -----------------------------------------------------

E = hostile_trees.entry
ROOT_DIR = E(b'', 'dir')


def _pinned_trees():
    """{name: (spec, commands)}; a command is an argv whose b'{}' items become the tree's path."""
    return {
        'hardlinks_across_sibling_directories': ([
            ROOT_DIR, E(b'a', 'dir'), E(b'b', 'dir'), E(b'a/x', 'file', data=b'A\n'), E(b'b/y', 'link', to=b'a/x'),
            E(b'c', 'dir'), E(b'c/d', 'dir'), E(b'c/d/z', 'link', to=b'a/x')], []),
        'hardlink_to_a_top_level_file': ([
            ROOT_DIR, E(b'f1', 'file', data=b'top\n'), E(b'd', 'dir'), E(b'd/f1', 'link', to=b'f1')], []),
        'acl_mask_other_than_the_group_entry': ([
            ROOT_DIR, E(b'conf', 'file', mode=0o640, data=b'secret\n')],
            # setfacl, as an administrator would: group::r-- with mask::rw- (the mode's group bits are the mask)
            [['setfacl', '-m', 'u:1234:rw-,g::r--,m::rw-', b'{}/conf']]),
        'default_acl_on_a_directory': ([
            ROOT_DIR, E(b'shared', 'dir', mode=0o2770, gid=2345)],
            [['setfacl', '-m', 'g:2345:rwx,d:g:2345:rwx,d:u:1234:r-x', b'{}/shared']]),
        'xattrs_user_and_trusted': ([
            E(b'', 'dir', xattrs={'user.root': b'top'}),
            E(b'f', 'file', data=b'x\n', xattrs={'user.mime_type': b'text/plain', 'trusted.origin': b'\x00\xff'}),
            E(b'd', 'dir', xattrs={'trusted.dir': b'1'}),
            E(b'd/unchanged', 'file', data=b'y\n', xattrs={'user.keep': b'me'})], []),
        'file_capability_set_with_setcap': ([
            ROOT_DIR, E(b'ping', 'file', mode=0o755, data=b'#!/bin/sh\n')],
            [['setcap', 'cap_net_raw,cap_net_bind_service+ep', b'{}/ping']]),
        'sparse_files_holes_at_start_middle_end': ([ROOT_DIR] + [
            E(name.encode(), 'file', data=layout) for name, layout in sorted(hostile_trees.sparse_layouts(b'D').items())],
            []),
        'symlink_mtimes': ([
            ROOT_DIR, E(b'rel', 'symlink', target=b'target', mtime=hostile_trees.BASE_MTIME + 111),
            E(b'abs', 'symlink', target=b'/etc/hostname', mtime=1),
            E(b'dangling', 'symlink', target=b'../../nowhere', mtime=hostile_trees.BASE_MTIME + 987654321),
            E(b'target', 'file', data=b't\n')], []),
        'fifos': ([ROOT_DIR, E(b'queue', 'fifo', mode=0o620, gid=2345), E(b'd', 'dir'), E(b'd/pipe', 'fifo')], []),
        'owners_setuid_setgid_sticky': ([
            E(b'', 'dir', mode=0o1777), E(b'suid', 'file', mode=0o4755, uid=1234, gid=2345, data=b'u\n'),
            E(b'sgid', 'file', mode=0o2711, uid=2345, gid=1234, data=b'g\n'),
            E(b'setgid-dir', 'dir', mode=0o2775, gid=2345), E(b'setgid-dir/f', 'file', uid=65534, gid=2345, data=b'f')],
            []),
        'names_with_newlines_invalid_utf8_and_255_bytes': ([
            ROOT_DIR, E(b'new\nline', 'file', data=b'1'), E(b'\xff\xfe not utf-8', 'file', data=b'2'),
            E(b'x' * 255, 'file', data=b'3'), E(b'with space', 'dir'), E(b'with space/ lead', 'file', data=b'4')], []),
        'nanosecond_mtimes_on_files_and_directories': ([
            E(b'', 'dir', mtime=hostile_trees.BASE_MTIME + 1), E(b'd', 'dir', mtime=hostile_trees.BASE_MTIME + 999999999),
            E(b'd/f', 'file', data=b'f', mtime=hostile_trees.BASE_MTIME + 123456789),
            E(b'g', 'file', data=b'g', mtime=7)], []),
    }


PINNED = _pinned_trees()
PLACES = ('into_an_empty_place', 'over_the_live_tree_with_one_change')


def build_pinned(target, name):
    spec, commands = PINNED[name]
    for command in commands:
        if shutil.which(command[0]) is None:
            pytest.skip('needs %s: bash scripts/setup.sh installs it' % command[0])
    hostile_trees.materialize(target, spec)
    for command in commands:
        subprocess.run([os.fsencode(arg).replace(b'{}', os.fsencode(target)) for arg in command], check=True)
    return spec


def _backup_and_restore(lab, place):
    ref = lab.reference('ref')
    backup_id = lab.backup()
    if place == 'into_an_empty_place':
        hostile_trees.remove(lab.target)
        lab.steps.append('rm -rf the tree')
    else:
        lab.wreck([])  # one new file; everything else must keep all it has
    if lab.restore(backup_id):
        lab.judge(ref)


@pytest.mark.parametrize('place', PLACES)
@pytest.mark.parametrize('kind', sorted(PINNED))
def test_restore_keeps_every_kind_of_entry_and_metadata(kind, place, lab_dir):
    """One small tree per kind, so each defect fails on its own test with a short message."""
    lab = Lab(lab_dir)
    spec = build_pinned(lab.target, kind)
    try:
        _backup_and_restore(lab, place)
    except Stop:
        pass
    faults.record('oracle_trees')
    if lab.found:
        pytest.fail(_printable('%s, restored %s, differs from the rsync -aHAXS reference:\n  steps: %s\n%s\n  the tree:\n%s' % (
            kind, place.replace('_', ' '), ' -> '.join(lab.steps), oracle.report(lab.found),
            _indent(hostile_trees.spec_summary(spec), 4))))


# -- the judge can fail ------------------------------------------------------------------------------------


def _at(root, rel):
    return os.path.join(os.fsencode(root), rel)


def _keeping_parent_mtime(func):
    """Damage one entry without moving its directory's mtime, so only the damage itself is visible."""
    def damage(root, rel):
        parent = os.path.dirname(_at(root, rel))
        before = os.lstat(parent).st_mtime_ns
        func(root, rel)
        os.utime(parent, ns=(before, before))
    return damage


def _shift_mtime(root, rel):
    st_ = os.lstat(_at(root, rel))
    os.utime(_at(root, rel), ns=(st_.st_atime_ns, st_.st_mtime_ns + 1), follow_symlinks=False)


def _make_dense(root, rel):
    path = _at(root, rel)
    st_ = os.lstat(path)
    with open(path, 'r+b') as handle:
        data = handle.read()
        handle.seek(0)
        handle.write(data)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))


def _break_link(root, rel):
    path = _at(root, rel)
    st_ = os.lstat(path)
    with open(path, 'rb') as handle:
        data = handle.read()
    xattrs = {name: os.getxattr(path, name) for name in os.listxattr(path)}
    os.unlink(path)
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chown(path, st_.st_uid, st_.st_gid)
    os.chmod(path, st_.st_mode & 0o7777)
    for name, value in xattrs.items():
        os.setxattr(path, name, value)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))


def _add_link(root, rel):
    """Replace 'empty' by a hardlink to ``rel``: two files the reference keeps apart become one inode."""
    path, other = _at(root, rel), _at(root, b'empty')
    os.unlink(other)
    os.link(path, other)


def _same_size_other_content(root, rel):
    path = _at(root, rel)
    st_ = os.lstat(path)
    with open(path, 'r+b') as handle:
        handle.write(b'P')
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))


def _retarget_same_mtime(root, rel):
    path = _at(root, rel)
    st_ = os.lstat(path)
    os.unlink(path)
    os.symlink(b'../elsewhere', path)
    os.lchown(path, st_.st_uid, st_.st_gid)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns), follow_symlinks=False)


def _set_acl(mode_group_perms):
    def damage(root, rel):
        path = _at(root, rel)
        os.setxattr(path, hostile_trees.ACL_ACCESS, hostile_trees.acl_xattr(hostile_trees.access_acl(
            0o600 | mode_group_perms << 3, 0o4, [(hostile_trees.ACL_USER, 6, 1234)])))
    return damage


def _remove_xattr(name):
    def damage(root, rel):
        os.removexattr(_at(root, rel), name, follow_symlinks=False)
    return damage


def _chmod(mode):
    def damage(root, rel):
        os.chmod(_at(root, rel), mode)
    return damage


def _lchown(uid, gid):
    def damage(root, rel):
        os.lchown(_at(root, rel), uid, gid)
    return damage


def _unlink(root, rel):
    os.unlink(_at(root, rel))


def _add_extra_file(root, rel):
    with open(os.path.join(_at(root, rel), b'extra'), 'wb'):
        pass


# name: (entry damaged, damage, the class the judge must report)
DAMAGES = {
    'user_xattr_missing': (b'plain', _remove_xattr('user.a'), r'file: .*xattrs'),
    'trusted_xattr_missing': (b'plain', _remove_xattr('trusted.b'), r'file: .*xattrs'),
    'capability_missing': (b'capable', _remove_xattr(hostile_trees.CAPABILITY), r'file: .*xattrs'),
    'acl_dropped_mask_became_group_bits': (b'acl-file', _remove_xattr(hostile_trees.ACL_ACCESS), r'file: .*ACL'),
    'acl_mask_widened': (b'acl-file', _set_acl(0o7), r'file: .*permissions'),
    'default_acl_missing': (b'', _remove_xattr(hostile_trees.ACL_DEFAULT), r'directory: .*ACL'),
    'sparse_file_written_dense': (b'a/sparse-middle', _make_dense, r'file: sparse file restored dense'),
    'hardlink_across_directories_broken': (b'b/y', _keeping_parent_mtime(_break_link),
                                           r'hardlink not restored \(a separate inode\)'),
    'hardlink_to_top_level_file_broken': (b'a/deep/deeper/top-link', _keeping_parent_mtime(_break_link),
                                          r'hardlink not restored \(a separate inode\)'),
    'hardlink_added': (b'large', _keeping_parent_mtime(_add_link), r'hardlink the reference does not have'),
    'symlink_mtime_off_by_1ns': (b'rel-link', _shift_mtime, r'symlink: mtime'),
    'file_mtime_off_by_1ns': (b'plain', _shift_mtime, r'file: mtime'),
    'directory_mtime_off_by_1ns': (b'a', _shift_mtime, r'directory: mtime'),
    'fifo_deleted': (b'fifo', _keeping_parent_mtime(_unlink), r'missing FIFO/socket'),
    'setuid_bit_dropped': (b'setuid', _chmod(0o755), r'file: permissions'),
    'sticky_bit_dropped': (b'a/deep/deeper', _chmod(0o777), r'directory: permissions'),
    'owner_changed': (b'a/with space', _lchown(2345, -1), r'file: owner'),
    'group_changed': (b'a/deep/abs-link', _lchown(-1, 0), r'symlink: group'),
    'content_changed_same_size_and_mtime': (b'large', _same_size_other_content, r'file: content'),
    'symlink_retargeted_same_mtime': (b'b/dangling', _keeping_parent_mtime(_retarget_same_mtime), r'symlink: .*target'),
    'symlink_xattr_missing': (b'rel-link', _remove_xattr('trusted.link'), r'symlink: .*xattrs'),
    'invalid_utf8_name_missing': (b'\xff\xfe not utf-8', _keeping_parent_mtime(_unlink), r'missing file'),
    'extra_file': (b'b', _add_extra_file, r'extra entry'),
}


@pytest.fixture
def judged_copy(lab_dir):
    """(reference, an exact rsync copy of it) of the every-kind tree; the judge must find no difference."""
    source = hostile_trees.materialize(os.path.join(lab_dir, 'source'), hostile_trees.every_kind_spec())
    ref = os.path.join(lab_dir, 'ref')
    copy = os.path.join(lab_dir, 'copy')
    oracle.copy(source, ref)
    oracle.copy(ref, copy)
    for first, second in ((source, ref), (ref, copy)):
        found = oracle.differences(first, second)
        assert not found, 'the judge reports differences between a tree and its rsync copy:\n' + oracle.report(found)
    return ref, copy


def test_judge_finds_nothing_between_a_tree_and_its_rsync_copy(judged_copy):
    ref, copy = judged_copy
    assert oracle.itemize(ref, copy) == []
    assert oracle.sparse_problems(ref, copy) == []


@pytest.mark.parametrize('damage', sorted(DAMAGES))
def test_judge_reports_a_deliberately_wrong_restore(damage, judged_copy):
    ref, copy = judged_copy
    rel, func, wanted = DAMAGES[damage]
    func(copy, rel)
    found = oracle.differences(ref, copy)
    assert any(re.fullmatch(wanted, d.cls) for d in found), \
        'the judge missed %s on %s (wanted a difference of class %r), it reported:\n%s' % (
            damage, hostile_trees.show(rel), wanted, oracle.report(found) or '    nothing')
