"""Trees holding every kind of file-system object and metadata, for the oracle suite.

A tree is described by a spec -- plain data, so a failure can print it and a developer
can rebuild the same tree with ``materialize(root, spec)`` -- and Hypothesis draws
specs with ``tree_specs()``.  A spec is a list of entries (dicts), the root first:

    {'path': b'a/b', 'kind': 'dir' | 'file' | 'link' | 'symlink' | 'fifo',
     'mode': 0o4755, 'uid': 1234, 'gid': 2345, 'mtime': ns,
     'data': b'...' | ('sparse', size, ((offset, bytes), ...)),   # file
     'to': b'path of the file this is a hardlink of',              # link
     'target': b'symlink target',                                  # symlink
     'xattrs': {'user.x': b'..', 'trusted.y': b'..', 'security.capability': b'..'},
     'acl': (access ACL entries), 'default_acl': (default ACL entries)}

Paths are bytes (names may be any bytes but NUL and '/': spaces, newlines, invalid
UTF-8, 255 bytes).  ACL entries are (tag, perms, id) tuples as the kernel stores them
in ``system.posix_acl_access``/``_default``; an access ACL's mask differs from its
group entry, which is what a restore that rebuilds the mode from the group bits gets
wrong.  ``wreck`` and ``wreck_actions`` change a live tree the way a bad deploy or a
careless admin would.

Everything here needs root (owners, trusted.* and security.* xattrs).
"""

import os
import shutil
import stat
import struct

from hypothesis import strategies as st

from lib import trees

# ACL tags and the "no id" value of <linux/posix_acl_xattr.h>
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF
ACL_XATTR_VERSION = 2
ACL_ACCESS = 'system.posix_acl_access'
ACL_DEFAULT = 'system.posix_acl_default'
CAPABILITY = 'security.capability'
VFS_CAP_REVISION_2 = 0x02000000
CAPS = {'cap_dac_override': 1, 'cap_net_bind_service': 10, 'cap_net_raw': 13, 'cap_sys_time': 25}

BASE_MTIME = trees.MTIME_NS
OWNERS = (0, 1234, 2345, 65534)
FILE_MODES = (0o644, 0o600, 0o640, 0o755, 0o444, 0o4755, 0o2755, 0o6750, 0o4711)
DIR_MODES = (0o755, 0o700, 0o750, 0o1777, 0o2775, 0o3770)
SPARSE_SIZE = 256 * 1024

_FIXED_NAMES = st.sampled_from([
    b'a', b'b', b'etc', b'conf', b'data', b'.hidden', b'with space', b' lead and trail ', b'new\nline',
    b'tab\tname', b'latin1-\xe9t\xe9', b'\xff\xfe', b'caf\xc3\xa9', b'back\\slash', b'-rf', b'*', b'x' * 255,
    b'n' * 254 + b'\xff',
])
# mostly readable names (a failure is read by a person), some arbitrary bytes
NAMES = st.one_of(
    _FIXED_NAMES, _FIXED_NAMES,
    st.text(alphabet='abcdefghijklmnopqrstuvwxyz0123456789-_.', min_size=1, max_size=10).map(str.encode),
    st.binary(min_size=1, max_size=12).map(lambda b: b.replace(b'/', b'_').replace(b'\0', b'_')),
).filter(lambda b: b not in (b'.', b'..'))


def cap_xattr(names, effective=True):
    """The raw ``security.capability`` value (revision 2) ``setcap <names>+ep`` writes."""
    permitted = 0
    for name in names:
        permitted |= 1 << CAPS[name]
    return struct.pack('<IIIII', VFS_CAP_REVISION_2 | int(effective), permitted & 0xFFFFFFFF, 0, permitted >> 32, 0)


def acl_xattr(entries):
    """The raw value of a ``system.posix_acl_*`` xattr for ``entries`` [(tag, perms, id)]."""
    ordered = sorted(entries, key=lambda entry: (entry[0], entry[2]))
    return struct.pack('<I', ACL_XATTR_VERSION) + b''.join(struct.pack('<HHI', *entry) for entry in ordered)


def acl_text(raw):
    """getfacl-like text of a raw ACL xattr value: 'user::rw-,user:1234:r--,group::r--,mask::rw-,other::---'."""
    if raw is None:
        return None
    names = {ACL_USER_OBJ: 'user', ACL_USER: 'user', ACL_GROUP_OBJ: 'group', ACL_GROUP: 'group',
             ACL_MASK: 'mask', ACL_OTHER: 'other'}
    parts = []
    for offset in range(4, len(raw), 8):
        tag, perms, ident = struct.unpack_from('<HHI', raw, offset)
        who = '' if ident == ACL_UNDEFINED_ID else str(ident)
        bits = ''.join(letter if perms & bit else '-' for letter, bit in (('r', 4), ('w', 2), ('x', 1)))
        parts.append('%s:%s:%s' % (names.get(tag, hex(tag)), who, bits))
    return ','.join(parts)


def access_acl(mode, group_perms, named):
    """An extended access ACL agreeing with ``mode`` (its group bits are the mask) whose group entry is
    ``group_perms`` -- deliberately not the mask -- plus ``named`` [(tag, perms, id)] entries."""
    return ((ACL_USER_OBJ, (mode >> 6) & 7, ACL_UNDEFINED_ID), (ACL_GROUP_OBJ, group_perms, ACL_UNDEFINED_ID),
            (ACL_MASK, (mode >> 3) & 7, ACL_UNDEFINED_ID), (ACL_OTHER, mode & 7, ACL_UNDEFINED_ID)) + tuple(named)


def default_acl(named):
    return ((ACL_USER_OBJ, 7, ACL_UNDEFINED_ID), (ACL_GROUP_OBJ, 5, ACL_UNDEFINED_ID),
            (ACL_OTHER, 0, ACL_UNDEFINED_ID)) + ((ACL_MASK, 7, ACL_UNDEFINED_ID),) * bool(named) + tuple(named)


def sparse_layouts(chunk):
    """Holes at the start, in the middle, at the end, and a file that is all hole."""
    size = SPARSE_SIZE
    return {
        'hole-start': ('sparse', size, ((size - 4096, chunk * (4096 // len(chunk) + 1)),)),
        'hole-middle': ('sparse', size, ((0, chunk * 64), (size - 8192, chunk * 64))),
        'hole-end': ('sparse', size, ((0, chunk * 100),)),
        'all-hole': ('sparse', size, ()),
    }


# -- strategies --------------------------------------------------------------------------------------


NAMED_ACL = st.lists(st.tuples(st.sampled_from([ACL_USER, ACL_GROUP]), st.integers(0, 7),
                               st.sampled_from([1234, 2345, 4321])), min_size=1, max_size=2,
                     unique_by=lambda entry: (entry[0], entry[2]))


@st.composite
def file_data(draw):
    kind = draw(st.sampled_from(['empty', 'small', 'small', 'small', 'large', 'sparse']))
    if kind == 'empty':
        return b''
    if kind == 'small':
        return draw(st.binary(min_size=1, max_size=200))
    chunk = draw(st.binary(min_size=1, max_size=16)).replace(b'\0', b'\1')
    if kind == 'large':
        return (chunk * (70000 // len(chunk) + 1))[:draw(st.integers(40000, 70000))]
    return draw(st.sampled_from(sorted(sparse_layouts(chunk).items())))[1]


@st.composite
def metadata(draw, entry, before_1970=False):
    """Owner, group, mode, mtime, xattrs and ACLs for ``entry`` (in place)."""
    kind = entry['kind']
    entry['uid'] = draw(st.sampled_from(OWNERS))
    entry['gid'] = draw(st.sampled_from(OWNERS))
    # nanosecond mtimes from 1970 (or earlier: ``before_1970``) to a few years ahead
    entry['mtime'] = draw(st.integers(-BASE_MTIME if before_1970 else 0, BASE_MTIME + 10 ** 17))
    if kind == 'symlink':
        if draw(st.integers(0, 5)) == 0:
            entry['xattrs'] = {'trusted.link': draw(st.binary(max_size=20))}
        return entry
    entry['mode'] = draw(st.sampled_from(DIR_MODES if kind == 'dir' else (0o644, 0o600) if kind == 'fifo'
                                         else FILE_MODES))
    if kind == 'fifo':
        return entry
    xattrs = {}
    for namespace in ('user', 'trusted'):
        if draw(st.booleans()):
            xattrs['%s.%s' % (namespace, draw(st.sampled_from(['a', 'origin', 'x.y'])))] = draw(st.binary(max_size=40))
    if kind == 'file' and draw(st.integers(0, 3)) == 0:
        xattrs[CAPABILITY] = cap_xattr(draw(st.lists(st.sampled_from(sorted(CAPS)), min_size=1, max_size=3,
                                                     unique=True)), draw(st.booleans()))
    entry['xattrs'] = xattrs
    if draw(st.integers(0, 2)) == 0:
        group_perms = ((entry['mode'] >> 3) + draw(st.integers(1, 7))) & 7  # anything but the mask
        entry['acl'] = access_acl(entry['mode'], group_perms, draw(NAMED_ACL))
    if kind == 'dir' and draw(st.integers(0, 2)) == 0:
        entry['default_acl'] = default_acl(draw(st.lists(st.tuples(
            st.sampled_from([ACL_USER, ACL_GROUP]), st.integers(0, 7), st.sampled_from([1234, 2345])),
            max_size=2, unique_by=lambda e: (e[0], e[2]))))
    return entry


@st.composite
def tree_specs(draw, max_entries=24):
    """A tree of tens of entries holding every kind: see the module docstring."""
    # one tree in eight has mtimes before 1970 (extracted archives, clocks reset to 0)
    old_times = draw(st.integers(0, 7)) == 0

    def metadata_of(entry):
        return draw(metadata(entry, before_1970=old_times))

    root = metadata_of({'path': b'', 'kind': 'dir'})
    entries = [root]
    dirs = [b'']
    taken = set()

    def new_path(parent=None):
        for _attempt in range(20):
            where = draw(st.sampled_from(dirs)) if parent is None else parent
            path = (where + b'/' if where else b'') + draw(NAMES)
            if path not in taken and len(path) < 3000:
                taken.add(path)
                return path
        return None

    for _number in range(draw(st.integers(2, 5))):
        path = new_path()
        if path is not None:
            entries.append(metadata_of({'path': path, 'kind': 'dir'}))
            dirs.append(path)
    files = []
    for number in range(draw(st.integers(2, max_entries // 2))):
        path = new_path(b'' if number == 0 else None)
        if path is not None:
            entries.append(metadata_of({'path': path, 'kind': 'file', 'data': draw(file_data())}))
            files.append(path)
    # a sparse file in every tree: a restore that writes holes as zeros shows up in each one
    path = new_path()
    if path is not None:
        chunk = draw(st.binary(min_size=1, max_size=8)).replace(b'\0', b'\1')
        layout = draw(st.sampled_from(sorted(sparse_layouts(chunk))))
        entries.append(metadata_of({'path': path, 'kind': 'file', 'data': sparse_layouts(chunk)[layout]}))
        files.append(path)
    # hardlink groups across directories and depths, one of them to a top-level file
    top_level = [path for path in files if b'/' not in path]
    for number in range(draw(st.integers(1, 3)) if files else 0):
        source = top_level[0] if number == 0 and top_level else draw(st.sampled_from(files))
        for _link in range(draw(st.integers(1, 3))):
            path = new_path()
            if path is not None:
                entries.append({'path': path, 'kind': 'link', 'to': source})
    for _number in range(draw(st.integers(1, 4))):
        path = new_path()
        if path is not None:
            target = draw(st.sampled_from([b'../' * path.count(b'/') + (files[0] if files else b'a'), b'dangling',
                                           b'/etc/hostname', b'/nonexistent/target', b'.', b'..', b'x' * 200,
                                           b'new\nline \xff target']))
            entries.append(metadata_of({'path': path, 'kind': 'symlink', 'target': target}))
    for _number in range(draw(st.integers(1, 2))):
        path = new_path()
        if path is not None:
            entries.append(metadata_of({'path': path, 'kind': 'fifo'}))
    return entries


# -- hand-written trees -------------------------------------------------------------------------------


def entry(path, kind, **fields):
    """One spec entry with plain defaults (root-owned, 0644/0755, a fixed nanosecond mtime)."""
    made = {'path': path, 'kind': kind}
    if kind != 'link':
        made.update(uid=0, gid=0, mtime=BASE_MTIME + 123456789)
        if kind != 'symlink':
            made['mode'] = 0o755 if kind == 'dir' else 0o644
    made.update(fields)
    return made


def every_kind_spec():
    """A fixed tree holding one of everything tree_specs() draws (for tests that need a known tree)."""
    return [
        entry(b'', 'dir', mode=0o750, gid=2345, xattrs={'user.root': b'r', 'trusted.root': b't'},
              acl=access_acl(0o750, 0o1, [(ACL_USER, 5, 1234)]), default_acl=default_acl([(ACL_GROUP, 5, 2345)])),
        entry(b'a', 'dir', mode=0o2775, uid=1234, gid=2345, mtime=BASE_MTIME + 1),
        entry(b'a/deep', 'dir', mode=0o700, mtime=BASE_MTIME + 999999999),
        entry(b'a/deep/deeper', 'dir', mode=0o1777, uid=2345, mtime=BASE_MTIME + 7),
        entry(b'b', 'dir', xattrs={'user.dir': b'd'}),
        entry(b'plain', 'file', data=b'plain\n', xattrs={'user.a': b'1', 'trusted.b': b'2'}),
        entry(b'capable', 'file', mode=0o755, data=b'#!/bin/sh\n', xattrs={CAPABILITY: cap_xattr(['cap_net_raw'])}),
        entry(b'acl-file', 'file', mode=0o660, data=b'acl\n', acl=access_acl(0o660, 0o4, [(ACL_USER, 6, 1234)])),
        entry(b'setuid', 'file', mode=0o4755, uid=1234, gid=2345, data=b'suid\n'),
        entry(b'setgid', 'file', mode=0o2711, gid=2345, data=b'sgid\n'),
        entry(b'sparse-start', 'file', data=sparse_layouts(b'S')['hole-start']),
        entry(b'a/sparse-middle', 'file', data=sparse_layouts(b'M')['hole-middle']),
        entry(b'b/sparse-end', 'file', data=sparse_layouts(b'E')['hole-end']),
        entry(b'all-hole', 'file', data=sparse_layouts(b'H')['all-hole']),
        entry(b'large', 'file', data=b'0123456789abcdef' * 4096),
        entry(b'empty', 'file', data=b''),
        entry(b'top', 'file', data=b'top-level, linked below\n', mode=0o640, gid=2345),
        entry(b'a/top-link', 'link', to=b'top'),
        entry(b'a/deep/deeper/top-link', 'link', to=b'top'),
        entry(b'a/x', 'file', data=b'linked across siblings\n', xattrs={'user.linked': b'yes'}),
        entry(b'b/y', 'link', to=b'a/x'),
        entry(b'new\nline', 'file', data=b'newline in the name\n'),
        entry(b'\xff\xfe not utf-8', 'file', data=b'latin-1 name\n'),
        entry(b'x' * 255, 'file', data=b'255 bytes\n'),
        entry(b'a/with space', 'file', data=b'space\n', mtime=BASE_MTIME + 1),
        entry(b'rel-link', 'symlink', target=b'a/x', mtime=BASE_MTIME + 111, xattrs={'trusted.link': b'l'}),
        entry(b'a/deep/abs-link', 'symlink', target=b'/etc/hostname', uid=1234, gid=2345, mtime=BASE_MTIME + 222),
        entry(b'b/dangling', 'symlink', target=b'../nowhere', mtime=BASE_MTIME + 333),
        entry(b'fifo', 'fifo', mode=0o620, gid=2345),
        entry(b'a/deep/fifo', 'fifo', mode=0o600),
    ]


# -- building ----------------------------------------------------------------------------------------


def _join(root, rel):
    return os.path.join(os.fsencode(root), rel) if rel else os.fsencode(root)


def materialize(root, spec):
    """Create the tree ``spec`` describes at ``root`` (which must not exist) and return ``root``."""
    by_path = {entry['path']: entry for entry in spec}
    os.mkdir(root, 0o700)
    for entry in sorted(spec, key=lambda e: e['path'].count(b'/')):
        path = _join(root, entry['path'])
        kind = entry['kind']
        if kind == 'dir' and entry['path']:
            os.mkdir(path, 0o700)
        elif kind == 'file':
            _write(path, entry['data'])
        elif kind == 'symlink':
            os.symlink(entry['target'], path)
        elif kind == 'fifo':
            os.mkfifo(path, 0o600)
    for entry in spec:
        if entry['kind'] == 'link':
            os.link(_join(root, by_path[entry['to']]['path']), _join(root, entry['path']))
    # owners first: chown clears setuid/setgid bits and file capabilities
    for entry in spec:
        if 'uid' in entry:
            os.lchown(_join(root, entry['path']), entry['uid'], entry['gid'])
    for entry in spec:
        if 'mode' in entry:
            os.chmod(_join(root, entry['path']), entry['mode'])
    for entry in spec:
        path = _join(root, entry['path'])
        for name, value in sorted(entry.get('xattrs', {}).items()):
            os.setxattr(path, name, value, follow_symlinks=False)
        if entry.get('acl'):
            os.setxattr(path, ACL_ACCESS, acl_xattr(entry['acl']))
        if entry.get('default_acl'):
            os.setxattr(path, ACL_DEFAULT, acl_xattr(entry['default_acl']))
    # times last, deepest first: creating an entry moves its directory's mtime
    for entry in sorted(spec, key=lambda e: -e['path'].count(b'/') - (e['kind'] != 'dir')):
        if 'mtime' in entry:
            os.utime(_join(root, entry['path']), ns=(BASE_MTIME, entry['mtime']), follow_symlinks=False)
    return root


def _write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if isinstance(data, tuple):
            _sparse, size, extents = data
            for offset, chunk in extents:
                os.pwrite(fd, chunk, offset)
            os.ftruncate(fd, size)
        else:
            os.write(fd, data)
    finally:
        os.close(fd)


def spec_summary(spec):
    """One line per entry: what a developer needs to read a failure (kind, path, notable metadata)."""
    lines = []
    for entry in spec:
        bits = [entry['kind']]
        if 'mode' in entry:
            bits.append('%o' % entry['mode'])
        if 'uid' in entry:
            bits.append('%d:%d' % (entry['uid'], entry['gid']))
        if entry['kind'] == 'file':
            data = entry['data']
            bits.append('sparse %s' % (','.join('%d+%d' % (o, len(c)) for o, c in data[2]) or 'all hole')
                        if isinstance(data, tuple) else '%d bytes' % len(data))
        if entry['kind'] == 'link':
            bits.append('=> %s' % show(entry['to']))
        if entry['kind'] == 'symlink':
            bits.append('-> %s' % show(entry['target']))
        if entry.get('xattrs'):
            bits.append('xattrs ' + ','.join(sorted(entry['xattrs'])))
        if entry.get('acl'):
            bits.append('acl ' + acl_text(acl_xattr(entry['acl'])))
        if entry.get('default_acl'):
            bits.append('default acl ' + acl_text(acl_xattr(entry['default_acl'])))
        lines.append('  %s  %s' % (show(entry['path']) or '.', ' '.join(bits)))
    return '\n'.join(lines)


def show(path, longest=60):
    """A path as readable text: invalid UTF-8 as \\xNN, control characters escaped, long names shortened."""
    text = path.decode('utf-8', 'backslashreplace') if isinstance(path, bytes) else path
    text = ''.join(char if char.isprintable() else char.encode('unicode_escape').decode('ascii') for char in text)
    return '/'.join(part if len(part) <= longest else '%s...(%d chars)' % (part[:12], len(part))
                    for part in text.split('/'))


# -- wrecking ----------------------------------------------------------------------------------------

WRECKS = ('rewrite', 'delete', 'add_file', 'add_dir', 'chmod', 'chown', 'retarget', 'strip_xattrs', 'touch',
          'dir_to_file', 'file_to_symlink', 'add_fifo', 'append')


def wreck_actions(min_size=1, max_size=8):
    """Hypothesis: a list of (wreck, which entry, seed) for ``wreck``."""
    return st.lists(st.tuples(st.sampled_from(WRECKS), st.integers(0, 10 ** 6), st.integers(0, 255)),
                    min_size=min_size, max_size=max_size)


def live_entries(root):
    """Every path below ``root`` (bytes, relative), sorted, without following symlinks."""
    found = []
    root = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def wreck(root, actions):
    """Apply ``actions`` (from ``wreck_actions``) to the live tree at ``root``; returns what was done, as text."""
    done = []
    root = os.fsencode(root)
    for number, (what, which, seed) in enumerate(actions):
        entries = live_entries(root)
        if not entries:
            entries = [b'']
        rel = entries[which % len(entries)]
        path = _join(root, rel)
        st_ = os.lstat(path)
        kind = stat.S_IFMT(st_.st_mode)
        where = path if kind == stat.S_IFDIR else os.path.dirname(path)
        new_name = _free_name(where, b'wreck-%d-%d' % (number, seed))
        if what == 'rewrite' and kind == stat.S_IFREG:
            with open(path, 'r+b') as handle:  # in place: every hardlink of it changes too
                handle.write(bytes([seed]) * 3)
        elif what == 'append' and kind == stat.S_IFREG:
            with open(path, 'ab') as handle:
                handle.write(b'appended %d\n' % seed)
        elif what == 'delete' and rel:
            remove(path)
        elif what == 'add_file':
            with open(os.path.join(where, new_name), 'wb') as handle:
                handle.write(b'added %d\n' % seed)
        elif what == 'add_dir':
            os.makedirs(os.path.join(where, new_name, b'sub'))
        elif what == 'add_fifo':
            os.mkfifo(os.path.join(where, new_name))
        elif what == 'chmod' and kind != stat.S_IFLNK:
            # with an access ACL the group bits are its mask; rsync 3.5 copies a sticky directory whose
            # mask equals its group entry with the group entry emptied, so there only other bits change
            flip = 0o1 + (seed % 7) if ACL_ACCESS in os.listxattr(path) else 0o1 + (seed % 8) * 0o10
            os.chmod(path, stat.S_IMODE(st_.st_mode) ^ flip)
        elif what == 'chown':
            os.lchown(path, OWNERS[seed % len(OWNERS)], OWNERS[(seed // 4) % len(OWNERS)])
        elif what == 'retarget' and kind == stat.S_IFLNK:
            os.unlink(path)
            os.symlink(b'retargeted-%d' % seed, path)
        elif what == 'strip_xattrs':
            for name in os.listxattr(path, follow_symlinks=False):
                os.removexattr(path, name, follow_symlinks=False)
        elif what == 'touch':
            os.utime(path, ns=(BASE_MTIME, BASE_MTIME + seed * 10 ** 9 + 1), follow_symlinks=False)
        elif what == 'dir_to_file' and kind == stat.S_IFDIR and rel:
            remove(path)
            with open(path, 'wb') as handle:
                handle.write(b'was a directory\n')
        elif what == 'file_to_symlink' and kind == stat.S_IFREG:
            os.unlink(path)
            os.symlink(b'../replaced', path)
        else:
            continue
        done.append('%s %s' % (what, show(rel) or '.'))
    if not done:
        # a wreck always changes something the engine sees, so that a restore has work to do
        name = _free_name(root, b'wrecked')
        with open(os.path.join(root, name), 'xb') as handle:
            handle.write(b'added\n')
        done.append('add_file %s' % show(name))
    return done


def _free_name(directory, name):
    """``name``, or ``name`` with a suffix, that nothing in ``directory`` has (a chain wrecks twice)."""
    candidate = name
    while os.path.lexists(os.path.join(directory, candidate)):
        candidate += b'+'
    return candidate


def remove(path):
    """Remove ``path`` whatever it is (a directory with everything in it)."""
    if os.path.isdir(path) and not os.path.islink(path):
        for dirpath, dirnames, _files in os.walk(path):
            for name in dirnames:
                if not os.path.islink(os.path.join(dirpath, name)):
                    os.chmod(os.path.join(dirpath, name), 0o700)
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
