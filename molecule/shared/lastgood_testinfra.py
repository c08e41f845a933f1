"""Checks the molecule scenarios' testinfra tests share.

Every function takes a testinfra ``host`` and reads that host over SSH with
plain tools (find, sha256sum, cat) -- never through the collection -- so the
tests check the collection's work independently.  Functions named ``check_*``
assert what every level scenario expects after a finished run; the others
return what they read.

A scenario's tests/conftest.py puts this directory on sys.path and has pytest
rewrite the asserts here::

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'shared'))
    pytest.register_assert_rewrite('lastgood_testinfra')
"""

import hashlib
import json
import shlex

BACKUP_ROOT = '/var/backups/lastgood'
AUDIT_LOG = '/var/log/lastgood/audit.jsonl'
GENESIS = '0' * 64

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


def audit_events(host):
    """The host's audit log, one parsed event a line."""
    return [json.loads(line) for line in host.file(AUDIT_LOG).content_string.splitlines()]


def check_audit_chain(host):
    """The audit log is not empty and each line names the SHA-256 of the line before it (the first: GENESIS)."""
    lines = host.file(AUDIT_LOG).content_string.splitlines(True)
    assert lines
    previous = GENESIS
    for number, line in enumerate(lines, 1):
        assert json.loads(line)['prev'] == previous, 'chain broken at line %d' % number
        previous = hashlib.sha256(line.encode('utf-8')).hexdigest()


def check_run_recorded_start_to_end(host, run_id):
    """The run's events begin with run_start, end with run_end and hold no run_failed; returns their names."""
    ours = [event['event'] for event in audit_events(host) if event.get('run_id') == run_id]
    assert ours[0] == 'run_start'
    assert ours[-1] == 'run_end'
    assert 'run_failed' not in ours
    return ours


def check_lock_released(host, set_name='app'):
    """The run let go of the set's lock file."""
    assert not host.file('%s/%s/.lock' % (BACKUP_ROOT, set_name)).exists


def check_run_finished(host, run_id, phases):
    """The run state says finished, after completing exactly ``phases`` in that order."""
    state = json.loads(host.file('/var/lib/lastgood/runs/%s.json' % run_id).content_string)
    assert state['status'] == 'finished'
    assert state['completed_phases'] == phases


def check_report_says_success(host, run_id):
    """report.json and report.md are written for the run, the host succeeded and its audit chain verified.

    Returns report.json, parsed, for the scenario's own checks.
    """
    directory = '/var/lib/lastgood/reports/' + run_id
    report = json.loads(host.file(directory + '/report.json').content_string)
    assert report['run']['run_id'] == run_id
    assert report['host']['outcome'] == 'success'
    assert report['host']['audit']['chain_ok'] is True
    assert host.file(directory + '/report.md').exists
    return report


def check_application_healthy(host):
    """``appctl health`` exits 0 and says healthy; returns what it said, parsed."""
    health = host.run('/srv/app/bin/appctl health')
    assert health.rc == 0, health.stdout
    document = json.loads(health.stdout)
    assert document['status'] == 'healthy'
    return document
