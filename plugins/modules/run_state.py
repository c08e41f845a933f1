#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: run_state
short_description: Record the progress of a rollback run so that a rerun resumes it
version_added: 0.1.0
description:
  - Keeps one JSON file per run ID with the run's status (C(running), C(failed), C(finished)),
    its completed phases in order and the artifacts each phase produced (backup IDs, paths, ...).
  - Every change replaces the file atomically (temporary file, C(fsync), rename, directory C(fsync)).
  - O(operation=start) on a run that already has state reports its completed phases so that roles
    can skip them; a failed run goes back to C(running) and its attempts are counted.
  - A state file that cannot be read or does not have the expected shape is never written to. Outside check
    mode it is moved aside read-only as C(<run_id>.json.corrupt-<UTC time>) and the state is rebuilt from the
    run's events in O(audit_log) (those M(lastgood.rollback.run) records), but only when the log's hash chain
    verifies; the warning and RV(rebuilt) say what the audit log does not hold. When it cannot be rebuilt the
    task fails naming the quarantined file, and the run has no state (starting it again starts it over).
  - In check mode a corrupt state file is reported and left where it is.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
attributes:
  check_mode:
    support: full
    details: Check mode reports the state the operation would produce and writes nothing.
  diff_mode:
    support: full
    details: The diff shows the run state before and after.
  idempotent:
    support: full
    details: Repeating an operation with the same arguments changes nothing the second time.
options:
  state_dir:
    description: Directory of the run-state files (created with mode C(0700)).
    type: path
    default: /var/lib/lastgood/runs
  run_id:
    description:
      - 'The run; 1-128 letters, digits and C(. _ : @ + -), starting with a letter or digit.'
    type: str
    required: true
  operation:
    description:
      - V(start) or resume the run; record a V(phase_done) with its O(artifacts); V(fail) the run
        with a O(failure_reason); V(finish) it; or V(get) its state.
    type: str
    choices: [start, phase_done, fail, finish, get]
    required: true
  phase:
    description:
      - The phase completed (O(operation=phase_done)) or the phase that failed (O(operation=fail)).
    type: str
  artifacts:
    description: What the phase produced; merged over artifacts recorded earlier for the same phase.
    type: dict
    default: {}
  failure_reason:
    description: Why the run failed; required for O(operation=fail).
    type: str
  meta:
    description: Data recorded when the run is first started (level, requested by, ...).
    type: dict
    default: {}
  audit_log:
    description:
      - The audit log a corrupt state file is rebuilt from (the run's C(run_start), C(run_resume),
        C(run_phase_done), C(run_failed), C(run_checkpoint_restored) and C(run_end) events).
      - V('') rebuilds nothing; a corrupt state file is then only moved aside.
    type: path
    default: /var/log/lastgood/audit.jsonl
seealso:
  - module: lastgood.rollback.lock
  - module: lastgood.rollback.audit_log
'''

EXAMPLES = r'''
- name: Start the run, or resume it after an interruption
  lastgood.rollback.run_state:
    run_id: "{{ run_id }}"
    operation: start
    meta:
      level: 2
  register: run

- name: Take a checkpoint unless this run already did
  lastgood.rollback.backup:
    paths: [/srv/app/config.yaml]
  register: checkpoint
  when: "'checkpoint' not in run.completed_phases"

- name: Record the checkpoint phase
  lastgood.rollback.run_state:
    run_id: "{{ run_id }}"
    operation: phase_done
    phase: checkpoint
    artifacts:
      backup_id: "{{ checkpoint.id }}"
  when: checkpoint is changed

- name: Record why the run failed
  lastgood.rollback.run_state:
    run_id: "{{ run_id }}"
    operation: fail
    phase: restore
    failure_reason: "{{ ansible_failed_result.msg | default('unknown') }}"
'''

RETURN = r'''
state:
  description:
    - The run state after the operation (C(version), C(run_id), C(status), C(created), C(updated),
      C(attempts), C(phase), C(completed_phases), C(artifacts), C(meta), C(failure_reason), C(failed_phase)),
      or null when the run has no state (O(operation=get)).
  returned: always
  type: dict
exists:
  description: Whether the run has state (after the operation).
  returned: always
  type: bool
status:
  description: C(running), C(failed) or C(finished); null when the run has no state.
  returned: always
  type: str
completed_phases:
  description: Phases completed so far, in the order they completed.
  returned: always
  type: list
  elements: str
resumed:
  description: Whether O(operation=start) found state from an earlier attempt.
  returned: O(operation=start)
  type: bool
state_file:
  description: The state file of the run.
  returned: always
  type: str
quarantined:
  description: The corrupt state file moved aside read-only (C(<run_id>.json.corrupt-<UTC time>)); empty when
    the state file was sound.
  returned: always
  type: list
  elements: str
rebuilt:
  description:
    - When the state was rebuilt from the audit log - C(from) (the audit log) and C(not_rebuilt) (what the audit
      log does not hold, so the rebuilt state lacks); null otherwise.
    - The rebuilt state also carries C(rebuilt) (C(from), C(quarantined), C(at)).
  returned: always
  type: dict
'''

from ansible_collections.lastgood.rollback.plugins.module_utils import _state
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule


def run(module):
    params = module.params
    state_dir, run_id, check = params['state_dir'], params['run_id'], module.check_mode
    operation = params['operation']
    audit_log = params['audit_log'] or None
    if operation == 'get':
        result = _state.get(state_dir, run_id, check=check, audit_log=audit_log)
    elif operation == 'start':
        result = _state.start(state_dir, run_id, meta=params['meta'], check=check, audit_log=audit_log)
    elif operation == 'phase_done':
        result = _state.phase_done(state_dir, run_id, params['phase'], artifacts=params['artifacts'], check=check,
                                   audit_log=audit_log)
    elif operation == 'fail':
        result = _state.fail(state_dir, run_id, params['failure_reason'], phase=params['phase'], check=check,
                             audit_log=audit_log)
    else:
        result = _state.finish(state_dir, run_id, check=check, audit_log=audit_log)
    state = result['state']
    repair = result['repair']
    for warning in repair['warnings'] if repair else []:
        module.warn(warning)
    output = {
        'changed': result['changed'], 'state': state, 'exists': state is not None,
        'status': state['status'] if state else None,
        'completed_phases': list(state['completed_phases']) if state else [],
        'state_file': _state.state_path(state_dir, run_id),
        'quarantined': repair['quarantined'] if repair else [],
        'rebuilt': {'from': repair['rebuilt_from'], 'not_rebuilt': repair['not_rebuilt']} if repair else None,
    }
    if operation == 'start':
        output['resumed'] = result['resumed']
    if module._diff and result['changed']:
        output['diff'] = {'before': result['before'] or {}, 'after': state}
    return output


def main():
    module = ResultModule(
        argument_spec=dict(
            state_dir=dict(type='path', default='/var/lib/lastgood/runs'),
            run_id=dict(type='str', required=True),
            operation=dict(type='str', required=True, choices=['start', 'phase_done', 'fail', 'finish', 'get']),
            phase=dict(type='str'),
            artifacts=dict(type='dict', default={}),
            failure_reason=dict(type='str'),
            meta=dict(type='dict', default={}),
            audit_log=dict(type='path', default='/var/log/lastgood/audit.jsonl'),
        ),
        required_if=[('operation', 'phase_done', ('phase',)), ('operation', 'fail', ('failure_reason',))],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except _state.StateCorrupt as exc:
        module.fail_json(msg=str(exc), corrupt=True, quarantined=exc.quarantined)
    except (_state.StateError, OSError) as exc:
        module.fail_json(msg='run state of %s: %s' % (module.params['run_id'], exc))


if __name__ == '__main__':
    main()
