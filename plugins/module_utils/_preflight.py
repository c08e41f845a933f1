# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a host can take a run before anything changes: every check runs, read-only.

Checks, in order (names as the report shows them): ``reachable`` (the host answered: the module
ran), ``path_exists`` per path, ``disk_space`` (the store's file system has ``space_multiple``
times what the checkpoint will back up free), ``git_clean`` per work tree, ``lock`` (no other run
holds the lock), ``runs_in_flight`` (no other run's state says running) and ``backup`` per backup
the run relies on (it exists and matches its manifest).
"""

from __future__ import annotations

import math
import os
import subprocess

from ansible.module_utils.common.text.formatters import bytes_to_human

from . import _checks, _lock, _state
from ._manifest import ManifestError
from ._store import Store, StoreError


def path_check(path):
    exists = os.path.lexists(path)
    return _checks.check('path_exists', exists, '%s exists' % path if exists else '%s does not exist' % path,
                         path=path)


def free_bytes(path):
    """Bytes available to unprivileged users on the file system of ``path``, or of its nearest existing parent."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def space_check(store, paths, multiple):
    """(``disk_space`` check, {to_back_up, required, free})."""
    root = store.backup_root
    try:
        to_back_up = store.create(paths, check_mode=True)['bytes'] or 0
        free = free_bytes(root)
    except (StoreError, ManifestError, OSError) as exc:
        return _checks.check('disk_space', False, 'cannot measure what the checkpoint will back up into %s: %s'
                             % (root, exc)), {}
    required = int(math.ceil(to_back_up * multiple))
    enough = free >= required
    message = '%s free on the file system of %s; the checkpoint needs %s (%s x %s to back up)%s' % (
        bytes_to_human(free), root, bytes_to_human(required), multiple, bytes_to_human(to_back_up),
        '' if enough else ': free space in the store, or lower preflight_space_multiple')
    return _checks.check('disk_space', enough, message), {'to_back_up': to_back_up, 'required': required,
                                                          'free': free}


def git_check(repo, ignore_untracked):
    argv = ['git', '-C', repo, 'status', '--porcelain'] + (['--untracked-files=no'] if ignore_untracked else [])
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=_checks.COMMAND_TIMEOUT, check=False)
        rc, out, err = proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')
    except (OSError, subprocess.TimeoutExpired) as exc:
        rc, out, err = None, '', str(exc)
    changes = out.splitlines()
    if rc == 0 and not changes:
        return _checks.check('git_clean', True, '%s is clean' % repo, path=repo)
    if rc != 0:
        return _checks.check('git_clean', False, '%s is not a git work tree or git failed: %s' % (repo, err.strip()),
                             path=repo)
    return _checks.check('git_clean', False, '%s has %d uncommitted change(s) (%s): commit or stash them first'
                         % (repo, len(changes), '; '.join(line.strip() for line in changes[:3])), path=repo)


def lock_check(path, run_id):
    try:
        found = _lock.status(path)
    except (_lock.LockError, OSError) as exc:
        return _checks.check('lock', False, 'lock %s cannot be read: %s' % (path, exc))
    holder = found['holder'] or {}
    if not found['held']:
        return _checks.check('lock', True, 'lock %s is free' % path)
    if holder.get('run_id', '') == run_id:
        return _checks.check('lock', True, 'lock %s is held by this run' % path)
    return _checks.check('lock', False, 'lock %s is held by run %s (host %s, pid %s, since %s): let that run finish, '
                         'or resume it' % (path, holder.get('run_id', '?'), holder.get('host', '?'),
                                           holder.get('pid', '?'), holder.get('created', '?')))


def runs_check(state_dir, run_id):
    others = [other for other in _state.running_runs(state_dir) if other != run_id]
    if not others:
        return _checks.check('runs_in_flight', True, 'no other run is in flight in %s' % state_dir)
    return _checks.check('runs_in_flight', False, 'run(s) %s are still running according to %s: resume with -e '
                         'lastgood_run_id=<id> and let them finish before starting another'
                         % (', '.join(others), state_dir))


def backup_check(store, ref):
    try:
        info = store.resolve(ref)
        found = store.verify(info['id'])
    except (StoreError, ManifestError, OSError) as exc:
        return _checks.check('backup', False, 'backup %s: %s' % (ref, exc), backup=ref)
    if found['ok']:
        return _checks.check('backup', True, 'backup %s (%s) matches its manifest' % (ref, info['id']), backup=ref)
    shown = '; '.join('%s: %s' % (item['path'], item['problem']) for item in found['mismatches'][:5])
    return _checks.check('backup', False, 'backup %s (%s) does not match its manifest: %s' % (ref, info['id'], shown),
                         backup=ref)


def preflight(params, host):
    """Run every check of ``params`` (the module's options) on ``host`` (the name the reachable check shows)."""
    run_id = params['run_id'] or ''
    store = Store(params['backup_root'], params['set'])
    checks = [_checks.check('reachable', True, '%s answers over its connection' % host)]
    checks += [path_check(path) for path in params['paths'] or []]
    space = {}
    if params['backup_paths']:
        found, space = space_check(store, params['backup_paths'], params['space_multiple'])
        checks.append(found)
    checks += [git_check(repo, params['git_ignore_untracked']) for repo in params['git_repos'] or []]
    checks.append(lock_check(params['lock_path'] or os.path.join(params['backup_root'], params['set'], '.lock'),
                             run_id))
    checks.append(runs_check(params['state_dir'], run_id))
    checks += [backup_check(store, ref) for ref in params['backups'] or []]
    result = _checks.summary(checks)
    result.update(changed=False, space=space)
    return result
