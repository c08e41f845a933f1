#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: run
short_description: Begin, record, rescue, end and close a rollback run on a host - one task per step
version_added: 0.2.0
description:
  - The bookkeeping of every lastgood.rollback run in one task per step, each returning the host's record
    of the run as the fact C(lastgood_host), so no C(set_fact) is needed around it.  Meant to be used with
    C(module_defaults) for the common options at play level.
  - O(state=begin) takes the rollback lock for O(run_id) (see M(lastgood.rollback.lock)), starts or resumes the
    run state (see M(lastgood.rollback.run_state)) and records C(run_start) or C(run_resume) in the audit log.
    C(lastgood_host.completed) lists the phases an earlier attempt completed that still count, which a
    resumed run skips - every completed phase unless a restore of the checkpoint undid it since (each
    phase records the attempt it completed in, the rescue the attempt in which it restored); phases in
    O(keep_phases) always count.  When the host is in the C(stop) list of the latest fleet gate
    (C(lastgood_gate), see C(lastgood.rollback.fleet_gate)) it fails with the gate's message first, without
    touching the host.  When anything after taking the lock fails, the lock is released again.
  - With O(skip_phases) the operator skips phases of this attempt explicitly; O(reason) is required with it
    and only phases after C(checkpoint) in O(phases) that are not in O(fixed_phases) can be skipped, otherwise the step fails before it takes
    the lock.  Each skipped phase is a C(run_phase_skipped) audit event (with the reason), is listed in
    C(lastgood_host.skipped) for the report and counts as completed for this attempt only.
  - O(state=begin) with O(action=abort) gives up a run that failed or was interrupted.  It resumes the run,
    puts its checkpoint back when the run took it on this host - verified after the swap, compared with the
    live paths, O(apply_command) run when files changed, as O(state=rescue) does - records C(run_aborted)
    (and C(run_checkpoint_restored)) in the audit log and the C(abort) phase in the run state, and lists every
    phase of O(phases) as completed, so the run's other steps do nothing; O(state=end) then closes the run
    (run state finished, lock released) with the outcome C(aborted).  A run without state on the host (unless
    O(abort_missing=skip)), or one that already ended, is refused (nothing is changed).  A restore that fails leaves the outcome
    C(restore_failed), the run failed and the lock held.
  - O(state=checkpoint) takes the run's checkpoint of O(paths) - a backup named O(checkpoint) in the store,
    verified against its manifest before it is published (see M(lastgood.rollback.backup)) - and records the
    C(checkpoint) phase in the same module run; the backup's result is RV(checkpoint_result), and
    C(lastgood_checkpoint) (id, and per host verified, files, bytes) goes to the run's custom stats for AWX
    workflow nodes.  A checkpoint an earlier attempt completed is not taken again.
  - O(state=phase) records O(phase) as completed with its O(artifacts) and the attempt (run state and a
    C(run_phase_done) audit event), unless an earlier attempt completed it.  Then it fails the host when the
    phase's fleet gate (C(lastgood_gates[phase])) stopped it, with the gate's message.  A phase before
    O(state=begin) (for example C(preflight)) and the phase C(start) record nothing, only the gate is checked;
    so does O(record=false), for a phase another step records (C(state=checkpoint), or C(state=end) with
    O(phase)).
  - O(state=rescue) is for the rescue section.  It works out from the task variables where the run failed
    (C(ansible_failed_task), C(ansible_failed_result), and from the fleet gates whether a gate stopped this host
    because others failed), restores the checkpoint when the host got past the C(checkpoint) phase (verified
    after the swap, see M(lastgood.rollback.restore)), compares the live paths with it, runs O(apply_command)
    when the restore changed anything, and records C(run_failed) and C(run_checkpoint_restored) in the audit
    log and the failure in the run state.  It never fails on its own account.
  - O(state=end) first records O(phase) with its O(artifacts) when given and the run did not fail on this host
    (the run's last phase, so that it costs no step of its own), then records C(run_end), marks the run state
    finished on a host that succeeded, releases the lock (not on a host whose checkpoint could not be
    restored - it is in no known state, and a rerun with the same run id takes the lock again), then reads
    this run's events from the audit log and verifies its hash
    chain into C(lastgood_host.events) and C(lastgood_host.audit).  It never fails on its own account.
    A run this job pauses (O(pause_after)) that has not failed on the host is paused instead of ended (see there).
  - O(state=close) writes this host's C(report.json) and C(report.md) into C(<report_dir>/<run_id>/) on the
    host (directory mode C(0750), files C(0640), each replaced atomically), then fails a host whose run
    failed, saying where it failed, what state the host is in and how to resume.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.store
attributes:
  check_mode:
    support: full
    details:
      - Check mode writes nothing - no lock file, run state, audit event, restore or report - and fails
        where the real run would fail (a lock held by another run, a corrupt run state).
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every step but O(state=close) records an audit event.
options:
  state:
    description: The step of the run.
    type: str
    choices: [begin, checkpoint, phase, rescue, end, close]
    required: true
  run_id:
    description:
      - 'The fleet-wide run id; 1-128 letters, digits and C(. _ : @ + -), starting with a letter or digit.'
      - Passing the id of an earlier run resumes it.
    type: str
    required: true
  operation:
    description: What the run does, for the run state and the audit log, for example C(rollback_level2).
    type: str
    default: rollback
  level:
    description: The rollback level (1-4), or 0 for a run that is not a rollback level.
    type: int
    default: 0
  checkpoint:
    description: The fleet-wide checkpoint the run takes before it acts; a failed run restores it.  V('') for none.
    type: str
    default: ''
  checkpoint_paths:
    description: The paths of the checkpoint a failed run restores.  V([]) restores every path it holds.
    type: list
    elements: path
    default: []
  phases:
    description:
      - The phases of the run in order, including C(preflight) and C(start).  The rescue names the first phase
        this host did not pass as the phase it failed in.
    type: list
    elements: str
    default: [preflight, start, checkpoint]
  keep_phases:
    description: Phases whose effects survive a restore of the checkpoint; a resumed run always skips them.
    type: list
    elements: str
    default: [checkpoint]
  state_dir:
    description: Directory of the run-state files (see M(lastgood.rollback.run_state)).
    type: path
    default: /var/lib/lastgood/runs
  audit_log:
    description:
      - The audit log (see M(lastgood.rollback.audit_log)).
      - A corrupt run state is rebuilt from this run's events in it (see M(lastgood.rollback.run_state)).
    type: path
    default: /var/log/lastgood/audit.jsonl
  lock_path:
    description: The lock file.  V('') uses C(<backup_root>/<set>/.lock).
    type: str
    default: ''
  lock_ttl:
    description: Seconds after which the lock counts as stale even if its holder seems alive.
    type: int
    default: 14400
  user:
    description: Who is acting, as the audit log records it.  V('') records the user the module runs as.
    type: str
    default: ''
  meta:
    description: O(state=begin) - data recorded in the run state when the run first starts (ticket, reason, ...).
    type: dict
    default: {}
  action:
    description:
      - O(state=begin) - V(resume) starts the run or resumes it after its last completed phase; V(continue) resumes a
        run an earlier job began (a paused run, see O(pause_after)) and never starts one - a host without the run's
        state, or where it ended, fails and nothing is changed; V(abort) puts the checkpoint of a failed run back and
        closes the run (see above).
    type: str
    choices: [resume, continue, abort]
    default: resume
  pause_after:
    description:
      - O(state=begin) - this job does the run up to this phase of O(phases) and pauses it there - C(checkpoint) or a
        later phase, not one of O(fixed_phases).  The later phases are listed in C(lastgood_host.held) and are not
        recorded by O(state=phase); O(state=end) records C(run_paused) instead of C(run_end), leaves the run state
        running and keeps the lock, and the host's outcome is C(paused).  A later job continues the run with the
        same O(run_id) (O(action=continue)).  This is how the nodes of an AWX workflow each do one part of a run.
      - V('') runs to the end.
    type: str
    default: ''
  abort_missing:
    description:
      - O(state=begin) with O(action=abort) - what to do on a host where the run never began (no run state).
        V(fail) refuses, in case the run id is wrong.  V(skip) counts the host as aborted with nothing to put back
        and records nothing of the run on it (no lock, run state or audit event; O(state=close) still writes its
        report) - for an abort across a whole inventory, part of which the run never reached.
    type: str
    choices: [fail, skip]
    default: fail
  skip_phases:
    description:
      - O(state=begin) - phases of O(phases) after C(checkpoint) that this attempt skips, on the operator's word.
        Requires O(reason).
    type: list
    elements: str
    default: []
  fixed_phases:
    description:
      - O(state=begin) - phases after C(checkpoint) that O(skip_phases) may not name either, for example the staging
        pass of a run that acts on staging hosts first (production goes on only after staging passed).
    type: list
    elements: str
    default: []
  reason:
    description:
      - O(state=begin) - why the operator skips O(skip_phases) or aborts the run, recorded in the audit log and
        the report.  Required with O(skip_phases).
    type: str
    default: ''
  phase:
    description:
      - O(state=phase) - the phase just completed.  Required with O(state=phase).
      - O(state=end) - the run's last phase, recorded first when the run did not fail on this host.
    type: str
  record:
    description: O(state=phase) - record the phase (V(false) - only check whether its fleet gate stopped this host).
    type: bool
    default: true
  paths:
    description: O(state=checkpoint) - the paths the checkpoint backs up.
    type: list
    elements: path
    default: []
  exclude:
    description: O(state=checkpoint) - patterns left out of the checkpoint (see M(lastgood.rollback.backup)).
    type: list
    elements: str
    default: []
  mark_lastgood:
    description: O(state=checkpoint) - mark the checkpoint as the set's last known good.
    type: bool
    default: false
  keep_runs:
    description:
      - O(state=checkpoint) - once the checkpoint is taken, release the pins of the checkpoints of earlier runs
        (C(run-<run id>)) that succeeded (their run state in O(state_dir) says C(finished)) and have O(keep_runs)
        newer run checkpoints in the set, and remove them - the retention of M(lastgood.rollback.backup)
        O(lastgood.rollback.backup#module:keep_runs).  They are listed in RV(checkpoint_result) as C(released) and
        C(removed).  The C(LASTGOOD) backup, checkpoints named otherwise, and checkpoints of runs that failed or
        have no run state are kept.  A failure here is a warning.
      - Not set (or V(0)), nothing is released.
    type: int
  artifacts:
    description:
      - O(state=phase) - what the phase produced (ids, paths, counts); kept in the run state and the audit log.
        Never put secrets here.
    type: dict
    default: {}
  apply_command:
    description:
      - O(state=rescue), and O(state=begin) with O(action=abort) - the command (an argument list, no shell) that
        makes the application load its files again, run after a restore of the checkpoint changed them.  Its result is C(lastgood_host.restore.reapplied);
        a failure counts as a failed restore.  V([]) runs nothing.
    type: list
    elements: str
    default: []
  restore_on_failure:
    description: O(state=rescue) - restore the checkpoint on a host whose run failed after it was taken.
    type: bool
    default: true
  report_dir:
    description: O(state=close) - the directory on the host that holds a directory of reports per run.
    type: path
    default: /var/lib/lastgood/reports
  fleet:
    description:
      - O(state=close) - the run's fleet summary (the C(lastgood_fleet) fact of C(lastgood.rollback.fleet_outcome)),
        from which the action renders this host's report when O(report_documents) is not given.
    type: dict
    default: {}
  fail_aborted:
    description:
      - O(state=close) - fail a host whose run was aborted (outcome C(aborted)), with the same words, so that the job
        says the run did not go through.  An AWX workflow counts a failed node that leads to the abort node as
        handled, so without this the workflow would end C(successful) after the abort (docs/awx.md).
    type: bool
    default: false
  report_documents:
    description:
      - O(state=close) - the documents to write, file name to text, for example this host's entry of the
        C(host_documents) that C(lastgood.rollback.fleet_report) returns with C(host_documents=true).
      - By default the action renders C(report.json) and C(report.md) for this host from O(fleet),
        C(lastgood_host) and the phase results named by O(result_vars).
    type: dict
  result_vars:
    description:
      - O(state=close) - the variables holding this host's phase results for its report (C(preflight),
        C(checkpoint), C(action), C(verify)), as C(lastgood.rollback.fleet_report) reads them; a dotted name
        reads a key of a variable.  Used when O(report_documents) is not given.
    type: dict
    default:
      preflight: preflight_result
      checkpoint: lastgood_checkpoint_result.checkpoint_result
      action: lastgood_action_result
      verify: verify_result
  host:
    description:
      - This host's record of the run so far (the C(lastgood_host) fact).  Set by the action plugin; do not set it.
    type: dict
    default: {}
  failure:
    description: O(state=rescue) - where and why the run failed.  Set by the action plugin; do not set it.
    type: dict
    default: {}
  passed_phases:
    description: O(state=rescue) - the phases this host passed.  Set by the action plugin; do not set it.
    type: list
    elements: str
    default: []
seealso:
  - module: lastgood.rollback.lock
  - module: lastgood.rollback.run_state
  - module: lastgood.rollback.audit_log
  - module: lastgood.rollback.restore
'''

EXAMPLES = r'''
- name: Roll back
  hosts: app
  module_defaults:
    lastgood.rollback.run:
      run_id: "{{ lastgood_run_id }}"
      operation: rollback_level2
      level: 2
      checkpoint: "run-{{ lastgood_run_id }}"
      checkpoint_paths: [/etc/myapp]
      phases: [preflight, start, checkpoint, level2_config, verify]
      set: app
  tasks:
    - name: Run the rollback
      block:
        - name: Take the lock and start (or resume) the run
          lastgood.rollback.run:
            state: begin

        - name: Pass the start gate
          lastgood.rollback.run:
            state: phase
            phase: start

        - name: Take the checkpoint
          lastgood.rollback.backup:
            paths: [/etc/myapp]
            checkpoint: "run-{{ lastgood_run_id }}"
          when: "'checkpoint' not in lastgood_host.completed"

        - name: Record the checkpoint
          lastgood.rollback.run:
            state: phase
            phase: checkpoint
            artifacts:
              checkpoint: "run-{{ lastgood_run_id }}"
      rescue:
        - name: Restore the run's checkpoint and record the failure
          lastgood.rollback.run:
            state: rescue
            apply_command: [/srv/myapp/bin/appctl, reload]
      always:
        - name: End the run - audit, run state, lock
          lastgood.rollback.run:
            state: end

        - name: Write this host's report and say how the run ended on it
          lastgood.rollback.run:
            state: close
            fleet: "{{ lastgood_fleet }}"
'''

RETURN = r'''
checkpoint_result:
  description:
    - O(state=checkpoint) - the backup's result as M(lastgood.rollback.backup) returns it (C(id), C(path),
      C(manifest), C(files), C(bytes), C(new_backup), C(lastgood), C(verified), C(missing)) and the earlier runs'
      checkpoints O(keep_runs) released and removed (C(released), C(removed)); empty when an earlier attempt took
      the checkpoint.
  returned: O(state=checkpoint)
  type: dict
  sample: {id: run-20261207T200000Z-4f2a9c, files: 3, bytes: 912, new_backup: true, verified: true}
ansible_facts:
  description: The fact C(lastgood_host), this host's record of the run after the step.
  returned: O(state=begin), O(state=checkpoint), O(state=phase), O(state=rescue) and O(state=end), unless the step
    fails the host
  type: dict
  contains:
    lastgood_host:
      description:
        - C(run_id), C(operation), C(level), C(checkpoint); from O(state=begin) C(attempt), C(resumed),
          C(completed) (phases a resumed run skips), C(recorded) (artifacts earlier attempts recorded, by phase),
          C(started), C(lock_file), C(lock_held).
        - From O(state=begin) C(held) (phases left for a later job, see O(pause_after)) and C(pause_after).
        - From O(state=begin) with O(skip_phases) C(skipped) (C(phase), C(reason) of each phase skipped); with
          O(action=abort) also C(outcome) (C(aborted) or C(restore_failed)), C(failure) (phase C(abort)) and
          C(restore), as from O(state=rescue); C(never_began) on a host O(abort_missing=skip) found without the run.
        - From O(state=rescue) C(outcome) (C(failed) or C(restore_failed)), C(failure) (C(phase), C(task),
          C(message), C(stopped_by_fleet), C(failed_hosts)) and C(restore) (C(attempted), C(restored),
          C(verified), C(reapplied), C(checkpoint), C(changed), C(drift), C(message)).
        - From O(state=end) C(outcome) (C(success) unless the rescue or an abort set it, C(paused) when this job paused
          the run), C(finished), C(lock_released),
          C(events) (this run's audit events on this host) and C(audit) (C(chain_ok), C(lines),
          C(first_broken), C(events) - the number of events, C(quarantined) - corrupt live files of the audit log
          moved aside, each C(file), C(ts), C(reason)).
      type: dict
      returned: always
report:
  description: O(state=close) - the directory the report was written to and the files that changed.
  returned: O(state=close)
  type: dict
  sample: {dir: /var/lib/lastgood/reports/20261207T200000Z-1a2b3c, changed: [report.json, report.md]}
not_begun:
  description:
    - O(state=begin) refused the run because it never began on this host (O(action=continue), or O(action=abort)
      with O(abort_missing=fail)).  The rescue then records no run state for it on the host.
  returned: failure
  type: bool
  sample: true
quarantined:
  description:
    - When the step fails, the corrupt bookkeeping files it moved aside read-only as C(<file>.corrupt-<UTC time>)
      - an unreadable lock file (the lock is then held by an unknown run, see M(lastgood.rollback.lock)), or a run
      state that could not be rebuilt from the audit log (see M(lastgood.rollback.run_state)). The message names them.
  returned: failure
  type: list
  elements: str
msg:
  description: What the step did; for O(state=close) how the run ended on this host.
  returned: always
  type: str
'''

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _lock, _run, _state
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule

ARGUMENT_SPEC = dict(
    state=dict(type='str', required=True, choices=['begin', 'checkpoint', 'phase', 'rescue', 'end', 'close']),
    run_id=dict(type='str', required=True),
    operation=dict(type='str', default='rollback'),
    level=dict(type='int', default=0),
    checkpoint=dict(type='str', default=''),
    checkpoint_paths=dict(type='list', elements='path', default=[]),
    phases=dict(type='list', elements='str', default=['preflight', 'start', 'checkpoint']),
    keep_phases=dict(type='list', elements='str', default=['checkpoint']),
    backup_root=dict(type='path', default='/var/backups/lastgood'),
    set=dict(type='str', default='default'),
    state_dir=dict(type='path', default='/var/lib/lastgood/runs'),
    audit_log=dict(type='path', default='/var/log/lastgood/audit.jsonl'),
    lock_path=dict(type='str', default=''),
    lock_ttl=dict(type='int', default=_lock.DEFAULT_TTL),
    user=dict(type='str', default=''),
    meta=dict(type='dict', default={}),
    action=dict(type='str', default='resume', choices=['resume', 'continue', 'abort']),
    pause_after=dict(type='str', default=''),
    abort_missing=dict(type='str', default='fail', choices=['fail', 'skip']),
    skip_phases=dict(type='list', elements='str', default=[]),
    fixed_phases=dict(type='list', elements='str', default=[]),
    reason=dict(type='str', default=''),
    phase=dict(type='str'),
    record=dict(type='bool', default=True),
    paths=dict(type='list', elements='path', default=[]),
    exclude=dict(type='list', elements='str', default=[]),
    mark_lastgood=dict(type='bool', default=False),
    keep_runs=dict(type='int'),
    artifacts=dict(type='dict', default={}),
    apply_command=dict(type='list', elements='str', default=[]),
    restore_on_failure=dict(type='bool', default=True),
    report_dir=dict(type='path', default='/var/lib/lastgood/reports'),
    fleet=dict(type='dict', default={}),
    report_documents=dict(type='dict'),
    fail_aborted=dict(type='bool', default=False),
    result_vars=dict(type='dict', default={'preflight': 'preflight_result', 'checkpoint': 'lastgood_checkpoint_result.checkpoint_result',
                                           'action': 'lastgood_action_result', 'verify': 'verify_result'}),
    host=dict(type='dict', default={}),
    failure=dict(type='dict', default={}),
    passed_phases=dict(type='list', elements='str', default=[], no_log=False),
)


def step(module):
    params = module.params
    run = _run.RunSettings(params)
    check = module.check_mode
    state = params['state']
    if state == 'begin' and params['action'] == 'abort':
        host, changed = _run.abort(run, params['phases'], params['reason'], params['apply_command'],
                                   lambda argv: _run_command(module, argv), check=check, warn=module.warn,
                                   missing=params['abort_missing'])
        return {'changed': changed, 'msg': 'Run %s aborted on this host. %s' % (run.run_id, host['restore']['message']),
                'ansible_facts': {'lastgood_host': host}}
    if state == 'begin':
        skip = _run.skip_plan(params['phases'], params['skip_phases'], params['reason'], params['fixed_phases'])
        hold = _run.hold_plan(params['phases'], params['pause_after'], params['fixed_phases'])
        host, changed = _run.begin(run, params['meta'], check=check, warn=module.warn, skip=skip,
                                   reason=params['reason'], action=params['action'], hold=hold,
                                   pause_after=params['pause_after'])
        for skipped in host['skipped']:
            module.warn('Skipping phase %s of run %s on the operator\'s word: %s' % (
                skipped['phase'], run.run_id, skipped['reason']))
        if host['resumed']:
            msg = _run.resume_message(host)
            module.warn(msg)
        else:
            msg = 'Started run %s (attempt %s) on this host.' % (run.run_id, host['attempt'])
        if params['pause_after']:
            msg += ' This job pauses the run after phase %s%s.' % (
                params['pause_after'], ' (%s left for the job that continues it)' % ', '.join(host['held'])
                if host['held'] else '')
        return {'changed': changed, 'msg': msg, 'ansible_facts': {'lastgood_host': host}}
    if state == 'checkpoint':
        host, changed, taken = _run.checkpoint(run, params['host'], params['paths'], params['exclude'],
                                               params['mark_lastgood'], check=check, warn=module.warn,
                                               keep_runs=params['keep_runs'])
        msg = ('Checkpoint %s taken and recorded.' % run.checkpoint if taken is not None
               else 'Checkpoint %s was taken by an earlier attempt of the run.' % run.checkpoint)
        return {'changed': changed, 'msg': msg, 'checkpoint_result': taken or {},
                'ansible_facts': {'lastgood_host': host}}
    if state == 'phase':
        host = run.new_host(params['host'])
        changed = _run.record_phase(run, host, params['phase'], params['artifacts'], check=check)
        if changed:
            msg = 'Recorded phase %s.' % params['phase']
        elif params['phase'] in host.get('held', []):
            msg = 'Phase %s is left for the job that continues the run; not recorded.' % params['phase']
        else:
            msg = 'Phase %s was completed by an earlier attempt of the run; not recorded again.' % params['phase']
        return {'changed': changed, 'msg': msg, 'ansible_facts': {'lastgood_host': host}}
    if state == 'rescue':
        host, changed = _run.rescue(run, params['host'], params['failure'], params['passed_phases'],
                                    params['apply_command'], params['restore_on_failure'],
                                    lambda argv: _run_command(module, argv), check=check, warn=module.warn)
        return {'changed': changed, 'msg': host['restore']['message'], 'ansible_facts': {'lastgood_host': host}}
    if state == 'end':
        host, changed = _run.end(run, params['host'], check=check, warn=module.warn, last_phase=params['phase'],
                                 artifacts=params['artifacts'])
        msg = ('Run %s paused on this host after phase %s; it stays open for the job that continues it.'
               % (run.run_id, host['pause_after']) if host['outcome'] == _run.PAUSED
               else 'Run %s ended on this host: %s.' % (run.run_id, host['outcome']))
        return {'changed': changed, 'msg': msg, 'ansible_facts': {'lastgood_host': host}}
    directory, changed = _run.write_report(params['report_dir'], run.run_id, params['report_documents'] or {},
                                           check=check)
    return {'changed': bool(changed), 'report': {'dir': directory, 'changed': changed},
            'msg': 'Report written to %s.' % directory}


def _run_command(module, argv):
    try:
        return module.run_command(argv, handle_exceptions=False)
    except OSError as exc:
        # as ansible.builtin.command reports a command it cannot start
        return exc.errno or 1, '', ''


def main():
    module = ResultModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                          required_if=[('state', 'phase', ('phase',))])
    try:
        module.exit_json(**step(module))
    except _lock.LockHeld as exc:
        module.fail_json(msg=str(exc), holder=exc.holder, quarantined=getattr(exc, 'quarantined', []))
    except _run.NotBegun as exc:
        module.fail_json(msg=str(exc), quarantined=[], not_begun=True)
    except (_run.RunError, _lock.LockError, _state.StateError, _audit.AuditError) as exc:
        module.fail_json(msg=str(exc), quarantined=getattr(exc, 'quarantined', []))
    except OSError as exc:
        module.fail_json(msg='run %s, step %s: %s' % (module.params['run_id'], module.params['state'], exc))


if __name__ == '__main__':
    main()
