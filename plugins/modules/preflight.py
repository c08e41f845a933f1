#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: preflight
short_description: Check in one task that a host can take a run, before anything changes
version_added: 0.2.0
description:
  - Runs every check, read-only (in check mode as well), then fails once (O(fail)) with one line per failed check
    saying what is wrong and what to do.  Nothing is changed on the host.
  - C(reachable) - the host answers (the module ran; a host that does not answer drops out of the play and the
    fleet gate counts it as failed).
  - C(path_exists) - each of O(paths) exists.
  - C(disk_space) - the file system of O(backup_root) (or of its nearest existing parent) has at least
    O(space_multiple) times the size of O(backup_paths) free, measured as M(lastgood.rollback.backup) in check
    mode measures it.  Skipped when O(backup_paths) is empty.
  - C(git_clean) - each work tree of O(git_repos) has no uncommitted changes.
  - C(lock) - no other run holds the lock; C(runs_in_flight) - no other run's state file in O(state_dir) says
    C(running).  The run O(run_id) itself does not count, so a resumed run passes.
  - C(backup) - each of O(backups) exists and matches its manifest.
  - Sets the fact C(preflight_result) (host, ok, checks, failed_checks, space) and publishes C(lastgood_preflight)
    (per host - ok, failed_checks) in the run's custom stats, as the C(lastgood.rollback.preflight) role did.  The
    module runs through an action plugin of the same name, which adds the host name, the fact and the stats.
  - Ansible drops the facts and stats of a failed task; register the task as C(preflight_result) to keep the
    result when it fails (its top-level keys are those of the fact).
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.read_only
  - lastgood.rollback.attributes.store
options:
  run_id:
    description: The run about to start; its own lock and run state do not count against it.
    type: str
    default: ''
  paths:
    description: Paths that must exist.
    type: list
    elements: path
    default: []
  backup_paths:
    description: What the run's checkpoint will back up.  Empty skips the C(disk_space) check.
    type: list
    elements: path
    default: []
  space_multiple:
    description: The free space needed on the store's file system, as a multiple of the size of O(backup_paths).
    type: float
    default: 2.0
  git_repos:
    description: Git work trees that must be clean (no uncommitted changes).
    type: list
    elements: path
    default: []
  git_ignore_untracked:
    description: Let untracked files pass the C(git_clean) check.
    type: bool
    default: false
  lock_path:
    description: The lock file.  Empty uses C(<backup_root>/<set>/.lock).
    type: str
    default: ''
  state_dir:
    description: Directory of the run-state files, searched for runs in flight.
    type: path
    default: /var/lib/lastgood/runs
  backups:
    description: Backups the run relies on (V(lastgood), V(latest), an id or a checkpoint name); each must exist and
      match its manifest.
    type: list
    elements: str
    default: []
  fail:
    description: Fail when a check fails.  V(false) only reports; RV(ok) tells the outcome.
    type: bool
    default: true
seealso:
  - module: lastgood.rollback.verify
  - module: lastgood.rollback.lock
  - module: lastgood.rollback.run_state
'''

EXAMPLES = r'''
- name: Check the host can take the run
  lastgood.rollback.preflight:
    run_id: "{{ lastgood_run_id }}"
    set: app
    paths: [/srv/app/config.yaml]
    backup_paths: [/srv/app/config.yaml, /srv/app/custom_modes.json]
    state_dir: /var/lib/lastgood/runs
    backups: [lastgood]
  register: preflight_result

- name: Only report whether the code checkout is clean
  lastgood.rollback.preflight:
    git_repos: [/srv/app/code]
    fail: false
'''

RETURN = r'''
host:
  description: The inventory host name (the host's own name when the module runs without its action plugin).
  returned: always
  type: str
ok:
  description: Whether every check passed.
  returned: always
  type: bool
checks:
  description: Every check in the order run - C(name), C(ok), C(message), and C(path) or C(backup) where it has one.
  returned: always
  type: list
  elements: dict
  sample: [{name: path_exists, path: /srv/app/config.yaml, ok: true, message: /srv/app/config.yaml exists}]
failed_checks:
  description: The names of the checks that failed.
  returned: always
  type: list
  elements: str
space:
  description: C(to_back_up), C(required) and C(free) bytes; empty when O(backup_paths) is empty or could not be
    measured.
  returned: always
  type: dict
  sample: {to_back_up: 4096, required: 8192, free: 1073741824}
msg:
  description: How many checks passed, or the failed checks one per line.
  returned: always
  type: str
ansible_facts:
  description: C(preflight_result) - C(host), C(ok), C(checks), C(failed_checks), C(space).
  returned: success
  type: dict
'''

import socket

from ansible_collections.lastgood.rollback.plugins.module_utils import _checks, _preflight
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule
from ansible_collections.lastgood.rollback.plugins.module_utils._store import StoreError
from ansible_collections.lastgood.rollback.plugins.module_utils._store_module import store_argument_spec


def main():
    module = ResultModule(
        argument_spec=store_argument_spec(
            run_id=dict(type='str', default=''),
            paths=dict(type='list', elements='path', default=[]),
            backup_paths=dict(type='list', elements='path', default=[]),
            space_multiple=dict(type='float', default=2.0),
            git_repos=dict(type='list', elements='path', default=[]),
            git_ignore_untracked=dict(type='bool', default=False),
            lock_path=dict(type='str', default=''),
            state_dir=dict(type='path', default='/var/lib/lastgood/runs'),
            backups=dict(type='list', elements='str', default=[]),
            fail=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    host = socket.gethostname()
    try:
        result = dict(_preflight.preflight(module.params, host), host=host)
    except StoreError as exc:
        module.fail_json(msg='preflight cannot use the backup store: %s' % exc)
    if not result['ok'] and module.params['fail']:
        module.fail_json(msg=_checks.failure_message('Preflight failed on %s; nothing was changed:' % host,
                                                     result['checks']), **result)
    result['msg'] = 'all %d check(s) passed' % len(result['checks'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
