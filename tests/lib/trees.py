"""Helpers to build test trees and take digests of them (content + metadata)."""

import hashlib
import os
import stat

# A fixed mtime (2025-11-21) for files tests write, so that digests with mtimes do not depend on the clock.
MTIME_NS = 1763766900 * 10 ** 9


def write_file(path, data, mode=0o644, mtime_ns=MTIME_NS):
    """Write ``data`` at ``path`` (its parents created, whatever was there replaced) with ``mode`` and ``mtime_ns``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def make_tree(root, spec):
    """Create files under ``root`` from ``{relative path: bytes | str | None (dir) | ('symlink', target)}``."""
    os.makedirs(root, exist_ok=True)
    for rel, content in sorted(spec.items()):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content is None:
            os.makedirs(path, exist_ok=True)
        elif isinstance(content, tuple) and content[0] == 'symlink':
            os.symlink(content[1], path)
        else:
            data = content.encode() if isinstance(content, str) else content
            with open(path, 'wb') as handle:
                handle.write(data)


def tree_digest(root, with_mtime=True):
    """A digest of every entry below ``root``: names, types, modes, contents, symlink targets.

    Two trees with the same digest are the same to a user.  A missing root digests
    to the string 'missing'.
    """
    if not os.path.lexists(root):
        return 'missing'
    h = hashlib.sha256()
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        _entry(h, '.', root, st, with_mtime)
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        _entry(h, rel_dir, dirpath, os.lstat(dirpath), with_mtime=False)
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            _entry(h, os.path.join(rel_dir, name), path, os.lstat(path), with_mtime)
    return h.hexdigest()


def _entry(h, rel, path, st, with_mtime):
    h.update(rel.encode('utf-8', 'surrogateescape') + b'\0')
    h.update(('%o' % st.st_mode).encode() + b'\0')
    if stat.S_ISLNK(st.st_mode):
        h.update(os.readlink(path).encode('utf-8', 'surrogateescape'))
    elif stat.S_ISREG(st.st_mode):
        if with_mtime:
            h.update(str(st.st_mtime_ns).encode())
        with open(path, 'rb') as handle:
            h.update(hashlib.sha256(handle.read()).digest())
    h.update(b'\n')


def leftovers(root, markers=('.lastgood-tmp-', '.staging-', '.restore-', '.displaced-')):
    """Paths below ``root`` whose names show an unfinished engine operation."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if any(name.startswith(m) for m in markers):
                found.append(os.path.join(dirpath, name))
    return found
