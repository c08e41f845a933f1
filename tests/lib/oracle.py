"""An outside judge for restores: rsync -aHAXS.

``copy(src, dst)`` makes the reference copy with ``rsync -aHAXS --numeric-ids`` (hardlinks,
ACLs, xattrs of every namespace root may copy, sparse files, numeric owners).
``differences(ref, target)`` runs

    rsync -aHAXSn --numeric-ids --itemize-changes --checksum --delete REF/ TARGET/

(and ``--modify-window=-1``: by default rsync ignores differences below a second) which
lists, without changing anything (``-n``), every entry rsync would have to
create, change or delete to make TARGET equal REF -- contents by checksum, type,
permissions, owner, group, mtime (directories and symlinks included), ACLs (a mask
is part of the permission bits, so a mask change shows as ``p``), xattrs, hardlinks
(``hf ... a => b``: b should be a link to a).  With a single ``-i`` rsync prints
nothing for an entry that is identical, so no output means no difference.  rsync
does not compare allocation, so sparse files are checked apart: a file that is
sparse in the reference must not take more than ``SPARSE_SLACK`` bytes more on disk
in the target; and rsync only sees links missing from the target, so links the
target has and the reference does not are checked apart too (``extra_links``).

Each difference comes back as a ``Difference`` with its class (what a developer
fixes: "file: ACL", "hardlink not restored", "missing FIFO/socket", ...), the
itemized line and both sides' metadata.
"""

import collections
import hashlib
import os
import re
import stat
import subprocess

from lib import hostile_trees

# --modify-window=-1: without it rsync treats mtimes within the same second as equal -- the judge
# would miss a restore that is off by less than a second, and a copy made within a second of the
# last change to a directory would keep the copy's own mtime for it
RSYNC_COPY = ('rsync', '-aHAXS', '--numeric-ids', '--modify-window=-1')
RSYNC_JUDGE = RSYNC_COPY[:1] + ('-aHAXSn', '--numeric-ids', '--itemize-changes', '--checksum', '--delete',
                                '--modify-window=-1')
SPARSE_SLACK = 16 * 1024
RSYNC_ENV = dict(os.environ, LC_ALL='C')

KINDS = {'f': 'file', 'd': 'directory', 'L': 'symlink', 'D': 'device', 'S': 'FIFO/socket'}
# the attribute letters of an itemized line, by position (rsync(1), --itemize-changes)
ATTRS = ((2, 'content'), (3, 'size'), (4, 'mtime'), (5, 'permissions'), (6, 'owner'), (7, 'group'),
         (9, 'ACL'), (10, 'xattrs'))

Difference = collections.namedtuple('Difference', 'cls line detail path', defaults=(None,))


class OracleError(Exception):
    """rsync itself failed: the judge could not judge (not a finding about the engine)."""


def _rsync(args):
    done = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=RSYNC_ENV, check=False)
    if done.returncode != 0:
        raise OracleError('%s exited %d: %s' % (' '.join(args[:-2]), done.returncode,
                                                done.stderr.decode('utf-8', 'backslashreplace').strip()))
    return done.stdout


def copy(src, dst):
    """``rsync -aHAXS --numeric-ids src/ dst/``: the reference copy."""
    _rsync(RSYNC_COPY + (os.fsdecode(src) + '/', os.fsdecode(dst) + '/'))


def copy_entry(src, dst_dir):
    """``rsync -aHAXS --numeric-ids src dst_dir/``: ``src`` itself (any kind) into ``dst_dir``."""
    _rsync(RSYNC_COPY + (os.fsdecode(src), os.fsdecode(dst_dir) + '/'))


def itemize(ref, target):
    """The raw itemized lines (bytes) rsync prints for ``target`` against ``ref``."""
    if not os.path.lexists(target):
        return [b'(the target %s does not exist)' % os.fsencode(target)]
    out = _rsync(RSYNC_JUDGE + (os.fsdecode(ref) + '/', os.fsdecode(target) + '/'))
    return [line for line in out.split(b'\n') if line]


def _unescape(name):
    """rsync prints unprintable bytes as \\#ooo."""
    return re.sub(rb'\\#([0-7]{3})', lambda match: bytes([int(match.group(1), 8)]), name)


def parse(line):
    """(class, relative path as bytes) of one itemized line."""
    if line.startswith(b'*deleting'):
        return 'extra entry', _unescape(line[len(b'*deleting'):].strip(b' ').rstrip(b'/'))
    if not line.startswith(b'(') and len(line) > 12 and line[11:12] == b' ':
        flags, rest = line[:11].decode('ascii', 'replace'), line[12:]
        for arrow in (b' -> ', b' => '):
            if arrow in rest:
                rest = rest.split(arrow, 1)[0]
        path = _unescape(rest.rstrip(b'/'))
        kind = KINDS.get(flags[1], flags[1])
        if flags[2:] == '+' * 9:
            return 'missing %s' % kind, path
        if flags[0] == 'h' and b' => ' in line:
            return 'hardlink not restored (a separate inode)', path
        changed = [name for position, name in ATTRS if flags[position] not in '. ']
        if kind == 'symlink' and 'content' in changed:
            changed[changed.index('content')] = 'target'
        return '%s: %s' % (kind, ', '.join(changed) or flags), path
    return line.decode('utf-8', 'backslashreplace'), b''


def describe(path):
    """The metadata of ``path`` a difference can be about, as {field: text}."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {'exists': 'no'}
    fields = collections.OrderedDict()
    fields['type'] = {stat.S_IFREG: 'file', stat.S_IFDIR: 'directory', stat.S_IFLNK: 'symlink',
                      stat.S_IFIFO: 'FIFO', stat.S_IFSOCK: 'socket'}.get(stat.S_IFMT(st.st_mode), 'other')
    fields['mode'] = '%04o' % stat.S_IMODE(st.st_mode)
    fields['owner'] = '%d:%d' % (st.st_uid, st.st_gid)
    fields['mtime_ns'] = str(st.st_mtime_ns)
    if stat.S_ISREG(st.st_mode):
        fields['size'] = str(st.st_size)
        fields['allocated'] = '%d KiB' % (st.st_blocks // 2)
        fields['nlink'] = str(st.st_nlink)
        with open(path, 'rb') as handle:
            fields['sha256'] = hashlib.sha256(handle.read()).hexdigest()[:16]
    if stat.S_ISLNK(st.st_mode):
        fields['target'] = hostile_trees.show(os.readlink(path))
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError as exc:
        names = ['(listxattr failed: %s)' % exc]
    for name in names:
        if name.startswith('('):
            fields['xattrs'] = name
            continue
        value = os.getxattr(path, name, follow_symlinks=False)
        if name in (hostile_trees.ACL_ACCESS, hostile_trees.ACL_DEFAULT):
            fields['acl' if name == hostile_trees.ACL_ACCESS else 'default acl'] = hostile_trees.acl_text(value)
        else:
            fields['xattr ' + name] = value.hex() if len(value) <= 24 else value[:24].hex() + '...'
    return fields


def side_by_side(ref_path, target_path):
    """'field: reference X, restored Y' for every field that differs (all fields when none does)."""
    ref, got = describe(ref_path), describe(target_path)
    if 'exists' in ref or 'exists' in got:
        return 'reference: %s; restored: %s' % (_fields_text(ref), _fields_text(got))
    keys = list(ref) + [key for key in got if key not in ref]
    differing = [key for key in keys if ref.get(key) != got.get(key)]
    text = '; '.join('%s: reference %s, restored %s' % (key, ref.get(key, '(none)'), got.get(key, '(none)'))
                     for key in differing) or 'metadata equal as far as lstat/xattrs show'
    return text + _widening(ref, got)


def _widening(ref, got):
    """Say so when the owning group got more than the reference's ACL group entry gave it."""
    if 'acl' not in ref or 'acl' in got or 'mode' not in got:
        return ''
    entries = dict(part.rsplit(':', 1) for part in ref['acl'].split(','))
    wanted = entries.get('group:')
    bits = (int(got['mode'], 8) >> 3) & 7
    now = ''.join(letter if bits & bit else '-' for letter, bit in (('r', 4), ('w', 2), ('x', 1)))
    if wanted and any(have != '-' and want == '-' for want, have in zip(wanted, now)):
        return ' -- PERMISSION WIDENING: the owning group had %s, now has %s (the mask became the group bits)' % (
            wanted, now)
    return ''


def _fields_text(fields):
    return 'missing' if 'exists' in fields else ', '.join('%s %s' % item for item in fields.items())


def sparse_problems(ref, target):
    """Files sparse in ``ref`` that take more than SPARSE_SLACK bytes more on disk in ``target``."""
    found = []
    ref = os.fsencode(ref)
    target = os.fsencode(target)
    for dirpath, _dirnames, filenames in os.walk(ref):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_blocks * 512 >= st.st_size:
                continue
            rel = os.path.relpath(path, ref)
            try:
                got = os.lstat(os.path.join(target, rel))
            except FileNotFoundError:
                continue  # rsync reports it missing
            if stat.S_ISREG(got.st_mode) and got.st_blocks * 512 > st.st_blocks * 512 + SPARSE_SLACK:
                found.append(Difference(
                    'file: sparse file restored dense', '%s (size %d)' % (hostile_trees.show(rel), st.st_size),
                    'allocated: reference %d KiB, restored %d KiB' % (st.st_blocks // 2, got.st_blocks // 2)))
    return found


def _link_groups(root):
    """{inode: sorted relative paths} of the regular files below ``root`` with more than one path there."""
    groups = collections.defaultdict(list)
    root = os.fsencode(root)
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups[st.st_ino].append(os.path.relpath(path, root))
    return {inode: sorted(paths) for inode, paths in groups.items() if len(paths) > 1}


def extra_links(ref, target, allowed=()):
    """Files hardlinked together in ``target`` that are separate files in ``ref`` (and in every
    tree of ``allowed``, where such a link would be right too)."""
    linked = set()
    for root in (ref,) + tuple(allowed):
        for paths in _link_groups(root).values():
            linked.update((first, other) for first in paths for other in paths)
    found = []
    for paths in _link_groups(target).values():
        first = paths[0]
        for other in paths[1:]:
            if (first, other) not in linked:
                found.append(Difference('hardlink the reference does not have',
                                        '%s => %s' % (hostile_trees.show(other), hostile_trees.show(first)),
                                        'one inode in the restored tree, separate files in the reference', other))
    return found


def differences(ref, target, links_allowed_in=()):
    """Every way ``target`` differs from ``ref``: rsync's itemized lines, sparseness, extra hardlinks
    (those in a tree of ``links_allowed_in`` are not extra)."""
    found = []
    for line in itemize(ref, target):
        cls, rel = parse(line)
        detail = side_by_side(os.path.join(os.fsencode(ref), rel), os.path.join(os.fsencode(target), rel)) \
            if rel or cls != line.decode('utf-8', 'backslashreplace') else ''
        found.append(Difference(cls, line.decode('utf-8', 'backslashreplace'), detail, rel))
    if os.path.isdir(target):
        found.extend(sparse_problems(ref, target))
        found.extend(extra_links(ref, target, links_allowed_in))
    return found


def report(found, limit=12):
    """The differences as lines for an assertion message."""
    lines = ['    %s\n        %s\n        %s' % (d.line, d.cls, d.detail) for d in found[:limit]]
    if len(found) > limit:
        lines.append('    ... and %d more' % (len(found) - limit))
    return '\n'.join(lines)
