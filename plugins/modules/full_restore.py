#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: full_restore
short_description: Rollback Level 4 on a host - preserve the evidence, then restore the whole baseline
version_added: 0.2.0
description:
  - The work of the C(lastgood.rollback.level4_full_restore) role in two module runs, before and after the features
    are turned off.
  - O(step=preserve) checks the approvals once more on the host (as M(lastgood.rollback.rollback_decide) with
    O(approvals) does; a refusal changes nothing), records each counted approval in the audit log
    (C(approval_recorded)), and keeps the state as it is now in the investigation package
    C(<investigation_dir>/<incident>) - a pinned snapshot backup C(snapshot-<run id>) of O(snapshot_paths), verified
    before it is published (an earlier attempt's complete snapshot of the same run is reused and verified again), a
    git tag C(rollback-snapshot-<run id>) on the running commit, the whole repository as C(repo.bundle) and the
    audit logs and run state that exist as C(evidence.tar.gz).  Evidence an earlier attempt wrote is kept.
  - O(step=restore) restores the baseline (O(baseline_paths)) and then the baseline configuration (O(config_paths)),
    each verified against the backup after the swap, deletes O(remove_paths), runs O(apply_command) and each of
    O(test_commands) until it passes (O(test_retries), O(test_delay)), writes C(git-log.txt), C(approvals.json),
    C(restore.json) and C(SHA256SUMS) (C(sha256sum -c) format) into the package, packs it (without
    C(INCIDENT.md)) into C(<incident>.tar.gz) beside it, records C(full_restore_done) in the audit log and sets the
    fact C(level4_full_restore_result).
  - Every file is written atomically (temporary file, fsync, rename, fsync of the directory).  A failure fails the
    task with one message naming the step, the cause and what was done before it.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
attributes:
  check_mode:
    support: full
    details: Nothing is written and no command that changes anything runs; the approvals are checked, the snapshot
      and the restores return their plan, the apply command, the tests and the records are left out.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: The audit events are recorded and the apply command runs on every run; the snapshot, the tag, the
      bundle, the evidence and the archive an earlier run made are kept, restores of paths that already match change
      nothing.
options:
  step:
    description: V(preserve) before the features are turned off, V(restore) after.
    type: str
    choices: [preserve, restore]
    required: true
  preserved:
    description: What O(step=preserve) returned (its RV(preserved)); required with O(step=restore).
    type: dict
  run_id:
    description: The run; names the snapshot, the git tag and (by default) the incident.
    type: str
    required: true
  host:
    description: The host's name in the records (C(inventory_hostname)); default the host name.
    type: str
  incident:
    description: The incident.  Empty makes C(INC-YYYYMMDD-<run id>).
    type: str
    default: ''
  investigation_dir:
    description: Where the investigation package C(<dir>/<incident>) and its archive go.
    type: path
    default: /var/lib/lastgood/investigations
  approvals:
    description: The approvals, as M(lastgood.rollback.rollback_decide) takes them (C(who), C(role), C(when)).
    type: list
    elements: dict
    default: []
  conditions:
    description: Why Level 4 is called for, as decision-matrix conditions.
    type: list
    elements: str
    default: [system_compromise_suspected]
  extra_authority:
    description: Roles whose approval is needed on top of the decision matrix's authority.
    type: list
    elements: str
    default: []
  approval_max_age_hours:
    description: Approvals older than this many hours do not count; V(0) accepts any age.
    type: int
    default: 24
  backup_root:
    description: The backup store (see M(lastgood.rollback.backup)).
    type: path
    default: /var/backups/lastgood
  snapshot_set:
    description: The backup set the snapshot goes to.
    type: str
    default: investigation
  snapshot_paths:
    description: The current state kept as the snapshot.
    type: list
    elements: path
    default: [/srv/app]
  snapshot_exclude:
    description: Patterns the snapshot leaves out (as M(lastgood.rollback.backup)'s C(exclude)).
    type: list
    elements: str
    default: [run]
  repo:
    description: The git repository to tag and bundle, and whose history goes into C(git-log.txt).  Empty for none.
    type: path
    default: ''
  evidence_paths:
    description: Audit logs and state archived into C(evidence.tar.gz) (those that exist).
    type: list
    elements: path
    default: []
  git_log_since:
    description: C(git-log.txt) holds the commits since this (C(git log --since)).
    type: str
    default: 30 days ago
  baseline_set:
    description: Backup set of the baseline.
    type: str
    default: app
  baseline_id:
    description: The baseline backup - a checkpoint name, a backup id, C(lastgood) or C(latest).
    type: str
    default: baseline
  baseline_paths:
    description: Paths restored from the baseline.  Empty restores every path it holds.
    type: list
    elements: path
    default: []
  config_set:
    description: Backup set of the baseline configuration.
    type: str
    default: app
  config_id:
    description: The baseline configuration backup.
    type: str
    default: baseline
  config_paths:
    description: Configuration paths restored after the code.  Empty restores none.
    type: list
    elements: path
    default: []
  remove_paths:
    description: Feature artifacts outside the baseline to delete (absolute paths).
    type: list
    elements: path
    default: []
  apply_command:
    description: Command (argv) that makes the application run the restored code and configuration.  Empty skips.
    type: list
    elements: str
    default: []
  test_commands:
    description: The full test suite, each an argv list; each must exit 0.
    type: list
    elements: list
    default: []
  test_retries:
    description: How many times a failing test command is tried again.
    type: int
    default: 5
  test_delay:
    description: Seconds between two tries.
    type: int
    default: 2
  audit_log:
    description: The audit log (see M(lastgood.rollback.audit_log)).
    type: path
    default: /var/log/lastgood/audit.jsonl
seealso:
  - module: lastgood.rollback.rollback_decide
  - module: lastgood.rollback.backup
  - module: lastgood.rollback.restore
'''

EXAMPLES = r'''
- name: Preserve the current state for the investigation
  lastgood.rollback.full_restore:
    step: preserve
    run_id: "{{ lastgood_run_id }}"
    host: "{{ inventory_hostname }}"
    approvals: "{{ lastgood_approvals }}"
    repo: /srv/app/code
    evidence_paths: [/srv/app/logs, /var/log/lastgood, /var/lib/lastgood/runs]
  register: preserved

- name: Restore the whole baseline, test it and pack the investigation materials
  lastgood.rollback.full_restore:
    step: restore
    preserved: "{{ preserved.preserved }}"
    run_id: "{{ lastgood_run_id }}"
    host: "{{ inventory_hostname }}"
    repo: /srv/app/code
    baseline_paths: [/srv/app/code, /srv/app/releases, /srv/app/current]
    config_paths: [/srv/app/config.yaml, /srv/app/custom_modes.json]
    apply_command: [/srv/app/bin/appctl, restart]
    test_commands: [[/srv/app/bin/appctl, check], [/srv/app/bin/appctl, health]]
'''

RETURN = r'''
preserved:
  description:
    - What the preserve step did, for the restore step - C(incident), C(package), C(archive), C(started) (UTC),
      C(approval) (the check - rule, reason, level, required, valid, invalid, missing, approvers, approved),
      C(snapshot) (C(id), C(new), C(verified)), C(tag) (or null), C(evidence) (the paths archived), C(done).
  returned: O(step=preserve)
  type: dict
ansible_facts:
  description: C(level4_full_restore_result), what the full restore did.
  returned: O(step=restore)
  type: dict
  contains:
    level4_full_restore_result:
      description:
        - C(incident), C(rule), C(reason), C(approvers), C(approvals) (those recorded), C(started),
          C(snapshot_backup) (C(<set>/<id>)), C(snapshot_tag), C(evidence), C(baseline), C(baseline_paths),
          C(config) (or null), C(displaced) (the backup of what the baseline restore replaced), C(removed),
          C(tests), C(investigation) (the package directory), C(archive), C(report) (C(INCIDENT.md)'s path),
          C(changed).
      type: dict
restores:
  description: The results of the baseline and configuration restores (as M(lastgood.rollback.restore) returns them).
  returned: O(step=restore)
  type: dict
done:
  description: What was done, step by step (with O(step=restore), the preserve step's first).
  returned: always
  type: list
  elements: str
'''

import socket

from ansible_collections.lastgood.rollback.plugins.module_utils._full_restore import FullRestore, FullRestoreError
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule


def run(module):
    params = dict(module.params, host=module.params['host'] or socket.gethostname())

    def run_command(argv, cwd=None):
        return module.run_command(argv, cwd=cwd)
    work = FullRestore(params, run_command, check_mode=module.check_mode, warn=module.warn)
    try:
        if params['step'] == 'preserve':
            preserved = work.preserve()
            return {'changed': work.changed, 'preserved': preserved, 'done': work.done}
        result, restores = work.restore(params['preserved'])
    except FullRestoreError as exc:
        module.fail_json(msg=str(exc), done=work.done, changed=work.changed)
    return {'changed': work.changed, 'restores': restores, 'done': work.done,
            'ansible_facts': {'level4_full_restore_result': result}}


def main():
    module = ResultModule(
        argument_spec=dict(
            step=dict(type='str', choices=['preserve', 'restore'], required=True),
            preserved=dict(type='dict'),
            run_id=dict(type='str', required=True),
            host=dict(type='str'),
            incident=dict(type='str', default=''),
            investigation_dir=dict(type='path', default='/var/lib/lastgood/investigations'),
            approvals=dict(type='list', elements='dict', default=[]),
            conditions=dict(type='list', elements='str', default=['system_compromise_suspected']),
            extra_authority=dict(type='list', elements='str', default=[]),
            approval_max_age_hours=dict(type='int', default=24),
            backup_root=dict(type='path', default='/var/backups/lastgood'),
            snapshot_set=dict(type='str', default='investigation'),
            snapshot_paths=dict(type='list', elements='path', default=['/srv/app']),
            snapshot_exclude=dict(type='list', elements='str', default=['run']),
            repo=dict(type='path', default=''),
            evidence_paths=dict(type='list', elements='path', default=[]),
            git_log_since=dict(type='str', default='30 days ago'),
            baseline_set=dict(type='str', default='app'),
            baseline_id=dict(type='str', default='baseline'),
            baseline_paths=dict(type='list', elements='path', default=[]),
            config_set=dict(type='str', default='app'),
            config_id=dict(type='str', default='baseline'),
            config_paths=dict(type='list', elements='path', default=[]),
            remove_paths=dict(type='list', elements='path', default=[]),
            apply_command=dict(type='list', elements='str', default=[]),
            test_commands=dict(type='list', elements='list', default=[]),
            test_retries=dict(type='int', default=5),
            test_delay=dict(type='int', default=2),
            audit_log=dict(type='path', default='/var/log/lastgood/audit.jsonl'),
        ),
        required_if=[('step', 'restore', ('preserved',))],
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == '__main__':
    main()
