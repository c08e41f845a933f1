# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A run's bookkeeping on one host: lock, run state and audit, and the rescue's restore of the checkpoint.

Each step takes the run's settings (``RunSettings``) and this host's record of the run so far
(the ``lastgood_host`` fact, a plain dict) and returns the updated record; the run module is a
thin wrapper over them.  Steps that run after a failure (``rescue``, ``end``) never raise: what
they could not record becomes a warning, so the host's outcome stays what the run did.  In check
mode nothing is written: no lock file, run state, audit line or restore.
"""

from __future__ import annotations

import os
import re

from . import _audit, _lock, _state
from ._fsatomic import atomic_write_text, makedirs_durable, read_bytes
from ._result import unescape_names

NO_CHECKPOINT_MESSAGE = 'No checkpoint was taken yet, so nothing on this host was changed by the run.'
DRIFT_SHOWN = 5
STDERR_SHOWN = 300
REPORT_DIR_MODE = 0o750
REPORT_FILE_MODE = 0o640
_SET_RE = re.compile(r'^[A-Za-z0-9._-]+$')
# the outcomes that end a run for good: its run state is marked finished
CLOSED_OUTCOMES = ('success', 'aborted')
# the outcome of a run this job paused after a phase (pause_after): it stays open, its lock held
PAUSED = 'paused'
PAST = {'abort': 'aborted', 'continue': 'continued'}


class RunError(Exception):
    """A step of the run could not be done; the message says what state the host is in.

    ``quarantined``: corrupt bookkeeping files the step moved aside (named in the message too).
    """

    def __init__(self, message, quarantined=None):
        super().__init__(message)
        self.quarantined = list(quarantined or [])


class NotBegun(RunError):
    """The run was refused on a host where it never began (continue, abort): nothing of it may be recorded there."""


class RunSettings:
    """The options every step of a run shares (the run module's common options)."""

    def __init__(self, params):
        self.run_id = params['run_id']
        self.operation = params['operation']
        self.level = params['level']
        self.checkpoint = params['checkpoint']
        self.checkpoint_paths = list(params['checkpoint_paths'] or [])
        self.keep_phases = list(params['keep_phases'])
        self.backup_root = params['backup_root']
        self.set_name = params['set']
        self.state_dir = params['state_dir']
        self.audit_log = params['audit_log']
        self.lock_path = params['lock_path']
        self.lock_ttl = params['lock_ttl']
        self.user = params['user'] or None

    def lock_file(self):
        if self.lock_path:
            return self.lock_path
        if not _SET_RE.match(self.set_name) or self.set_name in ('.', '..'):
            raise RunError('set %r may hold only letters, digits, ., _ and -' % self.set_name)
        return os.path.join(self.backup_root, self.set_name, '.lock')

    def audit(self, event, detail, level='info', check=False):
        """Append ``event`` for this run to the audit log (nothing in check mode)."""
        if not check:
            _audit.append(self.audit_log, event, run_id=self.run_id, level=level, detail=detail, user=self.user)

    def new_host(self, host=None):
        """This host's record: ``host`` (the fact so far) or, before begin, the run's identity."""
        record = dict(host or {})
        for key, value in (('run_id', self.run_id), ('operation', self.operation), ('level', self.level),
                           ('checkpoint', self.checkpoint)):
            record.setdefault(key, value)
        return record


def completed_phases(state, keep_phases):
    """The phases a resumed run skips: completed, and not undone by a restore of the checkpoint since.

    Every phase records the attempt it completed in and the rescue the attempt in which it put the
    checkpoint back; a phase completed before that restore counts only when ``keep_phases`` lists it
    (its effect survives a restore, like the checkpoint itself).
    """
    artifacts = state['artifacts']
    undone_at = _attempt_of(artifacts.get('rescue')) or 0
    redone = [phase for phase, recorded in artifacts.items()
              if phase != 'rescue' and (_attempt_of(recorded) or 0) > undone_at]
    return [phase for phase in state['completed_phases'] if phase in keep_phases or phase in redone]


def _attempt_of(recorded):
    if not isinstance(recorded, dict) or isinstance(recorded.get('attempt'), bool):
        return None
    try:
        return int(recorded['attempt'])
    except (KeyError, TypeError, ValueError):
        return None


def skip_plan(phases, skip_phases, reason, fixed=()):
    """The phases an operator asked to skip, in run order, once checked: only with a reason, never the checkpoint.

    Only the phases after the checkpoint can be skipped (the action, verify), and of those not the ones in
    ``fixed`` (a staging pass: production goes on only after staging passed): without preflight, the lock
    or the checkpoint a failed run would have nothing to put back.
    """
    if not skip_phases:
        return []
    if not (reason or '').strip():
        raise RunError('skipping phase(s) %s needs a reason (option reason; the playbooks take it as '
                       'lastgood_skip_reason), which the audit log and the report record; nothing was changed'
                       % ', '.join(skip_phases))
    phases = list(phases)
    after = phases[phases.index('checkpoint') + 1:] if 'checkpoint' in phases else [
        phase for phase in phases if phase not in ('preflight', 'start')]
    skippable = [phase for phase in after if phase not in fixed]
    refused = [phase for phase in skip_phases if phase not in skippable]
    if refused:
        raise RunError('phase(s) %s cannot be skipped: only the phases after the checkpoint but a staging pass can (%s); '
                       'nothing was changed' % (', '.join(refused), ', '.join(skippable) or 'none in this run'))
    return [phase for phase in phases if phase in skip_phases]


def hold_plan(phases, pause_after, fixed=()):
    """The phases a job that pauses the run after ``pause_after`` leaves for a later job, in run order.

    A run can pause after its checkpoint or any later phase but a staging pass (``fixed``): a job of an
    AWX workflow does one part of the run (docs/awx.md), and the next continues it with the same run id.
    """
    if not pause_after:
        return []
    phases = list(phases)
    after = phases[phases.index('checkpoint'):] if 'checkpoint' in phases else []
    allowed = [phase for phase in after if phase not in fixed]
    if pause_after not in allowed:
        raise RunError('the run cannot pause after %s: it pauses after one of %s; nothing was changed'
                       % (pause_after, ', '.join(allowed) or 'no phase of this run'))
    return phases[phases.index(pause_after) + 1:]


def _state_to_resume(run, verb, missing_ok=False):
    """The state of a run that must have begun on this host and not ended, for ``verb`` (abort, continue).

    Raises RunError (nothing changed) when it cannot be read, has ended, or is missing - unless
    ``missing_ok``, when a missing state is None.
    """
    try:
        state = _state.load(run.state_dir, run.run_id)
    except (_state.StateError, OSError) as exc:
        raise RunError('run %s cannot be %s: %s; nothing was changed' % (run.run_id, PAST[verb], exc))
    if state is None and not missing_ok:
        raise NotBegun('run %s has no state in %s on this host, so there is nothing to %s here; check the run id '
                       '(nothing was changed)' % (run.run_id, run.state_dir, verb))
    if state is not None and state['status'] == 'finished':
        raise RunError('run %s already ended on this host (run state finished); there is nothing to %s (nothing '
                       'was changed)' % (run.run_id, verb))
    return state


def begin(run, meta, check=False, warn=None, skip=(), reason='', action='resume', hold=(), pause_after=''):
    """Take the lock, start or resume the run state, audit ``run_start``/``run_resume``.

    ``skip`` (checked by skip_plan) are phases the operator skips this attempt, with ``reason``: each is
    a ``run_phase_skipped`` audit event, is listed in ``host['skipped']`` for the report, and counts as
    completed for this attempt only (it is not recorded in the run state, so a later attempt runs it).
    ``action`` ``continue`` resumes a run an earlier job began (never starts one: RunError when the host has
    no state of it, or it ended).  ``pause_after`` (checked by hold_plan, which gave ``hold``): this job
    stops after that phase; ``host['held']`` lists the phases left for a later job and ``end`` pauses the
    run instead of ending it.
    Returns ``(host, changed)``.  When anything after taking the lock fails, the lock is released again
    before RunError is raised: the host has no record of the run that would let its end release it.
    """
    if action == 'continue':
        _state_to_resume(run, 'continue')
    path = run.lock_file()
    lock = _lock.acquire(path, run.run_id, ttl=run.lock_ttl, audit_log=run.audit_log, check=check)
    if lock['took_over'] and warn:
        warn('lock %s taken over from %s: %s' % (path, _lock.describe(lock['previous']), lock['took_over']))
    try:
        started = _state.start(run.state_dir, run.run_id, check=check, audit_log=run.audit_log, meta=dict(
            meta, operation=run.operation, level=run.level, checkpoint=run.checkpoint))
        if started['repair'] and warn:
            for warning in started['repair']['warnings']:
                warn(warning)
        state = started['state']
        completed = completed_phases(state, run.keep_phases)
        detail = {'operation': run.operation, 'level': run.level, 'attempt': state['attempts'],
                  'checkpoint': run.checkpoint, 'skipping': completed}
        if action != 'resume':
            detail['action'] = action
        if pause_after:
            detail['until'] = pause_after
        run.audit('run_resume' if started['resumed'] else 'run_start', level='notice', check=check, detail=detail)
        skipped = [phase for phase in skip if phase not in completed]
        for phase in skipped:
            run.audit('run_phase_skipped', level='warning', check=check, detail={
                'phase': phase, 'attempt': state['attempts'], 'reason': reason})
    except (_state.StateError, _audit.AuditError, OSError) as exc:
        raise RunError('%s. %s' % (exc, _release_after_failed_begin(run, path, check)),
                       getattr(exc, 'quarantined', None))
    host = run.new_host({
        'attempt': state['attempts'], 'resumed': started['resumed'], 'completed': completed + skipped,
        'recorded': state['artifacts'], 'lock_file': path, 'lock_held': True,
        'skipped': [{'phase': phase, 'reason': reason} for phase in skipped],
        'held': [phase for phase in hold if phase not in completed], 'pause_after': pause_after or '',
    })
    return host, True


def abort(run, phases, reason, apply_command, run_command, check=False, warn=None, missing='fail'):
    """Give up a run that failed (or was interrupted): put its checkpoint back and close it.

    The run is resumed (lock, run state, ``run_resume``), its checkpoint restored when it was taken -
    verified after the swap, compared with the live paths, ``apply_command`` run when files changed,
    as the rescue does - and recorded: ``run_checkpoint_restored`` and ``run_aborted`` in the audit log,
    the ``abort`` phase in the run state, which ``end`` then marks finished.  Every phase of the run
    counts as completed, so the run's other steps do nothing.  A restore that fails leaves the run
    failed and the host ``restore_failed`` (the lock stays).  Returns ``(host, changed)``.
    A host without the run's state is refused, unless ``missing`` is ``skip`` (an abort across a whole
    inventory, some of which the run never reached): then it is aborted with nothing to put back, and
    nothing of the run is recorded on it (no lock, run state or audit event).
    """
    warn = warn or (lambda message: None)
    state = _state_to_resume(run, 'abort', missing_ok=missing == 'skip')
    why = 'Aborted by the operator%s' % ((': ' + reason.strip()) if (reason or '').strip() else '')
    failure = {'phase': 'abort', 'task': '', 'message': why, 'stopped_by_fleet': False, 'failed_hosts': []}
    if state is None:
        restored = dict(no_restore(run.checkpoint), message='Run %s never began on this host (no run state in %s), '
                        'so nothing needed putting back.' % (run.run_id, run.state_dir))
        return run.new_host({'completed': list(phases), 'outcome': 'aborted', 'restore': restored, 'failure': failure,
                             'lock_held': False, 'never_began': True, 'held': [], 'pause_after': ''}), False
    host, changed = begin(run, {}, check=check, warn=warn, action='abort')
    if 'checkpoint' not in state['completed_phases'] or not run.checkpoint:
        restored = dict(no_restore(run.checkpoint),
                        message='The run took no checkpoint on this host, so nothing needed putting back.')
    elif check:
        restored = dict(no_restore(run.checkpoint), message='Checkpoint %s would be restored.' % run.checkpoint)
    else:
        restored = restore_checkpoint(run, apply_command, run_command, warn)
    ok = restore_ok(restored)
    host.update(completed=list(phases), outcome='aborted' if ok else 'restore_failed', restore=restored,
                failure=failure)
    attempt = int(host['attempt'])
    steps = []
    if not check:
        if ok:
            steps.append(('recording the abort in the run state', lambda: _state.phase_done(
                run.state_dir, run.run_id, 'abort', artifacts={
                    'attempt': attempt, 'reason': reason, 'restored': restored['restored'],
                    'verified': restored['verified']})))
        else:
            steps.append(('recording the failed abort in the run state', lambda: _state.fail(
                run.state_dir, run.run_id, 'abort: ' + restored['message'], phase='abort')))
    if restored['attempted']:
        steps.append(restore_audit_step(run, restored, check))
    steps.append(('recording the abort in the audit log', lambda: run.audit(
        'run_aborted', level='warning' if ok else 'critical', check=check, detail={
            'attempt': attempt, 'reason': reason, 'checkpoint': run.checkpoint, 'restored': restored['restored'],
            'verified': restored['verified'], 'message': restored['message']})))
    _run_steps(steps, warn)
    return host, changed or restored['changed']


def _release_after_failed_begin(run, path, check):
    try:
        _lock.release(path, run.run_id, audit_log=run.audit_log, check=check)
    except (_lock.LockError, OSError) as exc:
        return 'Releasing the rollback lock %s again failed too (%s); release it with lastgood.rollback.lock.' % (
            path, exc)
    return 'The rollback lock this run took (%s) was released again.' % path


def resume_message(host):
    skipping = ', '.join(host['completed']) if host['completed'] else 'nothing'
    return 'Resuming run %s (attempt %s): skipping %s.' % (host['run_id'], host['attempt'], skipping)


def record_phase(run, host, phase, artifacts, check=False):
    """Record ``phase`` as done (run state and ``run_phase_done``) unless an earlier attempt did, or it is held for a
    later job (``host['held']``, see begin); returns changed."""
    if 'attempt' not in host:
        raise RunError('phase %s cannot be recorded on a run that has not begun on this host (run begin first)'
                       % phase)
    if phase in host.get('completed', []) or phase in host.get('held', []):
        return False
    attempt = int(host['attempt'])
    try:
        if not check:
            # in check mode a new run has no state to record into (begin wrote none)
            _state.phase_done(run.state_dir, run.run_id, phase, artifacts=dict(artifacts, attempt=attempt),
                              audit_log=run.audit_log)
        run.audit('run_phase_done', check=check, detail={'phase': phase, 'attempt': attempt, 'artifacts': artifacts})
    except (_state.StateError, _audit.AuditError, OSError) as exc:
        raise RunError('recording phase %s of run %s failed: %s' % (phase, run.run_id, exc),
                       getattr(exc, 'quarantined', None))
    return True


def no_restore(checkpoint):
    return {'attempted': False, 'restored': False, 'verified': False, 'reapplied': None, 'checkpoint': checkpoint,
            'changed': False, 'drift': [], 'message': NO_CHECKPOINT_MESSAGE}


def rescue(run, host, failure, passed, apply_command, restore_on_failure, run_command, check=False, warn=None):
    """Put the checkpoint back when the host got past it, then record the failure; returns ``(host, changed)``.

    ``failure`` is ``{phase, task, message, stopped_by_fleet, failed_hosts}``; ``passed`` the phases
    this host got through; ``run_command(argv) -> (rc, stdout, stderr)`` runs the apply step.
    """
    warn = warn or (lambda message: None)
    host = run.new_host(host)
    host['outcome'] = 'failed'
    host['failure'] = failure
    restored = no_restore(run.checkpoint)
    if restore_on_failure and run.checkpoint and 'checkpoint' in passed and not check:
        restored = restore_checkpoint(run, apply_command, run_command, warn)
    host['restore'] = restored
    # the host is in no known state when the checkpoint is not back, or is but the application did not load it
    if not restore_ok(restored):
        host['outcome'] = 'restore_failed'
    message = failure['message'].strip()
    steps = []
    if restored['attempted'] and 'attempt' in host:
        # a later attempt redoes every phase this restore undid (see completed_phases)
        steps.append(('recording the restore in the run state', lambda: _state.phase_done(
            run.state_dir, run.run_id, 'rescue', audit_log=run.audit_log, artifacts={
                'attempt': int(host['attempt']), 'checkpoint': run.checkpoint,
                'restored': restored['restored'], 'verified': restored['verified']})))
    if not check and not failure.get('not_begun'):
        # in check mode a new run has no state, and nothing ran that could have failed for real; a run refused
        # because it never began here gets none either (a later continue would otherwise find one and start it)
        steps.append(('recording the failure in the run state', lambda: _state.fail(
            run.state_dir, run.run_id, message or 'failed in %s' % failure['phase'], phase=failure['phase'],
            audit_log=run.audit_log)))
    steps.append(('recording the failure in the audit log', lambda: run.audit('run_failed', level='error', check=check, detail={
        'phase': failure['phase'], 'task': failure['task'], 'message': message,
        'stopped_by_fleet': failure['stopped_by_fleet'], 'failed_hosts': failure['failed_hosts']})))
    if restored['attempted']:
        steps.append(restore_audit_step(run, restored, check))
    _run_steps(steps, warn)
    return host, True


def restore_ok(restored):
    """Whether the host is in a known state after ``restored``: not attempted, or back, verified and loaded."""
    return not restored['attempted'] or bool(restored['verified'] and restored['reapplied'] is not False)


def restore_audit_step(run, restored, check):
    """The step recording ``run_checkpoint_restored`` (for _run_steps)."""
    return ('recording the restore in the audit log', lambda: run.audit(
        'run_checkpoint_restored', level='warning' if restored['verified'] else 'critical', check=check, detail={
            'checkpoint': run.checkpoint, 'restored': restored['restored'], 'verified': restored['verified'],
            'reapplied': restored['reapplied'], 'message': restored['message']}))


def _run_steps(steps, warn):
    for what, step in steps:
        try:
            step()
        except (_state.StateError, _audit.AuditError, _lock.LockError, OSError) as exc:
            warn('%s failed: %s' % (what, exc))


def restore_checkpoint(run, apply_command, run_command, warn):
    """Restore the run's checkpoint (verified after the swap), compare the live paths with it, reapply."""
    # The store and the restore engine are imported by the steps that use them: every step of a run
    # imports this file, and compiling them costs a tenth of a second on each (docs/performance.md).
    from ._manifest import ManifestError
    from ._restore import RestoreError, restore
    from ._store import Store, StoreError
    try:
        store = Store(run.backup_root, run.set_name)
        result = restore(store, ref=run.checkpoint, paths=unescape_names(run.checkpoint_paths) or None,
                         verify_after=True)
        live = store.drift(store.resolve(run.checkpoint)['id'])
    except (RestoreError, StoreError, ManifestError) as exc:
        return _restore_failed(run.checkpoint, str(exc))
    except OSError as exc:
        return _restore_failed(run.checkpoint, 'unexpected I/O error in the backup store %s (set %s): %s'
                               % (run.backup_root, run.set_name, exc))
    for warning in result.get('warnings', []):
        warn(warning)
    drift = scoped_drift(live['mismatches'], run.checkpoint_paths)
    reapplied, reapply_message = None, ''
    if apply_command and result['changed']:
        rc, _out, err = run_command(apply_command)
        reapplied = rc == 0
        reapply_message = reapply_text(apply_command, rc, err)
    if drift:
        message = 'Checkpoint %s restored, but %d path(s) still differ from it: %s.' % (
            run.checkpoint, len(drift), ', '.join(drift[:DRIFT_SHOWN]))
    else:
        message = 'Checkpoint %s restored and verified: the live paths match it.' % run.checkpoint
    return {'attempted': True, 'restored': True, 'verified': not drift, 'reapplied': reapplied,
            'checkpoint': run.checkpoint, 'changed': bool(result['changed']), 'drift': drift,
            'message': ('%s %s' % (message, reapply_message)).strip()}


def _restore_failed(checkpoint, why):
    return {'attempted': True, 'restored': False, 'verified': False, 'reapplied': None, 'checkpoint': checkpoint,
            'changed': False, 'drift': [], 'message': 'Restoring checkpoint %s failed: %s' % (checkpoint, why)}


def scoped_drift(mismatches, paths):
    """The paths of ``mismatches`` at or below one of ``paths`` (every one when ``paths`` is empty)."""
    if not paths:
        return [item['path'] for item in mismatches]
    scope = re.compile('^(%s)(/|$)' % '|'.join(re.escape(path) for path in paths))
    return [item['path'] for item in mismatches if scope.match(item['path'])]


def reapply_text(command, rc, stderr):
    """What the operator reads about making the application load the checkpoint again."""
    shown = ' '.join(command)
    if rc == 0:
        return 'The application loaded it again (%s).' % shown
    stderr = (stderr or '').strip()
    return ('Making the application load it again failed (%s exited %s%s): it may still run what the failed run '
            'left; restart it by hand.' % (shown, rc, (': ' + truncate(stderr, STDERR_SHOWN)) if stderr else ''))


def truncate(text, length, end='...', leeway=5):
    """Jinja's ``truncate`` filter (word boundary, ``end`` appended), which the run's messages used."""
    if len(text) <= length + leeway:
        return text
    return text[:length - len(end)].rsplit(' ', 1)[0] + end


def checkpoint(run, host, paths, excludes, mark_lastgood, check=False, warn=None, keep_runs=None):
    """Take the run's checkpoint and record the ``checkpoint`` phase in one step; returns ``(host, changed, result)``.

    ``result`` is the backup's result, None when an earlier attempt took the checkpoint (the phase is kept
    over restores: a resumed run never takes it again).  The store verifies the staged copy against its
    manifest before it publishes the backup, so a checkpoint that exists is a verified one.
    ``keep_runs``: then release (and remove) the checkpoints of earlier runs that succeeded and have
    ``keep_runs`` newer runs (the store's retention); ``result`` lists them as ``released``/``removed``.
    A retention that fails is a warning: the run's own checkpoint is taken.
    """
    warn = warn or (lambda message: None)
    host = run.new_host(host)
    if 'checkpoint' in host.get('completed', []):
        return host, False, None
    if not run.checkpoint:
        raise RunError('the run has no checkpoint name (checkpoint) to take')
    from ._manifest import ManifestError
    from ._store import Store, StoreError
    store = Store(run.backup_root, run.set_name)
    try:
        if not check:
            # before anything else: settle an interrupted restore's journal and remove leftovers
            store.recover()
        result = store.create(unescape_names(paths), name=run.checkpoint, excludes=excludes,
                              mark_lastgood=mark_lastgood, check_mode=check)
    except (StoreError, ManifestError, OSError) as exc:
        raise RunError('taking checkpoint %s failed: %s' % (run.checkpoint, exc))
    for warning in result.pop('warnings', []):
        warn(warning)
    for path in result.get('missing', []):
        warn('%s does not exist; the checkpoint records it as absent' % path)
    result['released'], result['removed'] = [], []
    if keep_runs:
        try:
            result['removed'] = store.retention(keep_runs=keep_runs, state_dir=run.state_dir, check_mode=check)
        except (StoreError, ManifestError, OSError) as exc:
            warn('checkpoint %s was taken, but releasing the checkpoints of earlier runs failed: %s'
                 % (run.checkpoint, exc))
        result['released'] = list(store.released)
    record_phase(run, host, 'checkpoint', {'checkpoint': run.checkpoint, 'lastgood': bool(mark_lastgood)},
                 check=check)
    return host, True, result


def end(run, host, check=False, warn=None, last_phase=None, artifacts=None):
    """Audit ``run_end``, finish the run state, release the lock, read this run's audit events; returns ``(host, changed)``.

    The run ends on each host before the fleet's outcome is summed up, so ``run_end`` records the
    host's outcome as ``fleet_outcome`` too (the key the event has always had).  A run this job pauses
    (``host['pause_after']``, see begin) that succeeded so far is not ended: ``run_paused`` is audited, the
    outcome is ``paused``, the run state stays running and the lock held, for the job that continues it.
    A host an abort found the run never began on (``never_began``) gets nothing recorded.
    """
    warn = warn or (lambda message: None)
    host = run.new_host(host)
    outcome = host.get('outcome') or 'success'
    host['outcome'] = outcome
    if last_phase and outcome == 'success' and 'attempt' in host:
        # the run's last phase, recorded here so that it costs no step of its own; a failure to record it
        # fails the step (the phase would be done again by a resumed run, nothing worse)
        record_phase(run, host, last_phase, artifacts or {}, check=check)
    paused = outcome == 'success' and bool(host.get('pause_after'))
    if paused:
        host['outcome'] = outcome = PAUSED
    restored = bool((host.get('restore') or {}).get('restored', False))
    if paused:
        steps = [('recording the pause in the audit log', lambda: run.audit('run_paused', level='notice', check=check, detail={
            'outcome': outcome, 'after': host['pause_after'], 'next': list(host.get('held') or [])}))]
    elif host.get('never_began'):
        steps = []
    else:
        steps = [('recording the end of the run in the audit log', lambda: run.audit(
            'run_end', level='info' if outcome in CLOSED_OUTCOMES else 'error', check=check, detail={
                'outcome': outcome, 'fleet_outcome': outcome, 'restored': restored}))]
    if outcome in CLOSED_OUTCOMES and not check and not host.get('never_began'):
        steps.append(('marking the run finished',
                      lambda: _state.finish(run.state_dir, run.run_id, audit_log=run.audit_log)))
    _run_steps(steps, warn)
    # A host whose checkpoint could not be put back is in no known state: the lock stays, so no other
    # run starts on it before someone has looked.  A rerun with the same run_id takes it.  A paused run
    # keeps its lock until the job that continues it ends it.
    host['lock_released'] = False
    if host.get('lock_held') and outcome not in ('restore_failed', PAUSED):
        try:
            _lock.release(host.get('lock_file') or run.lock_file(), run.run_id, audit_log=run.audit_log, check=check)
            host['lock_released'] = True
            host['lock_held'] = False
        except (_lock.LockError, RunError, OSError) as exc:
            warn('releasing the rollback lock failed: %s' % exc)
    host['events'], host['audit'] = run_events(run.audit_log, run.run_id, warn)
    return host, True


def run_events(audit_log, run_id, warn):
    """``(events, audit)``: this run's events in the audit log and whether its hash chain holds."""
    try:
        events = _audit.query(audit_log, run_id=run_id)
        chain = _audit.verify(audit_log)
    except (_audit.AuditError, OSError) as exc:
        warn('reading the audit log %s failed: %s' % (audit_log, exc))
        return [], {'chain_ok': False, 'lines': 0, 'first_broken': None, 'events': 0, 'quarantined': []}
    return events, {'chain_ok': chain['ok'], 'lines': chain['lines'], 'first_broken': chain['first_broken'],
                    'events': len(events), 'quarantined': chain['quarantined']}


def write_report(report_dir, run_id, documents, check=False):
    """Write ``documents`` (name -> text) into ``<report_dir>/<run_id>/``; returns ``(directory, changed names)``."""
    _state.state_path(report_dir, run_id)  # the run id names a directory: refuse one that is not a valid id
    for name in documents:
        if name in ('', '.', '..') or '/' in name:
            raise RunError('report document name %r is not a plain file name' % name)
    directory = os.path.join(report_dir, run_id)
    changed = [name for name in sorted(documents) if _differs(os.path.join(directory, name), documents[name])]
    if check:
        return directory, changed
    makedirs_durable(directory, mode=REPORT_DIR_MODE)
    if os.stat(directory).st_mode & 0o7777 != REPORT_DIR_MODE:
        os.chmod(directory, REPORT_DIR_MODE)
    for name in sorted(documents):
        path = os.path.join(directory, name)
        if name in changed:
            atomic_write_text(path, documents[name], mode=REPORT_FILE_MODE)
        elif os.stat(path).st_mode & 0o7777 != REPORT_FILE_MODE:
            os.chmod(path, REPORT_FILE_MODE)
            changed.append(name)
    return directory, changed


def _differs(path, text):
    try:
        return read_bytes(path) != text.encode('utf-8')
    except FileNotFoundError:
        return True
