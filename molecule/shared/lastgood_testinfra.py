"""Checks the molecule scenarios' testinfra tests share.

Every function takes a testinfra ``host`` and reads that host over SSH with
plain tools (find, sha256sum, cat) -- never through the collection -- so the
tests check the collection's work independently.

A scenario's tests/conftest.py puts this directory on sys.path::

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'shared'))
"""

import json
import shlex

BACKUP_ROOT = '/var/backups/lastgood'

_TYPES = {'file': 'f', 'hardlink': 'f', 'dir': 'd', 'symlink': 'l'}


def backup_dir(set_name, backup_id, backup_root=BACKUP_ROOT):
    return '%s/%s/%s' % (backup_root, set_name, backup_id)


def manifest(host, set_name, backup_id, backup_root=BACKUP_ROOT):
    """The backup's MANIFEST.json, parsed."""
    return json.loads(host.file(backup_dir(set_name, backup_id, backup_root) + '/MANIFEST.json').content_string)


def listing(host, path):
    """``{relative path: (type f/d/l, octal mode, sha256 or link target)}`` of ``path`` and everything below.

    The root itself is listed as ``''``; a missing path lists as ``{}``.
    """
    quoted = shlex.quote(path)
    entries = host.run("test -e %s || test -L %s || exit 0; find %s -printf '%%P\\t%%y\\t%%m\\t%%l\\n'"
                       % (quoted, quoted, quoted))
    assert entries.rc == 0, entries.stderr
    result = {}
    for line in entries.stdout.splitlines():
        rel, kind, mode, target = line.split('\t')
        result[rel] = (kind, mode, target if kind == 'l' else None)
    sums = host.run('cd %s 2>/dev/null && find . -type f -print0 | xargs -0 -r sha256sum' % quoted
                    if host.file(path).is_directory else 'sha256sum %s' % quoted)
    for line in sums.stdout.splitlines():
        digest, name = line.split(None, 1)
        rel = name[2:] if name.startswith('./') else ''
        kind, mode = result[rel][:2]
        result[rel] = (kind, mode, digest)
    return result


def expected_from_manifest(document):
    """``{absolute path: (type, mode, sha256 or target)}`` the manifest says the sources hold."""
    expected = {}
    for entry in document['entries']:
        value = entry['sha256'] if _TYPES[entry['type']] == 'f' else entry.get('target')
        expected['/' + entry['path']] = (_TYPES[entry['type']], '%o' % entry['mode'], value)
    return expected


def live_against_manifest(host, document):
    """Differences between the live sources and the manifest: ``[(path, expected, found)]``."""
    live = {}
    for source in document['sources']:
        for rel, value in listing(host, source).items():
            live[source.rstrip('/') + ('/' + rel if rel else '')] = value
    expected = expected_from_manifest(document)
    return [(path, expected.get(path), live.get(path))
            for path in sorted(set(expected) | set(live)) if expected.get(path) != live.get(path)]


def live_against_copy(host, live_path, copy_path):
    """Differences between ``live_path`` and a copy of it made with ``cp -a``: ``[(rel, copy, live)]``."""
    live = listing(host, live_path)
    copy = listing(host, copy_path)
    return [(rel, copy.get(rel), live.get(rel))
            for rel in sorted(set(live) | set(copy)) if copy.get(rel) != live.get(rel)]


def sha256sum_check(host, set_name, backup_id, backup_root=BACKUP_ROOT):
    """Run ``sha256sum -c MANIFEST.sha256`` in the backup directory; returns the command result."""
    return host.run('cd %s && sha256sum --check --strict --quiet MANIFEST.sha256'
                    % shlex.quote(backup_dir(set_name, backup_id, backup_root)))


def leftovers(host, path, markers=('.lastgood-tmp-', '.staging-', '.restore-', '.displaced-')):
    """Entries below ``path`` whose names show an unfinished operation."""
    names = ' -o '.join("-name %s" % shlex.quote(marker + '*') for marker in markers)
    found = host.run('find %s \\( %s \\) -print' % (shlex.quote(path), names))
    return found.stdout.split()
