# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checksum manifests: what a tree holds, to the byte and to the mode bit.

A manifest lists every entry below a set of source paths with its type, size,
mode, owner, mtime, extended attributes (POSIX ACLs and SELinux labels
included: Linux reads and writes them as xattrs) and (for files) SHA-256.
Entry paths are relative to a root: ``/`` for the live system,
``<backup>/data`` inside a backup, so the same manifest describes both and
verifying one against the other is a diff.

The loader is strict: a manifest from disk is untrusted input that later
drives writes, so anything that could point outside the tree refuses the
whole manifest.

Standard library only: this runs on managed hosts.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import errno
import fnmatch
import hashlib
import json
import os
import re
import stat
import threading

from ._fsatomic import write_all

MANIFEST_VERSION = 2
# Version 1 recorded no xattrs and no fifos; its manifests stay readable.
READABLE_VERSIONS = (1, 2)
ENTRY_TYPES = ('file', 'dir', 'symlink', 'hardlink', 'fifo')
# Linux limits (XATTR_NAME_MAX, XATTR_SIZE_MAX): no file system holds more.
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 64 * 1024
# A file system (or an entry type) without xattr support has none.
XATTR_UNSUPPORTED = frozenset((errno.ENOTSUP, errno.EOPNOTSUPP))
# Reads go into one reused buffer per thread (no allocation per read); big reads keep hashlib,
# which releases the GIL, busy on every core.
HASH_CHUNK = 4 * 1024 * 1024
# Bytes of a copy after which copy_hashing hands each written chunk to the disk at once.
WRITEBACK_AFTER = 8 * 1024 * 1024
# Work handed to a hashing thread at once, in bytes; opening a file counts as FILE_COST bytes.
HASH_BATCH = 4 * 1024 * 1024
FILE_COST = 64 * 1024
MAX_MANIFEST_BYTES = 512 * 1024 * 1024
_SHA256_RE = re.compile(r'\A[0-9a-f]{64}\Z')
_TOP_KEYS = {
    'version': int, 'id': str, 'set': str, 'created': str, 'host': str,
    'sources': list, 'entries': list, 'totals': dict, 'parent': (str, type(None)),
}
# Keys a manifest may omit (an empty value of the type stands in).
_OPTIONAL_KEYS = {'excludes': list}
_INT_FIELDS = ('size', 'mode', 'uid', 'gid', 'mtime_ns')


class ManifestError(ValueError):
    """A manifest is malformed or unsafe; the whole manifest is refused."""


def hash_workers():
    return max(2, min(8, (os.cpu_count() or 2)))


class Entry:
    """One file-system entry, path relative to the manifest root.

    ``xattrs`` is a tuple of ``(name, value bytes)`` sorted by name -- every
    namespace, ``system.posix_acl_access``/``_default`` (the ACLs) and
    ``security.selinux``/``security.capability`` included -- or None for an
    entry of a version-1 manifest, which did not record them (nor keep
    symlink mtimes in the store): compare skips what is None.  A hardlink
    entry carries its inode's xattrs in memory; the manifest records them
    once, on the ``file`` entry.
    """

    __slots__ = ('path', 'type', 'size', 'mode', 'uid', 'gid', 'mtime_ns', 'sha256', 'target', 'xattrs')

    def __init__(self, path, type, size=0, mode=0, uid=0, gid=0, mtime_ns=0, sha256=None, target=None, xattrs=()):
        # pylint: disable=redefined-builtin
        self.path = path
        self.type = type
        self.size = size
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime_ns = mtime_ns
        self.sha256 = sha256
        self.target = target
        self.xattrs = xattrs

    @classmethod
    def from_stat(cls, path, st):
        return cls(path, _type_of(st.st_mode), size=st.st_size if stat.S_ISREG(st.st_mode) else 0,
                   mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime_ns=st.st_mtime_ns)

    def to_dict(self):
        """The manifest form: ``xattrs`` (name -> base64) only when there are some to record here."""
        out = {name: getattr(self, name) for name in _BASE_KEYS}
        if self.xattrs and self.type != 'hardlink':
            out['xattrs'] = {name: base64.b64encode(value).decode('ascii') for name, value in self.xattrs}
        return out

    def is_content(self):
        return self.type in ('file', 'hardlink')

    def __repr__(self):
        return 'Entry(%r, %r)' % (self.path, self.type)


_BASE_KEYS = Entry.__slots__[:-1]
_ENTRY_KEYS = frozenset(_BASE_KEYS)
_ENTRY_KEYS_XATTRS = frozenset(Entry.__slots__)
_ENTRY_LINE = ('{"gid": %d, "mode": %d, "mtime_ns": %d, "path": %s, "sha256": %s, "size": %d, "target": %s, '
               '"type": %s, "uid": %d}')
_INT_ONLY = {int}
_TEXT_TYPES = {str, type(None)}
_json_string = json.encoder.encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)


def _json_text(value):
    return 'null' if value is None else _json_string(value)


def _entry_json(entry):
    """``json.dumps(entry.to_dict(), sort_keys=True)``, byte for byte, at a fraction of the cost."""
    # exactly int (a bool prints as true) and exactly str or None, else json.dumps decides
    numbers = {type(value) for value in (entry.gid, entry.mode, entry.mtime_ns, entry.size, entry.uid)}
    texts = {type(value) for value in (entry.path, entry.sha256, entry.target, entry.type)}
    if numbers != _INT_ONLY or not texts <= _TEXT_TYPES or entry.xattrs:
        return json.dumps(entry.to_dict(), sort_keys=True)
    return _ENTRY_LINE % (entry.gid, entry.mode, entry.mtime_ns, _json_text(entry.path), _json_text(entry.sha256),
                          entry.size, _json_text(entry.target), _json_text(entry.type), entry.uid)


def _type_of(mode):
    if stat.S_ISREG(mode):
        return 'file'
    if stat.S_ISDIR(mode):
        return 'dir'
    if stat.S_ISLNK(mode):
        return 'symlink'
    if stat.S_ISFIFO(mode):
        return 'fifo'
    return None


def read_xattrs(path):
    """Every xattr of ``path`` itself (a symlink is not followed): sorted ``(name, value)`` pairs.

    One listxattr per entry; getxattr only for the names it lists.  A file
    system without xattr support has none; a name removed between the two
    calls is simply absent.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in XATTR_UNSUPPORTED:
            return ()
        raise
    if not names:
        return ()
    pairs = []
    for name in sorted(names):
        try:
            pairs.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                raise
    return tuple(pairs)


def _is_safe_rel(path):
    """A non-empty relative path without NUL and without empty, "." or ".." components."""
    if not isinstance(path, str) or not path or '\0' in path or path[0] == '/':
        return False
    framed = '/' + path + '/'
    return '//' not in framed and '/./' not in framed and '/../' not in framed


def check_rel_path(path, what='path'):
    """Return ``path`` if it is a safe, normalised relative path; raise ManifestError otherwise."""
    if _is_safe_rel(path):
        return path
    if not isinstance(path, str):
        raise ManifestError('%s %r is not a string' % (what, path))
    if not path:
        raise ManifestError('%s is empty' % what)
    if '\0' in path:
        raise ManifestError('%s %r contains a NUL byte' % (what, path))
    if path.startswith('/'):
        raise ManifestError('%s %r is absolute; manifest paths must be relative' % (what, path))
    raise ManifestError('%s %r is not normalised (empty, "." or ".." component)' % (what, path))


def rel_source(source):
    """``/srv/app/`` -> ``srv/app``: the manifest-relative form of an absolute source path."""
    if not isinstance(source, str) or not source.startswith('/'):
        raise ManifestError('source %r is not an absolute path' % (source,))
    normal = os.path.normpath(source)
    if normal != source.rstrip('/') and not (normal == '/' and source == '/'):
        raise ManifestError('source %r is not normalised' % (source,))
    if normal == '/':
        raise ManifestError('the root directory cannot be a source')
    return check_rel_path(normal.lstrip('/'), 'source')


_THREAD = threading.local()


def read_buffer():
    """This thread's reusable read buffer (``HASH_CHUNK`` bytes) and a memoryview of it."""
    buffers = getattr(_THREAD, 'buffers', None)
    if buffers is None:
        buffer = bytearray(HASH_CHUNK)
        buffers = _THREAD.buffers = (buffer, memoryview(buffer))
    return buffers


def sha256_fd(fd):
    buffer, view = read_buffer()
    digest = hashlib.sha256()
    while True:
        count = os.readv(fd, (buffer,))
        if not count:
            return digest.hexdigest()
        digest.update(view[:count])


def copy_hashing(src, dst, size=None, writeback_after=WRITEBACK_AFTER, src_stat=None):
    """Copy descriptor ``src`` to ``dst`` and SHA-256 the very bytes written, in one read pass.

    With ``size`` the copy stops once that many bytes were copied, without a
    read for the end of file (a caller that must notice a file growing compares
    sizes afterwards).  Each chunk written past ``writeback_after`` bytes is
    handed to the disk at once (POSIX_FADV_DONTNEED starts its write-back), so
    the fsync that must follow waits for I/O already under way (the backup and
    the restore both do this: on ``large`` it took the backup from 2.3 s to
    1.3 s on a quiet machine, docs/performance.md); ``None`` leaves write-back
    to the kernel.  Returns ``(bytes copied, hex digest)``.

    A source with holes (fewer blocks than its size needs; ``src_stat`` saves
    the fstat when the caller has one) is copied extent by extent
    (SEEK_DATA/SEEK_HOLE): ``dst``, a new empty file, gets the same holes, and
    the digest is still over the whole content, holes read as zeros.
    """
    st = os.fstat(src) if src_stat is None else src_stat
    if st.st_blocks * 512 < st.st_size and stat.S_ISREG(st.st_mode):
        return _copy_sparse(src, dst, st.st_size if size is None else size, writeback_after)
    buffer, view = read_buffer()
    digest = hashlib.sha256()
    copied = 0
    while size is None or copied < size:
        count = os.readv(src, (buffer,))
        if not count:
            break
        copied += count
        _write_hashed(dst, digest, view[:count], copied, writeback_after)
    return copied, digest.hexdigest()


def _write_hashed(dst, digest, chunk, end, writeback_after):
    """Hash and write ``chunk``, which ends at offset ``end`` of ``dst``; past ``writeback_after``, start its write-back."""
    digest.update(chunk)
    write_all(dst, chunk)
    if writeback_after is not None and end >= writeback_after and hasattr(os, 'posix_fadvise'):
        os.posix_fadvise(dst, end - len(chunk), len(chunk), os.POSIX_FADV_DONTNEED)


def _copy_sparse(src, dst, size, writeback_after):
    """``copy_hashing`` for a file with holes: only its data extents are read and written."""
    _buffer, view = read_buffer()
    digest = hashlib.sha256()
    position = 0
    while position < size:
        try:
            data = min(os.lseek(src, position, os.SEEK_DATA), size)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            data = size  # no data after position: the rest is a hole
        _hash_zeros(digest, data - position)
        position = data
        if position >= size:
            break
        hole = min(os.lseek(src, position, os.SEEK_HOLE), size)
        os.lseek(src, position, os.SEEK_SET)
        os.lseek(dst, position, os.SEEK_SET)
        while position < hole:
            count = os.readv(src, (view[:min(HASH_CHUNK, hole - position)],))
            if not count:
                # shorter than it said: the caller sees the size copied and decides
                os.ftruncate(dst, position)
                return position, digest.hexdigest()
            position += count
            _write_hashed(dst, digest, view[:count], position, writeback_after)
    os.ftruncate(dst, position)
    return position, digest.hexdigest()


_ZEROS = []


def _hash_zeros(digest, count):
    if count <= 0:
        return
    if not _ZEROS:
        _ZEROS.append(memoryview(bytes(HASH_CHUNK)))
    zeros = _ZEROS[0]
    while count > 0:
        step = min(count, HASH_CHUNK)
        digest.update(zeros[:step])
        count -= step


def sha256_file(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def _excluded(rel_in_source, name, excludes):
    for pattern in excludes:
        if fnmatch.fnmatchcase(rel_in_source, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def scan(root, rel_sources, excludes=(), prune=()):
    """Walk ``rel_sources`` below ``root`` without following symlinks.

    Returns ``(entries, skipped)``: entries in a deterministic order (sources in
    the given order, then depth-first by name) with no digests yet, and the
    relative paths of special files (devices, sockets) that were left out.
    A source that does not exist is simply absent from the entries.  ``prune``
    holds exact relative paths not to enter (the backup store, when it lies
    inside a source); unlike ``excludes`` they never match by name alone.
    """
    prune = frozenset(prune)
    entries = []
    skipped = []
    seen_inodes = {}
    for rel in rel_sources:
        path = os.path.join(root, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        _scan_one(root, rel, '', st, (excludes, prune), entries, skipped, seen_inodes)
    return entries, skipped


def _scan_one(root, rel, rel_in_source, st, filters, entries, skipped, seen_inodes):
    mode = st.st_mode
    kind = _type_of(mode)
    if kind is None:
        skipped.append(rel)
        return
    # Entry.from_stat, inlined: this runs once per entry of every tree scanned
    entry = Entry(rel, kind, st.st_size if kind == 'file' else 0, mode & 0o7777, st.st_uid, st.st_gid,
                  st.st_mtime_ns)
    path = os.path.join(root, rel)
    if kind == 'symlink':
        entry.target = os.readlink(path)
    elif kind == 'file' and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        first = seen_inodes.get(key)
        if first is None:
            seen_inodes[key] = entry
        else:
            # xattrs belong to the inode: read once, on the first path
            entry.type = 'hardlink'
            entry.target = first.path
            entry.xattrs = first.xattrs
            entries.append(entry)
            return
    entry.xattrs = read_xattrs(path)
    entries.append(entry)
    if kind != 'dir':
        return
    with os.scandir(path) as listing:
        children = sorted(listing, key=lambda child: child.name)
    excludes, prune = filters
    for child in children:
        name = child.name
        child_rel = rel + '/' + name
        child_rel_in_source = name if not rel_in_source else rel_in_source + '/' + name
        if (excludes and _excluded(child_rel_in_source, name, excludes)) or child_rel in prune:
            continue
        _scan_one(root, child_rel, child_rel_in_source, child.stat(follow_symlinks=False), filters, entries, skipped,
                  seen_inodes)


def split_batches(items, limit, weight):
    """Split ``items`` into runs whose ``weight(item)`` adds up to about ``limit``.

    A thread-pool task per small file costs more than the file; a run of them does not.
    """
    batches = []
    current = []
    total = 0
    for item in items:
        current.append(item)
        total += weight(item)
        if total >= limit:
            batches.append(current)
            current = []
            total = 0
    if current:
        batches.append(current)
    return batches


def digest_files(root, files, workers=None):
    """Set ``entry.sha256`` for each of ``files`` (below ``root``), in parallel: hashlib releases the GIL."""
    if not files:
        return

    def run(batch):
        for entry in batch:
            entry.sha256 = sha256_file(os.path.join(root, entry.path))

    batches = split_batches(files, HASH_BATCH, lambda entry: entry.size + FILE_COST)
    if len(batches) == 1:
        run(batches[0])
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers or hash_workers(), len(batches))) as pool:
        for _done in pool.map(run, batches):
            pass


def hash_entries(root, entries, workers=None):
    """Fill in ``sha256`` for every file entry (in parallel; hashlib releases the GIL)."""
    files = [entry for entry in entries if entry.type == 'file']
    if not files:
        return
    digest_files(root, files, workers)
    by_path = {entry.path: entry for entry in files}
    for entry in entries:
        if entry.type == 'hardlink':
            entry.sha256 = by_path[entry.target].sha256


def totals_of(entries):
    counts = {'file': 0, 'hardlink': 0, 'dir': 0, 'symlink': 0, 'fifo': 0}
    size = 0
    for entry in entries:
        counts[entry.type] += 1
        if entry.type == 'file':
            size += entry.size
    return {'files': counts['file'] + counts['hardlink'], 'dirs': counts['dir'], 'symlinks': counts['symlink'],
            'bytes': size}


class Manifest:
    """A loaded or freshly built manifest."""

    def __init__(self, id, set, created, host, sources, entries, parent=None, version=MANIFEST_VERSION, excludes=()):
        # pylint: disable=redefined-builtin
        self.version = version
        self.excludes = list(excludes)
        self.id = id
        self.set = set
        self.created = created
        self.host = host
        self.sources = list(sources)
        self.entries = list(entries)
        self.parent = parent
        self._by_path = None

    @property
    def by_path(self):
        if self._by_path is None:
            self._by_path = {entry.path: entry for entry in self.entries}
        return self._by_path

    @property
    def rel_sources(self):
        return [rel_source(source) for source in self.sources]

    @property
    def totals(self):
        return totals_of(self.entries)

    def _header(self):
        return {
            'version': self.version, 'id': self.id, 'set': self.set, 'created': self.created,
            'host': self.host, 'sources': self.sources, 'parent': self.parent, 'excludes': self.excludes,
            'totals': self.totals,
        }

    def to_dict(self):
        return dict(self._header(), entries=[entry.to_dict() for entry in self.entries])

    def to_json(self):
        """Canonical JSON: sorted keys, one line per entry.

        Each entry is one line, exactly as ``json.dumps(entry.to_dict(),
        sort_keys=True)`` would write it, but formatted by ``_entry_json``
        (``indent`` would switch to the pure-Python encoder, and one ``dumps``
        per entry costs a new encoder each: both dominate for many small files).
        """
        document = dict(self._header(), entries=self.entries)
        lines = []
        for key in sorted(document):
            if key == 'entries' and document[key]:
                value = '[\n' + ',\n'.join('  ' + _entry_json(entry) for entry in self.entries) + '\n ]'
            else:
                value = json.dumps(document[key], sort_keys=True)
            lines.append(' %s: %s' % (json.dumps(key), value))
        return '{\n' + ',\n'.join(lines) + '\n}\n'

    def sha256sum_text(self, prefix='data/'):
        """The content digests in the format coreutils ``sha256sum -c`` reads."""
        lines = []
        for entry in self.entries:
            if not entry.is_content():
                continue
            name = prefix + entry.path
            if '\\' in name or '\n' in name or '\r' in name:
                name = name.replace('\\', '\\\\').replace('\n', '\\n').replace('\r', '\\r')
                lines.append('\\%s  %s\n' % (entry.sha256, name))
            else:
                lines.append('%s  %s\n' % (entry.sha256, name))
        return ''.join(lines)


def _reject_duplicate_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ManifestError('duplicate key %r in manifest JSON' % key)
        result[key] = value
    return result


def loads(data, source='manifest'):
    """Parse and check a manifest; any problem refuses the whole manifest."""
    if isinstance(data, bytes):
        try:
            data = data.decode('utf-8')
        except UnicodeDecodeError as exc:
            raise ManifestError('%s is not valid UTF-8: %s' % (source, exc)) from None
    try:
        raw = json.loads(data, object_pairs_hook=_reject_duplicate_keys)
    except ManifestError as exc:
        raise ManifestError('%s: %s' % (source, exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ManifestError('%s is not valid JSON (truncated or corrupt?): %s' % (source, exc)) from None
    try:
        return _from_raw(raw)
    except ManifestError as exc:
        raise ManifestError('%s refused: %s' % (source, exc)) from None


def load(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
            raise ManifestError('%s is not a regular file of a sane size' % path)
        chunks = []
        while True:
            chunk = os.read(fd, HASH_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return loads(b''.join(chunks), source=path)


def _from_raw(raw):
    if not isinstance(raw, dict):
        raise ManifestError('top level is not an object')
    version = raw.get('version')
    if type(version) is not int or version not in READABLE_VERSIONS:  # pylint: disable=unidiomatic-typecheck
        raise ManifestError('unknown manifest version %r (this engine reads versions %s)'
                            % (version, ', '.join(str(known) for known in READABLE_VERSIONS)))
    missing = sorted(set(_TOP_KEYS) - set(raw))
    if missing:
        raise ManifestError('missing keys: %s' % ', '.join(missing))
    unknown = sorted(set(raw) - set(_TOP_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise ManifestError('unknown keys: %s' % ', '.join(unknown))
    for key, kind in _OPTIONAL_KEYS.items():
        raw.setdefault(key, kind())
        if not isinstance(raw[key], kind):
            raise ManifestError('%s has the wrong type' % key)
    for key, kind in _TOP_KEYS.items():
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise ManifestError('%s has the wrong type' % key)
    for pattern in raw['excludes']:
        if not isinstance(pattern, str) or not pattern or '\0' in pattern:
            raise ManifestError('exclude pattern %r is not a non-empty string without NUL' % (pattern,))
    sources = raw['sources']
    rels = [rel_source(source) for source in sources]
    if len(set(rels)) != len(rels):
        raise ManifestError('duplicate source')
    entries = [_entry_from_raw(index, item, version) for index, item in enumerate(raw['entries'])]
    _check_tree(entries, rels)
    manifest = Manifest(raw['id'], raw['set'], raw['created'], raw['host'], sources, entries, raw['parent'],
                        version=version, excludes=raw['excludes'])
    _check_totals(manifest, raw['totals'])
    return manifest


def _entry_from_raw(index, item, version):
    # Messages are formatted only on the way out: this runs once per entry of every manifest loaded.
    if not isinstance(item, dict):
        raise ManifestError('entry %d is not an object' % index)
    keys = item.keys()
    if keys != _ENTRY_KEYS and (version == 1 or keys != _ENTRY_KEYS_XATTRS):
        raise ManifestError('entry %d has keys %s, expected %s%s' % (
            index, sorted(item), sorted(_BASE_KEYS), '' if version == 1 else ' and optionally xattrs'))
    path = item['path']
    if not _is_safe_rel(path):
        check_rel_path(path, 'entry %d path' % index)
    kind = item['type']
    if kind not in ENTRY_TYPES or (version == 1 and kind == 'fifo'):
        raise ManifestError('entry %d (%s) has unknown type %r' % (index, path, kind))
    for name in _INT_FIELDS:
        value = item[name]
        # JSON yields exactly int for integers and bool for true/false; a file may be dated before 1970
        if type(value) is not int or (value < 0 and name != 'mtime_ns'):  # pylint: disable=unidiomatic-typecheck
            raise ManifestError('entry %d (%s) field %s is not a%s integer'
                                % (index, path, name, 'n' if name == 'mtime_ns' else ' non-negative'))
    if item['mode'] > 0o7777:
        raise ManifestError('entry %d (%s) mode %o has bits beyond permissions' % (index, path, item['mode']))
    digest = item['sha256']
    target = item['target']
    if kind in ('file', 'hardlink'):
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            raise ManifestError('entry %d (%s) has no valid sha256' % (index, path))
    elif digest is not None:
        raise ManifestError('entry %d (%s) is a %s but carries a sha256' % (index, path, kind))
    if kind == 'symlink':
        if not isinstance(target, str) or not target or '\0' in target:
            raise ManifestError('entry %d (%s) symlink target is invalid' % (index, path))
    elif kind == 'hardlink':
        check_rel_path(target, 'entry %d hardlink target' % index)
    elif target is not None:
        raise ManifestError('entry %d (%s) is a %s but carries a target' % (index, path, kind))
    if version == 1:
        xattrs = None
    elif 'xattrs' in item:
        if kind == 'hardlink':
            raise ManifestError('entry %d (%s) is a hardlink but carries xattrs (they are recorded on its file)'
                                % (index, path))
        xattrs = _xattrs_from_raw(item['xattrs'], index, path)
    else:
        xattrs = ()
    return Entry(path, kind, item['size'], item['mode'], item['uid'], item['gid'], item['mtime_ns'], digest, target,
                 xattrs)


def _xattrs_from_raw(raw, index, path):
    """``{name: base64}`` -> sorted ``(name, bytes)``; names and values are checked as the kernel would."""
    if not isinstance(raw, dict) or not raw:
        raise ManifestError('entry %d (%s) xattrs is not a non-empty object' % (index, path))
    pairs = []
    for name in sorted(raw):
        value = raw[name]
        encoded = name.encode('utf-8', 'surrogateescape') if '\0' not in name else b''
        if not encoded or len(encoded) > XATTR_NAME_MAX or '.' not in name:
            raise ManifestError('entry %d (%s) has an invalid xattr name %r (1 to %d bytes, "namespace.name", no NUL)'
                                % (index, path, name, XATTR_NAME_MAX))
        if not isinstance(value, str) or len(value) > (XATTR_SIZE_MAX + 2) // 3 * 4:
            raise ManifestError('entry %d (%s) xattr %r is not a base64 string of at most %d bytes'
                                % (index, path, name, XATTR_SIZE_MAX))
        try:
            data = base64.b64decode(value.encode('ascii'), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise ManifestError('entry %d (%s) xattr %r is not valid base64' % (index, path, name)) from None
        if base64.b64encode(data).decode('ascii') != value:
            raise ManifestError('entry %d (%s) xattr %r is not canonical base64' % (index, path, name))
        pairs.append((name, data))
    return tuple(pairs)


def _check_tree(entries, rel_sources):
    """Every entry lies under a source, its parents are directories, paths are unique."""
    by_path = {}
    for entry in entries:
        if entry.path in by_path:
            raise ManifestError('duplicate path %r' % entry.path)
        by_path[entry.path] = entry
    for entry in entries:
        source = _source_of(entry.path, rel_sources)
        if source is None:
            raise ManifestError('path %r is not under any source' % entry.path)
        parent = entry.path
        while parent != source:
            parent = parent.rsplit('/', 1)[0]
            parent_entry = by_path.get(parent)
            if parent_entry is None:
                raise ManifestError('path %r has no directory entry for its parent %r' % (entry.path, parent))
            if parent_entry.type != 'dir':
                raise ManifestError('path %r lies below %r, which is a %s, not a directory'
                                    % (entry.path, parent, parent_entry.type))
        if entry.type == 'hardlink':
            first = by_path.get(entry.target)
            if first is None or first.type != 'file':
                raise ManifestError('hardlink %r points at %r, which is not a file in this manifest'
                                    % (entry.path, entry.target))
            if first.sha256 != entry.sha256 or first.size != entry.size:
                raise ManifestError('hardlink %r disagrees with its target %r' % (entry.path, entry.target))
            entry.xattrs = first.xattrs


def _source_of(path, rel_sources):
    for source in rel_sources:
        if path == source or path.startswith(source + '/'):
            return source
    return None


def _check_totals(manifest, totals):
    actual = manifest.totals
    for key in ('files', 'bytes'):
        if totals.get(key) != actual[key]:
            raise ManifestError('totals.%s is %r but the entries add up to %r' % (key, totals.get(key), actual[key]))


def compare(expected, actual, owner=False, mtime=True, store_copy=False, dir_mtime=False):
    """Differences between two entry lists: ``{'added': [...], 'removed': [...], 'changed': [...]}``.

    ``expected`` is the reference (e.g. the manifest), ``actual`` what is there now.
    ``added`` are paths only in ``actual``; ``removed`` only in ``expected``; ``changed``
    are ``{'path', 'reasons'}`` with reasons among type, content, size, mode, owner,
    mtime, target, xattrs.  Directory mtimes are ignored (they change with their
    contents); symlink mtimes and xattrs count where the reference recorded them
    (not in a version-1 manifest).  Without root, ``trusted.*`` xattrs cannot be
    read, so they do not count either.  ``store_copy``: ``actual`` is a backup's
    data directory, which keeps content but neither xattrs nor the setuid and
    setgid bits of files (a copy in the store must never be a privileged binary).
    ``dir_mtime``: directory mtimes count too (what a restore would put back).
    """
    expected_by_path = {entry.path: entry for entry in expected}
    actual_by_path = {entry.path: entry for entry in actual}
    added = [entry.path for entry in actual if entry.path not in expected_by_path]
    removed = [entry.path for entry in expected if entry.path not in actual_by_path]
    changed = []
    see_trusted = os.geteuid() == 0
    for want in expected:
        have = actual_by_path.get(want.path)
        if have is None:
            continue
        reasons = _reasons(want, have, owner, mtime, store_copy, see_trusted, dir_mtime)
        if reasons:
            changed.append({'path': want.path, 'reasons': reasons})
    return {'added': added, 'removed': removed, 'changed': changed}


def _reasons(want, have, owner, mtime, store_copy, see_trusted, dir_mtime=False):
    want_kind = 'file' if want.is_content() else want.type
    have_kind = 'file' if have.is_content() else have.type
    if want_kind != have_kind:
        return ['type']
    reasons = []
    recorded = want.xattrs is not None and have.xattrs is not None
    if want_kind == 'file':
        if want.size != have.size:
            reasons.append('size')
        if want.sha256 is not None and have.sha256 is not None and want.sha256 != have.sha256:
            reasons.append('content')
    if mtime and want.mtime_ns != have.mtime_ns and (
            want_kind == 'file' or (want_kind == 'dir' and dir_mtime) or (recorded and want_kind != 'dir')):
        reasons.append('mtime')
    if want_kind == 'symlink':
        if want.target != have.target:
            reasons.append('target')
    elif want.mode != have.mode and (not store_copy or store_mode(want) != store_mode(have)):
        reasons.append('mode')
    if owner and (want.uid, want.gid) != (have.uid, have.gid):
        reasons.append('owner')
    if not store_copy and recorded and want.xattrs != have.xattrs and (
            see_trusted or _untrusted(want.xattrs) != _untrusted(have.xattrs)):
        reasons.append('xattrs')
    return reasons


# The mode bits a file keeps in the store (no setuid, no setgid).
_PLAIN_MODE = 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)


def store_mode(entry):
    """The mode the store gives the copy of ``entry``: a file loses setuid and setgid."""
    return entry.mode & _PLAIN_MODE if entry.is_content() else entry.mode


def _untrusted(pairs):
    return [pair for pair in pairs if not pair[0].startswith('trusted.')]


def scan_and_hash_like(root, manifest, excludes=(), workers=None, prune=(), hash_only=None):
    """Scan ``root`` over the manifest's sources and hash the files worth hashing.

    Files whose size differs from the manifest are not hashed: they differ anyway.
    With ``hash_only`` (a set of paths) only those files are hashed; the others
    are compared by metadata alone.
    """
    entries, skipped = scan(root, manifest.rel_sources, excludes, prune)
    reference = manifest.by_path
    to_hash = []
    for entry in entries:
        if entry.type != 'file' or (hash_only is not None and entry.path not in hash_only):
            continue
        want = reference.get(entry.path)
        if want is not None and want.is_content() and want.size == entry.size:
            to_hash.append(entry)
    digest_files(root, to_hash, workers)
    hashed = {entry.path: entry.sha256 for entry in entries if entry.type == 'file'}
    for entry in entries:
        if entry.type == 'hardlink':
            entry.sha256 = hashed.get(entry.target)
    return entries, skipped


def verify(manifest, root, owner=False, mtime=True, excludes=(), workers=None, prune=(), hash_only=None,
           store_copy=False):
    """Compare the tree at ``root`` with ``manifest`` (content and metadata).

    Returns the ``compare`` result; empty lists everywhere means the tree matches.
    ``hash_only``: see ``scan_and_hash_like``; ``store_copy``: see ``compare``.
    """
    entries, skipped = scan_and_hash_like(root, manifest, excludes, workers, prune, hash_only)
    result = compare(manifest.entries, entries, owner=owner, mtime=mtime, store_copy=store_copy)
    result['added'].extend(path for path in skipped if path not in result['added'])
    return result


def is_clean(result):
    return not (result['added'] or result['removed'] or result['changed'])


def mismatch_list(result):
    """Flatten a compare result into ``[{'path', 'problem'}]`` for module output."""
    out = [{'path': path, 'problem': 'unexpected (not in manifest)'} for path in result['added']]
    out.extend({'path': path, 'problem': 'missing'} for path in result['removed'])
    out.extend({'path': item['path'], 'problem': 'changed: ' + ', '.join(item['reasons'])} for item in result['changed'])
    return out
