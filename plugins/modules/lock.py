#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: lock
short_description: Make sure only one rollback runs at a time
version_added: 0.1.0
description:
  - Acquires, releases or inspects an exclusive lock file that names its holder
    (C(run_id), C(host), C(pid), C(user), C(created), C(ttl)).
  - The lock file is created with C(O_CREAT|O_EXCL); a second run trying to acquire it
    fails with a message naming the holder.
  - A lock is stale when its O(ttl) has run out, or when it names a O(pid) on this host that
    is dead (or now belongs to another process, or the host rebooted since); a stale lock is
    taken over by the next acquire, and the takeover is recorded in the audit log.
  - Only the run that holds the lock releases it.  O(force=true) breaks a lock held by
    another run, after writing a C(lock_forced) event to O(audit_log); without that record
    nothing is broken.
  - A lock file that cannot be read names no holder, so a run may still hold it; it is never taken
    over.  Acquire and release (outside check mode) move it aside read-only as C(<lock>.corrupt-<UTC time>)
    and leave a lock held by an unknown run in its place, which never goes stale; the task fails naming
    the quarantined file.  Once no rollback is running, O(force=true) takes or removes it (audited).
    O(operation=status) reports an unreadable lock file as held and moves nothing.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.store
attributes:
  check_mode:
    support: full
    details: Check mode reports whether the lock would be acquired, taken over or released, and fails as the real run would when another run holds it.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Acquiring a lock the same run already holds, or releasing a lock nobody holds, changes nothing.
options:
  path:
    description:
      - The lock file.  Defaults to C(.lock) in the backup set directory, C(<backup_root>/<set>/.lock).
      - A C(<path>.guard) file beside it serialises every change of the lock.
    type: path
  operation:
    description: V(acquire) the lock, V(release) it, or report its V(status).
    type: str
    choices: [acquire, release, status]
    default: acquire
  run_id:
    description:
      - The run taking or releasing the lock; one ID for the whole fleet-wide run.
      - '1-128 letters, digits and C(. _ : @ + -), starting with a letter or digit.'
      - Required for O(operation=acquire) and O(operation=release).
    type: str
  ttl:
    description: Seconds after which the lock counts as stale even if its holder still seems alive.
    type: int
    default: 14400
  pid:
    description:
      - A process on the target whose death makes the lock stale, for example a long-running wrapper
        that drives the rollback.
      - Without it only O(ttl) makes the lock stale (a module's own process ends with its task).
    type: int
  force:
    description:
      - Break a lock held by another run (O(operation=acquire) then takes it, O(operation=release) removes it).
      - A C(lock_forced) event naming the previous holder is written to O(audit_log) first.
    type: bool
    default: false
  audit_log:
    description: Audit log that records forced breaks and stale takeovers (see M(lastgood.rollback.audit_log)).
    type: path
    default: /var/log/lastgood/audit.jsonl
seealso:
  - module: lastgood.rollback.audit_log
  - module: lastgood.rollback.run_state
'''

EXAMPLES = r'''
- name: Take the rollback lock for this run
  lastgood.rollback.lock:
    run_id: "{{ run_id }}"
    ttl: 7200

- name: Who holds the lock?
  lastgood.rollback.lock:
    operation: status
  register: rollback_lock

- name: Release the rollback lock
  lastgood.rollback.lock:
    operation: release
    run_id: "{{ run_id }}"

- name: Break a lock left by a run that will never finish (recorded in the audit log)
  lastgood.rollback.lock:
    run_id: "{{ run_id }}"
    force: true
'''

RETURN = r'''
lock_file:
  description: The lock file.
  returned: always
  type: str
holder:
  description:
    - What the lock file records (C(run_id), C(host), C(pid), C(pid_start), C(boot_id), C(user), C(created), C(ttl)), or null.
    - After a release it is null; with O(operation=status) it may be a stale holder (see RV(stale)).
  returned: always
  type: dict
previous:
  description: The holder that was replaced or released, or null.
  returned: O(operation=acquire) or O(operation=release)
  type: dict
took_over:
  description: Why a previous holder was replaced (stale reason, or forced), or null.
  returned: O(operation=acquire)
  type: str
held:
  description: Whether a live holder has the lock.
  returned: O(operation=status)
  type: bool
stale:
  description: Whether the lock file is there but stale.
  returned: O(operation=status)
  type: bool
stale_reason:
  description: Why the lock is stale, or null.
  returned: O(operation=status)
  type: str
quarantined:
  description:
    - The unreadable lock file moved aside read-only (C(<lock>.corrupt-<UTC time>)), or empty. Without
      O(force) the task then fails, and the lock is held by an unknown run (the holder's C(corrupt_copy)
      names the quarantined file).
  returned: O(operation=acquire) or O(operation=release)
  type: list
  elements: str
'''

import os
import re

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _lock
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule


def run(module):
    params = module.params
    if not params['path'] and (not re.match(r'^[A-Za-z0-9._-]+$', params['set']) or params['set'] in ('.', '..')):
        module.fail_json(msg='set %r may hold only letters, digits, ., _ and -' % params['set'])
    path = params['path'] or os.path.join(params['backup_root'], params['set'], '.lock')
    operation = params['operation']
    if operation == 'status':
        return dict(_lock.status(path), changed=False, lock_file=path)
    if operation == 'acquire':
        result = _lock.acquire(path, params['run_id'], ttl=params['ttl'], pid=params['pid'], force=params['force'],
                               audit_log=params['audit_log'], check=module.check_mode)
        if result['took_over']:
            module.warn('lock %s taken over from %s: %s' % (path, _lock.describe(result['previous']), result['took_over']))
        return dict(result, lock_file=path)
    result = _lock.release(path, params['run_id'], force=params['force'], audit_log=params['audit_log'],
                           check=module.check_mode)
    return dict(result, lock_file=path, holder=None)


def main():
    module = ResultModule(
        argument_spec=dict(
            path=dict(type='path'),
            backup_root=dict(type='path', default='/var/backups/lastgood'),
            set=dict(type='str', default='default'),
            operation=dict(type='str', default='acquire', choices=['acquire', 'release', 'status']),
            run_id=dict(type='str'),
            ttl=dict(type='int', default=_lock.DEFAULT_TTL),
            pid=dict(type='int'),
            force=dict(type='bool', default=False),
            audit_log=dict(type='path', default='/var/log/lastgood/audit.jsonl'),
        ),
        required_if=[('operation', 'acquire', ('run_id',)), ('operation', 'release', ('run_id',))],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except _lock.LockHeld as exc:
        module.fail_json(msg=str(exc), holder=exc.holder, quarantined=getattr(exc, 'quarantined', []))
    except (_lock.LockError, _audit.AuditError, OSError) as exc:
        module.fail_json(msg='lock %s: %s' % (module.params['path'] or module.params['set'], exc))


if __name__ == '__main__':
    main()
