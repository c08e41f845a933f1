# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rollback Level 4 on one host, in two steps around turning the features off.

``preserve``: check the approvals (``_approval``), record each in the audit log, keep the state as
it is now - a verified, pinned snapshot backup (an earlier attempt's complete one of the same run
is reused, verified again), a git tag on the running commit, the whole repository as a git bundle,
the audit logs and run state as ``evidence.tar.gz`` - in the investigation package.

``restore``: restore the baseline and the baseline configuration (``_restore``, verified after the
swap), delete the feature artifacts, run the apply command and the test suite (each retried),
write the investigation records (``git-log.txt``, ``approvals.json``, ``restore.json``,
``SHA256SUMS``) and pack the package into ``<incident>.tar.gz``; record ``full_restore_done``.

Every file is written through ``_fsatomic`` (temporary file, fsync, rename, fsync of the
directory); evidence an earlier attempt wrote is kept as it is.  In check mode nothing is
written and no command that changes anything runs: the result is the plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from . import _approval, _audit, _decide, _fsatomic, _restore
from ._manifest import ManifestError
from ._store import Store, StoreError

EVIDENCE = 'evidence.tar.gz'
BUNDLE = 'repo.bundle'
RECORDS = ('git-log.txt', 'approvals.json', 'restore.json')
# The investigation materials SHA256SUMS lists, in this order (those that exist).
SUMMED = (EVIDENCE, BUNDLE) + RECORDS
REPORT = 'INCIDENT.md'


class FullRestoreError(Exception):
    """A step failed; the message says which, why, and what was done before it."""


def utc_text(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


def incident_name(incident, run_id, now):
    """The incident: as given, or ``INC-YYYYMMDD-<run id>``."""
    return incident or 'INC-%s-%s' % (time.strftime('%Y%m%d', time.gmtime(now)), run_id)


def snapshot_name(run_id):
    return 'snapshot-%s' % run_id


def tag_name(run_id):
    return 'rollback-snapshot-%s' % run_id


def sha256sums(package, names):
    """``sha256sum -c`` lines for the ``names`` that exist in ``package``."""
    lines = []
    for name in names:
        path = os.path.join(package, name)
        if not os.path.isfile(path):
            continue
        digest = hashlib.sha256()
        with open(path, 'rb') as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b''):
                digest.update(chunk)
        lines.append('%s  %s\n' % (digest.hexdigest(), name))
    return ''.join(lines)


def nice_json(value):
    """JSON as the role wrote it (Ansible's ``to_nice_json(sort_keys=true)``)."""
    return json.dumps(value, indent=4, sort_keys=True, separators=(',', ': ')) + '\n'


def restore_record(params, preserved, baseline, config, tests):
    """What ``restore.json`` holds: where the snapshot went, what was restored from where, the tests run."""
    return {
        'incident': preserved['incident'], 'run_id': params['run_id'], 'host': params['host'],
        'started': preserved['started'],
        'snapshot': {'set': params['snapshot_set'], 'id': preserved['snapshot']['id'],
                     'paths': params['snapshot_paths'], 'tag': preserved['tag']},
        'baseline': {'set': params['baseline_set'], 'id': baseline.get('backup_id', params['baseline_id']),
                     'paths': baseline.get('paths', [])},
        'config': {'set': params['config_set'], 'id': config.get('backup_id', params['config_id']),
                   'paths': config.get('paths', [])},
        'tests': tests,
    }


class FullRestore:
    """One host's Level 4 steps.  ``run_command(argv, cwd=None)`` returns ``(rc, stdout, stderr)``."""

    def __init__(self, params, run_command, check_mode=False, warn=None, now=time.time, sleep=time.sleep):
        self.params = params
        self.run_command = run_command
        self.check = check_mode
        self.warn = warn or (lambda message: None)
        self.now = now
        self.sleep = sleep
        self.done = []
        self.changed = False

    # -- helpers ---------------------------------------------------------------------------

    def fail(self, step, why, advice):
        done = '; '.join(self.done) if self.done else 'nothing'
        raise FullRestoreError('Level 4 full restore of %s failed while %s: %s. Done before: %s. %s'
                               % (self.params['host'], step, str(why).rstrip('.'), done, advice))

    def audit(self, event, level, detail):
        if self.check:
            return
        result = _audit.append(self.params['audit_log'], event, run_id=self.params['run_id'], level=level,
                               detail=detail)
        if result.get('warning'):
            self.warn(result['warning'])
        self.changed = True

    def command(self, argv, cwd=None):
        return self.run_command(list(argv), cwd=cwd)

    def write(self, path, text):
        """Write ``text`` to ``path`` atomically unless it already holds it; returns whether it wrote."""
        data = text.encode('utf-8')
        try:
            if _fsatomic.read_bytes(path) == data:
                return False
        except FileNotFoundError:
            pass
        if not self.check:
            _fsatomic.atomic_write(path, data, mode=0o600)
        self.changed = True
        return True

    def produce(self, path, argv, cwd=None):
        """Have ``argv`` (with ``{out}`` for the output file) write ``path`` atomically, unless it exists."""
        if os.path.lexists(path):
            return False
        if self.check:
            self.changed = True
            return True

        def run(tmp):
            rc, out, err = self.command([tmp if arg == '{out}' else arg for arg in argv], cwd=cwd)
            if rc != 0:
                raise FullRestoreError('%s exited %d: %s' % (' '.join(argv[:3]), rc, (err or out).strip()))
        _fsatomic.atomic_produce(path, run)
        self.changed = True
        return True

    # -- preserve --------------------------------------------------------------------------

    def approve(self):
        """The approval check, on this host, before anything changes; raises with the refusal."""
        params = self.params
        try:
            decision = _decide.decide(conditions=params['conditions'])
        except _decide.DecisionError as exc:
            raise FullRestoreError('%s %s' % (_approval.REFUSED, exc))
        approval = _approval.check(decision, params['approvals'], params['extra_authority'],
                                   params['approval_max_age_hours'], self.now())
        if not approval['approved']:
            raise FullRestoreError(_approval.refusal(approval, params['conditions']))
        return approval

    def preserve(self):
        params = self.params
        approval = self.approve()
        now = self.now()
        incident = incident_name(params['incident'], params['run_id'], now)
        package = os.path.join(params['investigation_dir'], incident)
        preserved = {
            'incident': incident, 'package': package, 'archive': package + '.tar.gz', 'started': utc_text(now),
            'approval': dict((key, approval[key]) for key in _approval.KEYS),
            'snapshot': None, 'tag': None, 'evidence': [],
        }
        for entry in _approval.chosen(approval):
            try:
                self.audit('approval_recorded', 'notice', {
                    'who': entry['who'], 'role': entry['role'], 'when': entry['when'],
                    'reference': entry.get('reference'), 'incident': incident, 'rule': approval['rule']})
            except (_audit.AuditError, OSError) as exc:
                self.fail('recording the approval of %s in %s' % (entry['who'], params['audit_log']), exc,
                          'Nothing was changed on the host apart from the audit log; fix it and rerun.')
        if _approval.chosen(approval):
            self.done.append('approvals recorded in %s' % params['audit_log'])
        preserved['snapshot'] = self.snapshot()
        if params['repo']:
            preserved['tag'] = self.tag()
        self.package_dir(package)
        if params['repo']:
            self.bundle(package)
        preserved['evidence'] = self.evidence(package)
        preserved['done'] = list(self.done)
        return preserved

    def snapshot(self):
        """The verified, pinned snapshot backup of the current state; an earlier attempt's is reused."""
        params = self.params
        name = snapshot_name(params['run_id'])
        where = '%s/%s' % (params['snapshot_set'], name)
        advice = 'Nothing was changed on the host apart from the audit log and the backup store; fix it and rerun.'
        try:
            store = Store(params['backup_root'], params['snapshot_set'])
            earlier = [info for info in store.list() if info['id'] == name and info['complete']]
            if earlier:
                result = {'id': name, 'new': False, 'verified': False}
                if not self.check:
                    verified = store.verify(name)
                    if not verified['ok']:
                        shown = '; '.join('%s: %s' % (item['path'], item['problem'])
                                          for item in verified['mismatches'][:5])
                        self.fail('verifying the snapshot %s an earlier attempt took' % where,
                                  'it does not match its manifest (%s)' % shown,
                                  'The snapshot is damaged and was kept; nothing else was changed. Look at it, '
                                  'then rerun with a new run id.')
                    result['verified'] = True
                self.done.append('snapshot %s (taken by an earlier attempt) verified' % where)
                return result
            if not self.check:
                store.recover()
            created = store.create(params['snapshot_paths'], name=name, incremental=False,
                                   excludes=params['snapshot_exclude'], check_mode=self.check)
        except (StoreError, ManifestError, OSError) as exc:
            self.fail('taking the snapshot %s' % where, exc, advice)
        for warning in created.pop('warnings', []):
            self.warn(warning)
        self.changed = self.changed or created['changed']
        self.done.append('snapshot %s %s' % (where, 'planned' if self.check else 'taken and verified'))
        return {'id': name, 'new': True, 'verified': bool(created.get('verified'))}

    def tag(self):
        params = self.params
        tag = tag_name(params['run_id'])
        rc, out, err = self.command(['git', 'rev-parse', '--verify', '--quiet', 'refs/tags/' + tag], cwd=params['repo'])
        if rc not in (0, 1):
            self.fail('looking for the git tag %s in %s' % (tag, params['repo']), 'git exited %d: %s'
                      % (rc, err.strip()), 'Nothing was restored; fix the repository and rerun.')
        if rc == 1:
            if not self.check:
                rc, out, err = self.command(['git', 'tag', tag, 'HEAD'], cwd=params['repo'])
                if rc != 0:
                    self.fail('tagging the running commit %s in %s' % (tag, params['repo']),
                              'git exited %d: %s' % (rc, err.strip()), 'Nothing was restored; fix it and rerun.')
            self.changed = True
        self.done.append('running commit tagged %s' % tag)
        return tag

    def package_dir(self, package):
        if os.path.isdir(package):
            if (os.stat(package).st_mode & 0o7777) != 0o700:
                self.changed = True
                if not self.check:
                    os.chmod(package, 0o700)
            return
        self.changed = True
        if not self.check:
            try:
                _fsatomic.makedirs_durable(package, mode=0o700)
                os.chmod(package, 0o700)
            except OSError as exc:
                self.fail('creating the investigation package %s' % package, exc,
                          'Nothing was restored; fix it and rerun.')

    def bundle(self, package):
        """The whole repository, snapshot tag included: the restore replaces it with the baseline's."""
        path = os.path.join(package, BUNDLE)
        try:
            self.produce(path, ['git', 'bundle', 'create', '{out}', '--all'], cwd=self.params['repo'])
        except (FullRestoreError, OSError) as exc:
            self.fail('bundling %s into %s' % (self.params['repo'], path), exc, 'Nothing was restored; fix it and rerun.')
        self.done.append('repository bundled into %s' % path)

    def evidence(self, package):
        """The audit logs and run state that exist, archived as they are now (relative to /)."""
        existing = [path for path in self.params['evidence_paths'] if os.path.exists(path)]
        if not existing:
            return []
        path = os.path.join(package, EVIDENCE)
        argv = ['tar', '--create', '--gzip', '--file', '{out}', '--directory', '/']
        try:
            self.produce(path, argv + [item.lstrip('/') for item in existing])
        except (FullRestoreError, OSError) as exc:
            self.fail('archiving the evidence %s into %s' % (', '.join(existing), path), exc,
                      'Nothing was restored; fix it and rerun.')
        self.done.append('audit logs and state archived into %s' % path)
        return existing

    # -- restore ---------------------------------------------------------------------------

    def restore(self, preserved):
        params = self.params
        self.done = list(preserved.get('done') or [])
        advice = ('The run\'s rescue puts the run\'s checkpoint back; fix the cause and rerun with the same run id '
                  '(the evidence is kept).')
        baseline = self.restore_backup('the full baseline', params['baseline_set'], params['baseline_id'],
                                       params['baseline_paths'] or None, advice)
        config = {}
        if params['config_paths']:
            config = self.restore_backup('the baseline configuration', params['config_set'], params['config_id'],
                                         params['config_paths'], advice)
        removed = self.remove(advice)
        tests = []
        if not self.check:
            self.apply(advice)
            tests = self.tests(advice)
            self.archive(preserved, baseline, config, tests, advice)
        approval = preserved['approval']
        result = {
            'incident': preserved['incident'], 'rule': approval['rule'], 'reason': approval['reason'],
            'approvers': approval['approvers'], 'approvals': _approval.chosen(approval),
            'started': preserved['started'],
            'snapshot_backup': '%s/%s' % (params['snapshot_set'], preserved['snapshot']['id']),
            'snapshot_tag': preserved['tag'], 'evidence': preserved['evidence'],
            'baseline': '%s/%s' % (params['baseline_set'], baseline.get('backup_id', params['baseline_id'])),
            'baseline_paths': [entry['path'] for entry in baseline.get('paths', [])],
            'config': ('%s/%s' % (params['config_set'], config.get('backup_id', params['config_id']))
                       if params['config_paths'] else None),
            'displaced': baseline.get('displaced_backup'),
            'removed': removed,
            'tests': [' '.join(argv) for argv in params['test_commands']],
            'investigation': preserved['package'], 'archive': preserved['archive'],
            'report': os.path.join(preserved['package'], REPORT),
            'changed': True,
        }
        try:
            self.audit('full_restore_done', 'critical', result)
        except (_audit.AuditError, OSError) as exc:
            self.fail('recording full_restore_done in %s' % params['audit_log'], exc,
                      'The host is restored and its tests passed; only the audit record is missing.')
        return result, {'baseline': baseline, 'config': config}

    def restore_backup(self, what, set_name, ref, paths, advice):
        try:
            result = _restore.restore(Store(self.params['backup_root'], set_name), ref=ref, paths=paths,
                                      verify_after=True, check_mode=self.check)
        except (_restore.RestoreError, StoreError, ManifestError, OSError) as exc:
            self.fail('restoring %s (%s/%s)' % (what, set_name, ref), exc, advice)
        for warning in result.pop('warnings', []):
            self.warn(warning)
        self.changed = self.changed or result['changed']
        self.done.append('%s %s from %s/%s' % (what, 'planned' if self.check else 'restored and verified',
                                               set_name, result['backup_id']))
        return result

    def remove(self, advice):
        removed = []
        for path in self.params['remove_paths']:
            if not os.path.lexists(path):
                continue
            if not self.check:
                try:
                    _fsatomic.remove_tree(path)
                    _fsatomic.fsync_dir(os.path.dirname(path.rstrip('/')) or '/')
                except OSError as exc:
                    self.fail('deleting the feature artifact %s' % path, exc, advice)
            removed.append(path)
        if removed:
            self.changed = True
            self.done.append('deleted %s' % ', '.join(removed))
        return removed

    def apply(self, advice):
        argv = self.params['apply_command']
        if not argv:
            return
        rc, out, err = self.command(argv)
        if rc != 0:
            self.fail('making the application run the restored code (%s)' % ' '.join(argv),
                      'it exited %d: %s' % (rc, (err or out).strip()), advice)
        self.changed = True
        self.done.append('%s ran' % ' '.join(argv))

    def tests(self, advice):
        """Every test command, each tried until it passes, at most 1 + test_retries times; returns the argv run."""
        ran = []
        for argv in self.params['test_commands']:
            tries = 1 + max(self.params['test_retries'], 0)
            for attempt in range(1, tries + 1):
                rc, out, err = self.command(argv)
                if rc == 0:
                    break
                if attempt < tries:
                    self.sleep(self.params['test_delay'])
            else:
                self.fail('running the test suite', '%s exited %d after %d tries: %s'
                          % (' '.join(argv), rc, tries, (err or out).strip()), advice)
            ran.append(' '.join(argv))
        self.done.append('tests passed: %s' % ', '.join(ran))
        return ran

    def archive(self, preserved, baseline, config, tests, advice):
        """The investigation records, their checksums, and the package packed beside it."""
        params = self.params
        package = preserved['package']
        git_log = ''
        if params['repo']:
            argv = ['git', 'log', '--oneline', '--decorate', '--all', '--since=%s' % params['git_log_since']]
            rc, out, err = self.command(argv, cwd=params['repo'])
            if rc != 0:
                self.fail('reading the git history of %s' % params['repo'], 'git exited %d: %s' % (rc, err.strip()),
                          advice)
            git_log = out.rstrip('\n')
        records = {
            'git-log.txt': git_log + '\n',
            'approvals.json': nice_json(preserved['approval']),
            'restore.json': nice_json(restore_record(params, preserved, baseline, config, tests)),
        }
        try:
            for name in RECORDS:
                self.write(os.path.join(package, name), records[name])
            self.write(os.path.join(package, 'SHA256SUMS'), sha256sums(package, SUMMED))
            incident = preserved['incident']
            self.produce(preserved['archive'], ['tar', '--create', '--gzip', '--file', '{out}', '--directory',
                                                params['investigation_dir'], '--exclude', '%s/%s' % (incident, REPORT),
                                                incident])
        except (FullRestoreError, OSError) as exc:
            self.fail('writing the investigation records into %s' % package, exc,
                      'The host is restored and its tests passed; rerun with the same run id to finish the records.')
        self.done.append('investigation packed into %s' % preserved['archive'])
