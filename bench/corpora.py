# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deterministic benchmark corpora.

Every byte, name, size and mtime follows from a seed, so two machines (or two
runs) benchmark the same tree.  File contents come from SHAKE-128 keyed by
(seed, path, chunk): incompressible and never repeated, so neither restic's
compression nor its deduplication gets an advantage the others do not have.

A corpus is generated once into ``<dir>/<name>/`` and a stamp
``<dir>/<name>.stamp`` (written last) records the spec it was made from; a
rerun with the same spec reuses the tree.

    python bench/corpora.py [--quick] [--dir DIR] [NAME ...]
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import sys

GENERATOR_VERSION = 1
SEED = 20261121
MTIME_BASE_NS = 1_763_700_000 * 10**9
CHUNK = 8 * 1024 * 1024
KIB = 1024
MIB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, 'corpora')

# name -> spec; the spec is all that determines the tree.
SPECS = {
    'large': {'big_files': 4, 'big_size': 256 * MIB},
    'small': {'dirs': 200, 'files': 20000, 'min_size': 1 * KIB, 'max_size': 16 * KIB},
    'mixed': {'big_files': 2, 'big_size': 64 * MIB, 'dirs': 40, 'files': 4000,
              'min_size': 0, 'max_size': 64 * KIB, 'symlinks': 100},
}
QUICK_SPECS = {
    'large': {'big_files': 4, 'big_size': 1 * MIB},
    'small': {'dirs': 10, 'files': 200, 'min_size': 1 * KIB, 'max_size': 16 * KIB},
    'mixed': {'big_files': 2, 'big_size': 512 * KIB, 'dirs': 4, 'files': 60,
              'min_size': 0, 'max_size': 64 * KIB, 'symlinks': 5},
}


def content(key, size):
    """Yield ``size`` pseudo-random bytes for ``key`` in chunks of at most CHUNK."""
    index = 0
    remaining = size
    while remaining:
        n = min(CHUNK, remaining)
        yield hashlib.shake_128(b'%d\0%s\0%d' % (SEED, key.encode(), index)).digest(n)
        remaining -= n
        index += 1


def _write_file(path, rel, size, mtime_ns):
    with open(path, 'wb') as handle:
        for chunk in content(rel, size):
            handle.write(chunk)
    os.chmod(path, 0o644)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def plan(spec):
    """The tree a spec describes: ``[(rel path, kind, size or symlink target)]``, dirs first."""
    rng = random.Random('%d:%s' % (SEED, json.dumps(spec, sort_keys=True)))
    items = []
    for i in range(spec.get('big_files', 0)):
        items.append(('big/blob-%02d.bin' % i, 'file', spec['big_size']))
    dirs = ['d%03d' % i for i in range(spec.get('dirs', 0))]
    if dirs:
        for i in range(spec['files']):
            directory = dirs[i % len(dirs)]
            size = rng.randint(spec['min_size'], spec['max_size'])
            items.append(('tree/%s/f%05d.dat' % (directory, i), 'file', size))
    files = [item[0] for item in items if item[1] == 'file']
    for i in range(spec.get('symlinks', 0)):
        target = rng.choice(files)
        link_dir = 'tree/%s' % dirs[i % len(dirs)]
        items.append(('%s/link%03d' % (link_dir, i), 'symlink', os.path.relpath(target, link_dir)))
    return items


def generate(root, spec):
    """Create the tree for ``spec`` at ``root`` (which must not exist)."""
    os.makedirs(root)
    items = plan(spec)
    made = set()
    for number, (rel, kind, arg) in enumerate(items):
        path = os.path.join(root, rel)
        parent = os.path.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            while parent != root and parent not in made:
                made.add(parent)
                parent = os.path.dirname(parent)
        if kind == 'file':
            _write_file(path, rel, arg, MTIME_BASE_NS + number * 10**9)
        else:
            os.symlink(arg, path)
    for directory in sorted(made | {root}, reverse=True):
        os.chmod(directory, 0o755)
        os.utime(directory, ns=(MTIME_BASE_NS, MTIME_BASE_NS))


def stamp_of(name, spec):
    return {'generator': GENERATOR_VERSION, 'seed': SEED, 'name': name, 'spec': spec}


def ensure(name, quick=False, directory=DEFAULT_DIR, log=None):
    """Return the path of corpus ``name``, generating it unless a matching stamp says it is there."""
    spec = (QUICK_SPECS if quick else SPECS)[name]
    label = name + ('-quick' if quick else '')
    root = os.path.join(directory, label)
    stamp_path = root + '.stamp'
    want = stamp_of(name, spec)
    try:
        with open(stamp_path) as handle:
            if json.load(handle) == want and os.path.isdir(root):
                return root
    except (OSError, ValueError):
        pass
    if log:
        log('generating corpus %s in %s' % (label, root))
    for stale in (stamp_path, root):
        if os.path.isdir(stale):
            shutil.rmtree(stale)
        elif os.path.lexists(stale):
            os.unlink(stale)
    tmp = '%s.tmp-%d' % (root, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp, spec)
    os.rename(tmp, root)
    with open(stamp_path + '.tmp', 'w') as handle:
        json.dump(want, handle, sort_keys=True)
    os.rename(stamp_path + '.tmp', stamp_path)
    return root


def describe(root):
    """Files, bytes and directories below ``root`` (symlinks counted apart)."""
    files = size = dirs = links = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirs += 1
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                links += 1
            elif name in filenames:
                files += 1
                size += os.lstat(path).st_size
    return {'files': files, 'bytes': size, 'dirs': dirs, 'symlinks': links}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('names', nargs='*', metavar='NAME', help='corpora to make: %s (default: all)' % ', '.join(sorted(SPECS)))
    parser.add_argument('--quick', action='store_true', help='tiny corpora for a smoke test')
    parser.add_argument('--dir', default=DEFAULT_DIR, help='where corpora are cached (default: %(default)s)')
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SPECS))
    if unknown:
        parser.error('unknown corpus: %s' % ', '.join(unknown))
    for name in args.names or sorted(SPECS):
        root = ensure(name, args.quick, args.dir, log=lambda msg: print(msg, file=sys.stderr))
        print('%s\t%s\t%s' % (name, root, json.dumps(describe(root), sort_keys=True)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
