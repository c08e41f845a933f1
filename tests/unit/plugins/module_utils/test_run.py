"""The run's bookkeeping on a host (module_utils/_run.py) on real files: lock, run state, audit, restore, report."""

import json
import re
import os
import stat

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _lock, _run, _state
from ansible_collections.lastgood.rollback.plugins.module_utils._store import Store

RUN = 'run-7'


@pytest.fixture
def work(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    (app / 'app.conf').write_text('good\n')
    (app / 'extra.conf').write_text('kept\n')
    return tmp_path


def settings(work, **changes):
    params = {
        'run_id': RUN, 'operation': 'rollback_level2', 'level': 2, 'checkpoint': 'cp-1',
        'checkpoint_paths': [str(work / 'app')], 'keep_phases': ['checkpoint'],
        'backup_root': str(work / 'store'), 'set': 'app', 'state_dir': str(work / 'runs'),
        'audit_log': str(work / 'log' / 'audit.jsonl'), 'lock_path': '', 'lock_ttl': 3600, 'user': '',
    }
    params.update(changes)
    return _run.RunSettings(params)


def events(work, name=None):
    path = str(work / 'log' / 'audit.jsonl')
    found = _audit.query(path, run_id=RUN) if os.path.exists(path) else []
    return [event for event in found if name is None or event['event'] == name]


def no_command(argv):
    raise AssertionError('no apply command expected, got %r' % (argv,))


def checkpoint(work):
    Store(str(work / 'store'), 'app').create([str(work / 'app')], name='cp-1')


def passed_checkpoint_run(work):
    """A run that began and took its checkpoint; returns its host record."""
    run = settings(work)
    host, _changed = _run.begin(run, {})
    checkpoint(work)
    _run.record_phase(run, host, 'checkpoint', {'checkpoint': 'cp-1'})
    return run, host


FAILURE = {'phase': 'act', 'task': 'Do it', 'message': 'it broke.\n', 'stopped_by_fleet': False,
           'failed_hosts': ['web1']}


# -- which phases a resumed run skips ---------------------------------------------------------

@pytest.mark.parametrize('completed, artifacts, expected', [
    (['checkpoint', 'act'], {'checkpoint': {'attempt': 1}, 'act': {'attempt': 1}}, ['checkpoint', 'act']),
    # the rescue of attempt 1 put the checkpoint back: act must run again, the checkpoint stays
    (['checkpoint', 'act', 'rescue'], {'checkpoint': {'attempt': 1}, 'act': {'attempt': 1},
                                       'rescue': {'attempt': 1}}, ['checkpoint']),
    # act completed again in attempt 2, after that restore
    (['checkpoint', 'act', 'rescue'], {'checkpoint': {'attempt': 1}, 'act': {'attempt': 2},
                                       'rescue': {'attempt': 1}}, ['checkpoint', 'act']),
    # a phase recorded without an attempt counts only when kept
    (['checkpoint', 'act'], {'checkpoint': {}, 'act': {}}, ['checkpoint']),
])
def test_completed_phases_skip_what_no_restore_undid_since(completed, artifacts, expected):
    state = {'completed_phases': completed, 'artifacts': artifacts}
    assert _run.completed_phases(state, ['checkpoint']) == expected


# -- begin --------------------------------------------------------------------------------------

def test_begin_takes_the_lock_starts_the_run_and_audits_run_start(work):
    host, changed = _run.begin(settings(work), {'ticket': 'INC-1'})
    assert changed
    assert host['attempt'] == 1 and host['resumed'] is False and host['completed'] == []
    assert host['lock_held'] is True and host['lock_file'] == str(work / 'store' / 'app' / '.lock')
    assert json.loads((work / 'store' / 'app' / '.lock').read_text())['run_id'] == RUN
    state = _state.load(str(work / 'runs'), RUN)
    assert state['meta'] == {'ticket': 'INC-1', 'operation': 'rollback_level2', 'level': 2, 'checkpoint': 'cp-1'}
    [start] = events(work)
    assert start['event'] == 'run_start' and start['level'] == 'notice'
    assert start['detail'] == {'operation': 'rollback_level2', 'level': 2, 'attempt': 1, 'checkpoint': 'cp-1',
                               'skipping': []}


def test_begin_after_a_restored_failure_resumes_and_skips_only_the_checkpoint(work):
    run, host = passed_checkpoint_run(work)
    _run.record_phase(run, host, 'act', {'changed': True})
    _run.rescue(run, host, FAILURE, ['preflight', 'start', 'checkpoint'], [], True, no_command)
    _run.end(run, dict(host, outcome='failed'))
    resumed, _changed = _run.begin(run, {})
    assert resumed['resumed'] is True and resumed['attempt'] == 2
    assert resumed['completed'] == ['checkpoint']
    assert resumed['recorded']['act'] == {'changed': True, 'attempt': 1}
    assert events(work, 'run_resume')[0]['detail']['skipping'] == ['checkpoint']
    assert _run.resume_message(resumed) == 'Resuming run run-7 (attempt 2): skipping checkpoint.'


def test_begin_refuses_a_lock_another_run_holds_and_starts_nothing(work):
    lock = work / 'store' / 'app' / '.lock'
    _lock.acquire(str(lock), 'other-run')
    with pytest.raises(_lock.LockHeld, match='held by run other-run'):
        _run.begin(settings(work), {})
    assert _state.load(str(work / 'runs'), RUN) is None
    assert events(work) == []


def test_begin_releases_the_lock_again_when_the_run_state_is_corrupt_and_cannot_be_rebuilt(work):
    (work / 'runs').mkdir()
    (work / 'runs' / (RUN + '.json')).write_text('{not json')
    with pytest.raises(_run.RunError, match='corrupt.*could not be rebuilt.*was released again') as raised:
        _run.begin(settings(work), {})
    assert not (work / 'store' / 'app' / '.lock').exists()
    assert not (work / 'runs' / (RUN + '.json')).exists()
    [quarantined] = raised.value.quarantined
    assert quarantined in str(raised.value) and open(quarantined).read() == '{not json'


def test_begin_in_check_mode_writes_nothing(work):
    host, _changed = _run.begin(settings(work), {}, check=True)
    assert host['attempt'] == 1 and host['lock_held'] is True
    assert not (work / 'store').exists() and not (work / 'runs' / (RUN + '.json')).exists()
    assert not (work / 'log').exists()


def test_begin_refuses_a_set_name_that_is_a_path(work):
    with pytest.raises(_run.RunError, match='may hold only'):
        _run.begin(settings(work, set='../etc'), {})


# -- phase ----------------------------------------------------------------------------------------

def test_record_phase_stores_artifacts_with_the_attempt_and_audits_it(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    assert _run.record_phase(run, host, 'act', {'source': 'store'}) is True
    state = _state.load(str(work / 'runs'), RUN)
    assert state['completed_phases'] == ['act'] and state['artifacts']['act'] == {'source': 'store', 'attempt': 1}
    [done] = events(work, 'run_phase_done')
    assert done['detail'] == {'phase': 'act', 'attempt': 1, 'artifacts': {'source': 'store'}} and done['level'] == 'info'


def test_record_phase_leaves_a_phase_an_earlier_attempt_completed(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    assert _run.record_phase(run, dict(host, completed=['checkpoint']), 'checkpoint', {}) is False
    assert events(work, 'run_phase_done') == []
    assert _state.load(str(work / 'runs'), RUN)['completed_phases'] == []


def test_record_phase_needs_a_run_that_began(work):
    with pytest.raises(_run.RunError, match='has not begun'):
        _run.record_phase(settings(work), {}, 'act', {})


def test_record_phase_in_check_mode_writes_nothing(work):
    run = settings(work)
    host, _changed = _run.begin(run, {}, check=True)
    assert _run.record_phase(run, host, 'act', {}, check=True) is True
    assert not (work / 'runs' / (RUN + '.json')).exists() and events(work) == []


# -- rescue ---------------------------------------------------------------------------------------

def test_rescue_before_the_checkpoint_restores_nothing_and_records_the_failure(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    rescued, _changed = _run.rescue(run, host, FAILURE, ['preflight', 'start'], [], True, no_command)
    assert rescued['outcome'] == 'failed' and rescued['failure'] == FAILURE
    assert rescued['restore'] == _run.no_restore('cp-1')
    assert rescued['restore']['message'] == 'No checkpoint was taken yet, so nothing on this host was changed by the run.'
    state = _state.load(str(work / 'runs'), RUN)
    assert state['status'] == 'failed' and state['failed_phase'] == 'act' and state['failure_reason'] == 'it broke.'
    assert 'rescue' not in state['artifacts']
    [failed] = events(work, 'run_failed')
    assert failed['level'] == 'error'
    assert failed['detail'] == {'phase': 'act', 'task': 'Do it', 'message': 'it broke.', 'stopped_by_fleet': False,
                                'failed_hosts': ['web1']}
    assert events(work, 'run_checkpoint_restored') == []


def test_rescue_without_a_message_records_where_the_run_failed(work):
    run = settings(work)
    _run.rescue(run, {}, dict(FAILURE, message=''), [], [], True, no_command)
    assert _state.load(str(work / 'runs'), RUN)['failure_reason'] == 'failed in act'


def test_rescue_puts_the_checkpoint_back_and_reloads_the_application(work):
    run, host = passed_checkpoint_run(work)
    (work / 'app' / 'app.conf').write_text('bad\n')
    commands = []

    def reload(argv):
        commands.append(argv)
        return 0, 'reloaded', ''
    rescued, _changed = _run.rescue(run, host, FAILURE, ['preflight', 'start', 'checkpoint'], ['appctl', 'reload'],
                                    True, reload)
    assert (work / 'app' / 'app.conf').read_text() == 'good\n'
    assert commands == [['appctl', 'reload']]
    restore = rescued['restore']
    assert rescued['outcome'] == 'failed'
    assert restore == {'attempted': True, 'restored': True, 'verified': True, 'reapplied': True, 'checkpoint': 'cp-1',
                       'changed': True, 'drift': [], 'message': 'Checkpoint cp-1 restored and verified: the live paths '
                       'match it. The application loaded it again (appctl reload).'}
    state = _state.load(str(work / 'runs'), RUN)
    assert state['artifacts']['rescue'] == {'attempt': 1, 'checkpoint': 'cp-1', 'restored': True, 'verified': True}
    [restored] = events(work, 'run_checkpoint_restored')
    assert restored['level'] == 'warning'
    assert restored['detail'] == {'checkpoint': 'cp-1', 'restored': True, 'verified': True, 'reapplied': True,
                                  'message': restore['message']}


def test_rescue_runs_no_apply_command_when_the_restore_changed_nothing(work):
    run, host = passed_checkpoint_run(work)
    rescued, _changed = _run.rescue(run, host, FAILURE, ['checkpoint'], ['appctl', 'reload'], True, no_command)
    assert rescued['restore']['reapplied'] is None and rescued['restore']['changed'] is False
    assert rescued['restore']['message'] == 'Checkpoint cp-1 restored and verified: the live paths match it.'
    assert rescued['outcome'] == 'failed'


def test_rescue_counts_an_application_that_does_not_reload_as_a_failed_restore(work):
    run, host = passed_checkpoint_run(work)
    (work / 'app' / 'app.conf').write_text('bad\n')
    rescued, _changed = _run.rescue(run, host, FAILURE, ['checkpoint'], ['appctl', 'reload'], True,
                                    lambda argv: (3, '', 'no such service\n'))
    assert rescued['outcome'] == 'restore_failed'
    assert rescued['restore']['verified'] is True and rescued['restore']['reapplied'] is False
    assert rescued['restore']['message'].endswith(
        'Making the application load it again failed (appctl reload exited 3: no such service): it may still run '
        'what the failed run left; restart it by hand.')
    assert events(work, 'run_checkpoint_restored')[0]['level'] == 'warning'


def test_rescue_reports_a_checkpoint_that_cannot_be_restored(work):
    run = settings(work, checkpoint='missing')
    host, _changed = _run.begin(run, {})
    Store(str(work / 'store'), 'app').create([str(work / 'app')], name='other')
    rescued, _changed = _run.rescue(run, host, FAILURE, ['checkpoint'], ['appctl'], True, no_command)
    assert rescued['outcome'] == 'restore_failed'
    assert rescued['restore']['attempted'] is True and rescued['restore']['restored'] is False
    assert rescued['restore']['message'].startswith('Restoring checkpoint missing failed: backup missing does not exist')
    assert events(work, 'run_checkpoint_restored')[0]['level'] == 'critical'
    assert _state.load(str(work / 'runs'), RUN)['artifacts']['rescue']['restored'] is False


def test_rescue_names_drift_only_under_the_checkpoint_paths(work):
    assert _run.scoped_drift([{'path': '/srv/app/a'}, {'path': '/srv/application'}, {'path': '/srv/app'},
                              {'path': '/etc/x'}], ['/srv/app']) == ['/srv/app/a', '/srv/app']
    assert _run.scoped_drift([{'path': '/etc/x'}], []) == ['/etc/x']


@pytest.mark.parametrize('restore_on_failure, passed, check', [
    (False, ['checkpoint'], False), (True, ['start'], False), (True, ['checkpoint'], True)])
def test_rescue_leaves_the_checkpoint_alone_when_it_must_not_restore(work, restore_on_failure, passed, check):
    run, host = passed_checkpoint_run(work)
    (work / 'app' / 'app.conf').write_text('bad\n')
    rescued, _changed = _run.rescue(run, host, FAILURE, passed, [], restore_on_failure, no_command, check=check)
    assert rescued['restore']['attempted'] is False and rescued['outcome'] == 'failed'
    assert (work / 'app' / 'app.conf').read_text() == 'bad\n'
    assert _state.load(str(work / 'runs'), RUN)['status'] == ('running' if check else 'failed')


def test_rescue_warns_instead_of_failing_when_it_cannot_record(work):
    run = settings(work, audit_log=str(work / 'app' / 'app.conf' / 'audit.jsonl'))
    warnings = []
    rescued, _changed = _run.rescue(run, {}, FAILURE, [], [], True, no_command, warn=warnings.append)
    assert rescued['outcome'] == 'failed'
    assert len(warnings) == 1 and warnings[0].startswith('recording the failure in the audit log failed')


def test_reapply_text_truncates_stderr_like_the_jinja_filter():
    text = _run.reapply_text(['appctl'], 1, ' '.join(['word'] * 100))
    shown = text.split('exited 1: ')[1].split('): it may')[0]
    assert len(shown) <= 300 and shown.endswith('word...')
    assert _run.truncate('x' * 305, 300) == 'x' * 305


# -- end ------------------------------------------------------------------------------------------

def test_end_of_a_successful_run_finishes_it_releases_the_lock_and_reads_its_events(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    ended, _changed = _run.end(run, host)
    assert ended['outcome'] == 'success' and ended['lock_released'] is True and ended['lock_held'] is False
    assert not (work / 'store' / 'app' / '.lock').exists()
    assert _state.load(str(work / 'runs'), RUN)['status'] == 'finished'
    [end] = events(work, 'run_end')
    assert end['level'] == 'info' and end['detail'] == {'outcome': 'success', 'fleet_outcome': 'success',
                                                        'restored': False}
    assert [event['event'] for event in ended['events']] == ['run_start', 'run_end']
    assert ended['audit'] == {'chain_ok': True, 'lines': 2, 'first_broken': None, 'events': 2, 'quarantined': []}


def test_end_of_a_host_whose_checkpoint_is_not_back_keeps_the_lock(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    restore = dict(_run.no_restore('cp-1'), attempted=True)
    ended, _changed = _run.end(run, dict(host, outcome='restore_failed', restore=restore))
    assert ended['lock_released'] is False and ended['lock_held'] is True
    assert (work / 'store' / 'app' / '.lock').exists()
    assert _state.load(str(work / 'runs'), RUN)['status'] == 'running'
    [end] = events(work, 'run_end')
    assert end['level'] == 'error' and end['detail'] == {'outcome': 'restore_failed', 'fleet_outcome': 'restore_failed',
                                                         'restored': False}


def test_end_reports_a_broken_audit_chain_without_failing(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    _run.record_phase(run, host, 'act', {})
    # a rotated file is never written again: a break in it is reported, the live file goes on
    rotated = work / 'log' / 'audit.jsonl.000001'
    (work / 'log' / 'audit.jsonl').rename(rotated)
    rotated.write_text(rotated.read_text().replace('"notice"', '"info"'))
    ended, _changed = _run.end(run, host)
    assert ended['audit']['chain_ok'] is False and ended['audit']['first_broken']['line'] == 2
    assert ended['audit']['events'] == 3


def test_end_moves_a_corrupt_live_audit_log_aside_and_records_the_end_in_a_new_one(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    _run.record_phase(run, host, 'act', {})
    log = work / 'log' / 'audit.jsonl'
    edited = log.read_text().replace('"notice"', '"info"')
    log.write_text(edited)
    ended, _changed = _run.end(run, host)
    [quarantined] = ended['audit']['quarantined']
    assert ended['audit']['chain_ok'] is True and 'line 2' in quarantined['reason']
    assert open(quarantined['file']).read() == edited and os.stat(quarantined['file']).st_mode & 0o777 == 0o444
    assert [event['event'] for event in ended['events']] == ['audit_log_quarantined', 'run_end']


def test_end_in_check_mode_writes_nothing(work):
    run = settings(work)
    host, _changed = _run.begin(run, {}, check=True)
    ended, _changed = _run.end(run, host, check=True)
    assert ended['outcome'] == 'success' and ended['events'] == []
    assert not (work / 'log').exists() and not (work / 'runs' / (RUN + '.json')).exists()


# -- close: the host's report ---------------------------------------------------------------------

def test_write_report_writes_each_document_once_with_its_modes(work):
    documents = {'report.json': '{}\n', 'report.md': '# Run\n'}
    directory, changed = _run.write_report(str(work / 'reports'), RUN, documents)
    assert changed == ['report.json', 'report.md'] and directory == str(work / 'reports' / RUN)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(os.path.join(directory, 'report.md')).st_mode) == 0o640
    assert (work / 'reports' / RUN / 'report.md').read_text() == '# Run\n'
    assert _run.write_report(str(work / 'reports'), RUN, documents)[1] == []
    assert _run.write_report(str(work / 'reports'), RUN, dict(documents, **{'report.md': '# Again\n'}))[1] == ['report.md']


def test_write_report_in_check_mode_says_what_would_change_and_writes_nothing(work):
    _directory, changed = _run.write_report(str(work / 'reports'), RUN, {'report.json': '{}\n'}, check=True)
    assert changed == ['report.json'] and not (work / 'reports').exists()


@pytest.mark.parametrize('name', ['../escape', 'a/b', '..', ''])
def test_write_report_refuses_a_document_name_that_is_not_a_file_name(work, name):
    with pytest.raises(_run.RunError, match='not a plain file name'):
        _run.write_report(str(work / 'reports'), RUN, {name: 'x'})
    assert not (work / 'reports').exists()


def test_checkpoint_takes_a_verified_backup_and_records_the_phase_in_one_step(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    host, changed, taken = _run.checkpoint(run, host, [str(work / 'app')], [], False)
    assert changed and taken['id'] == 'cp-1' and taken['new_backup'] and taken['verified'] is True
    assert Store(str(work / 'store'), 'app').resolve('cp-1')['complete']
    recorded = _state.load(str(work / 'runs'), RUN)
    assert 'checkpoint' in recorded['completed_phases']
    assert recorded['artifacts']['checkpoint'] == {'checkpoint': 'cp-1', 'lastgood': False, 'attempt': 1}
    assert [event['detail']['phase'] for event in events(work, 'run_phase_done')] == ['checkpoint']


def test_checkpoint_an_earlier_attempt_took_is_not_taken_again(work):
    run = settings(work)
    host, _changed = _run.begin(run, {})
    _run.checkpoint(run, host, [str(work / 'app')], [], False)
    (work / 'app' / 'app.conf').write_text('changed by the failed attempt\n')
    host = dict(host, completed=['checkpoint'])
    host, changed, taken = _run.checkpoint(run, host, [str(work / 'app')], [], False)
    assert not changed and taken is None
    assert len(events(work, 'run_phase_done')) == 1


def test_checkpoint_in_check_mode_writes_nothing(work):
    run = settings(work)
    host, _changed = _run.begin(run, {}, check=True)
    _run.checkpoint(run, host, [str(work / 'app')], [], False, check=True)
    assert not (work / 'store').exists() and not (work / 'runs').exists() and not (work / 'log').exists()


def test_end_records_the_last_phase_only_when_the_run_did_not_fail_on_the_host(work):
    run, host = passed_checkpoint_run(work)
    host, _changed = _run.end(run, host, last_phase='verify', artifacts={'verified': True})
    recorded = _state.load(str(work / 'runs'), RUN)
    assert recorded['status'] == 'finished' and recorded['artifacts']['verify'] == {'verified': True, 'attempt': 1}
    assert [event['event'] for event in events(work)][-2:] == ['run_phase_done', 'run_end']

    failed_run = settings(work, run_id='run-8')
    failed, _changed = _run.begin(failed_run, {})
    failed['outcome'] = 'failed'
    _run.end(failed_run, failed, last_phase='verify', artifacts={'verified': False})
    assert 'verify' not in _state.load(str(work / 'runs'), 'run-8')['completed_phases']


# -- the operator's choices after a failure: skip a phase on the record, abort the run ----------

PHASES = ['preflight', 'start', 'checkpoint', 'act', 'verify']


@pytest.mark.parametrize('skip, reason, expected', [
    ([], '', []),
    (['verify', 'act'], 'CHG-7', ['act', 'verify']),
])
def test_skip_plan_keeps_run_order_of_phases_after_the_checkpoint(skip, reason, expected):
    assert _run.skip_plan(PHASES, skip, reason) == expected


@pytest.mark.parametrize('skip, reason, message', [
    (['verify'], '  ', 'skipping phase(s) verify needs a reason'),
    (['checkpoint', 'nope'], 'why', 'phase(s) checkpoint, nope cannot be skipped: only the phases after the '
                                    'checkpoint but a staging pass can (verify)'),
    (['act_staging'], 'why', 'phase(s) act_staging cannot be skipped'),
])
def test_skip_plan_refuses_a_skip_without_reason_of_a_phase_up_to_the_checkpoint_or_of_the_staging_pass(
        skip, reason, message):
    with pytest.raises(_run.RunError, match=r'^%s' % re.escape(message)):
        _run.skip_plan(PHASES, skip, reason, fixed=['act'])


def test_begin_with_skipped_phases_audits_each_and_skips_them_for_this_attempt_only(work):
    run = settings(work)
    host, _changed = _run.begin(run, {}, skip=['verify'], reason='CHG-7')
    assert host['completed'] == ['verify'] and host['skipped'] == [{'phase': 'verify', 'reason': 'CHG-7'}]
    [skipped] = events(work, 'run_phase_skipped')
    assert skipped['level'] == 'warning' and skipped['detail'] == {'phase': 'verify', 'attempt': 1, 'reason': 'CHG-7'}
    assert _state.load(str(work / 'runs'), RUN)['completed_phases'] == []


def failed_run(work):
    """A run that took its checkpoint, changed the app, failed and had its rescue put the checkpoint back."""
    run, host = passed_checkpoint_run(work)
    _run.record_phase(run, host, 'act', {})
    (work / 'app' / 'app.conf').write_text('bad\n')
    _run.rescue(run, host, FAILURE, ['checkpoint'], [], True, no_command)
    _run.end(run, dict(host, outcome='failed'))
    return run


def test_abort_puts_the_checkpoint_back_records_it_and_end_closes_the_run(work):
    run = failed_run(work)
    (work / 'app' / 'app.conf').write_text('changed by hand after the failure\n')
    commands = []

    def reload(argv):
        commands.append(argv)
        return 0, '', ''
    host, changed = _run.abort(run, PHASES, 'fix forward', ['appctl', 'reload'], reload)

    assert changed is True
    assert (work / 'app' / 'app.conf').read_text() == 'good\n' and commands == [['appctl', 'reload']]
    assert host['outcome'] == 'aborted' and host['completed'] == PHASES and host['attempt'] == 2
    assert host['failure'] == dict(host['failure'], phase='abort', message='Aborted by the operator: fix forward')
    assert host['restore'] == dict(host['restore'], attempted=True, restored=True, verified=True, reapplied=True)
    [aborted] = events(work, 'run_aborted')
    assert aborted['detail'] == dict(aborted['detail'], reason='fix forward', restored=True, verified=True)
    assert events(work, 'run_resume')[-1]['detail']['action'] == 'abort'

    ended, _changed = _run.end(run, host)

    state = _state.load(str(work / 'runs'), RUN)
    assert state['status'] == 'finished' and state['artifacts']['abort']['verified'] is True
    assert ended['lock_released'] is True and not os.path.exists(run.lock_file())
    assert events(work, 'run_end')[-1]['detail']['outcome'] == 'aborted'


def test_abort_whose_restore_fails_leaves_the_run_failed_the_lock_held_and_the_files_untouched(work):
    run = failed_run(work)
    (work / 'app' / 'app.conf').write_text('changed by hand after the failure\n')
    broken = settings(work, checkpoint='gone')

    host, _changed = _run.abort(broken, PHASES, '', [], no_command)

    assert host['outcome'] == 'restore_failed' and host['restore']['restored'] is False
    assert (work / 'app' / 'app.conf').read_text() == 'changed by hand after the failure\n'
    assert Store(str(work / 'store'), 'app').resolve('cp-1')['id'] == 'cp-1', 'the checkpoint was lost'
    ended, _changed = _run.end(broken, host)
    assert _state.load(str(work / 'runs'), RUN)['status'] == 'failed'
    assert ended['lock_released'] is False and os.path.exists(run.lock_file())
    assert events(work, 'run_aborted')[0]['level'] == 'critical'


def ended_run(work):
    _run.end(settings(work), _run.begin(settings(work), {})[0])


REFUSALS = {
    'abort': lambda work: _run.abort(settings(work), PHASES, '', [], no_command),
    'continue': lambda work: _run.begin(settings(work), {}, action='continue'),
}


@pytest.mark.parametrize('verb', sorted(REFUSALS))
@pytest.mark.parametrize('prepare, message', [
    (lambda work: None, 'run run-7 has no state in'),
    (ended_run, 'run run-7 already ended on this host'),
])
def test_abort_and_continue_refuse_a_run_without_state_or_already_ended_and_change_nothing(
        work, verb, prepare, message):
    prepare(work)
    before = events(work)
    with pytest.raises(_run.RunError, match=re.escape(message) + '.*nothing to %s' % verb):
        REFUSALS[verb](work)
    assert events(work) == before and not os.path.exists(settings(work).lock_file())
    if not before:
        # continue never starts a run: no state either
        assert _state.load(str(work / 'runs'), RUN) is None


# -- a run done by several jobs: pause after a phase, continue, abort across an inventory ---------

@pytest.mark.parametrize('pause_after, held', [
    ('', []), ('checkpoint', ['act', 'verify']), ('act', ['verify']), ('verify', []),
])
def test_hold_plan_leaves_the_phases_after_the_pause_for_the_next_job(pause_after, held):
    assert _run.hold_plan(PHASES, pause_after) == held


@pytest.mark.parametrize('pause_after, fixed', [('start', ()), ('preflight', ()), ('nope', ()), ('act', ('act',))])
def test_hold_plan_refuses_a_pause_before_the_checkpoint_unknown_or_in_a_staging_pass(pause_after, fixed):
    with pytest.raises(_run.RunError, match=r'^the run cannot pause after %s: it pauses after one of ' % pause_after):
        _run.hold_plan(PHASES, pause_after, fixed)


def test_a_paused_run_stays_open_with_its_lock_and_the_next_job_continues_and_ends_it(work):
    run = settings(work)
    host, _changed = _run.begin(run, {}, hold=_run.hold_plan(PHASES, 'checkpoint'), pause_after='checkpoint')
    assert host['held'] == ['act', 'verify'] and host['pause_after'] == 'checkpoint'
    host, _changed, taken = _run.checkpoint(run, host, [str(work / 'app')], [], False)
    assert taken['verified'] is True
    # the held phases are not recorded, whatever the job's later steps say
    assert _run.record_phase(run, host, 'act', {}) is False
    paused, _changed = _run.end(run, host, last_phase='verify')

    assert paused['outcome'] == 'paused' and paused['lock_held'] is True and paused['lock_released'] is False
    state = _state.load(str(work / 'runs'), RUN)
    assert state['status'] == 'running' and state['completed_phases'] == ['checkpoint']
    assert _lock.status(run.lock_file())['holder']['run_id'] == RUN
    [pause] = events(work, 'run_paused')
    assert pause['detail'] == {'outcome': 'paused', 'after': 'checkpoint', 'next': ['act', 'verify']}
    assert events(work, 'run_end') == []
    # another run cannot start in between: the lock is the paused run's
    with pytest.raises(_lock.LockHeld):
        _run.begin(settings(work, run_id='run-8'), {})

    host, _changed = _run.begin(run, {}, action='continue', hold=_run.hold_plan(PHASES, 'act'), pause_after='act')
    assert host['resumed'] is True and host['completed'] == ['checkpoint'] and host['held'] == ['verify']
    assert events(work, 'run_resume')[-1]['detail'] == dict(events(work, 'run_resume')[-1]['detail'],
                                                            action='continue', until='act')
    assert _run.record_phase(run, host, 'act', {'changed': True}) is True
    paused, _changed = _run.end(run, host, last_phase='verify')
    assert paused['outcome'] == 'paused'
    assert _state.load(str(work / 'runs'), RUN)['completed_phases'] == ['checkpoint', 'act']

    host, _changed = _run.begin(run, {}, action='continue')
    assert host['completed'] == ['checkpoint', 'act'] and host['held'] == [] and host['pause_after'] == ''
    ended, _changed = _run.end(run, host, last_phase='verify', artifacts={'verified': True})
    assert ended['outcome'] == 'success' and ended['lock_released'] is True
    assert not os.path.exists(run.lock_file())
    state = _state.load(str(work / 'runs'), RUN)
    assert state['status'] == 'finished' and state['completed_phases'] == ['checkpoint', 'act', 'verify']


def test_a_run_paused_after_its_last_phase_records_it_and_stays_open(work):
    run = settings(work)
    host, _changed = _run.begin(run, {}, hold=_run.hold_plan(PHASES, 'verify'), pause_after='verify')
    paused, _changed = _run.end(run, host, last_phase='verify', artifacts={'verified': True})
    assert paused['outcome'] == 'paused' and paused['held'] == []
    state = _state.load(str(work / 'runs'), RUN)
    assert state['status'] == 'running' and state['completed_phases'] == ['verify']


def test_a_run_that_fails_in_a_pausing_job_is_not_paused_its_checkpoint_goes_back(work):
    run = settings(work)
    host, _changed = _run.begin(run, {}, hold=_run.hold_plan(PHASES, 'act'), pause_after='act')
    host, _changed, _taken = _run.checkpoint(run, host, [str(work / 'app')], [], False)
    (work / 'app' / 'app.conf').write_text('bad\n')
    host, _changed = _run.rescue(run, host, FAILURE, ['checkpoint'], [], True, no_command)
    ended, _changed = _run.end(run, host)
    assert ended['outcome'] == 'failed' and ended['lock_released'] is True
    assert (work / 'app' / 'app.conf').read_text() == 'good\n'
    assert events(work, 'run_paused') == [] and _state.load(str(work / 'runs'), RUN)['status'] == 'failed'


def test_abort_across_an_inventory_counts_a_host_the_run_never_reached_as_aborted_and_writes_nothing(work):
    run = settings(work)
    host, changed = _run.abort(run, PHASES, 'a node failed', [], no_command, missing='skip')
    assert changed is False and host['outcome'] == 'aborted' and host['never_began'] is True
    assert host['completed'] == PHASES and host['held'] == [] and 'attempt' not in host
    assert 'never began on this host' in host['restore']['message'] and host['restore']['attempted'] is False
    ended, _changed = _run.end(run, host)
    assert ended['outcome'] == 'aborted' and ended['lock_released'] is False
    assert not os.path.exists(str(work / 'log')) and not os.path.exists(str(work / 'runs'))
    assert not os.path.exists(run.lock_file())


def test_abort_across_an_inventory_still_puts_back_a_paused_runs_checkpoint_and_closes_it(work):
    run = settings(work)
    host, _changed = _run.begin(run, {}, hold=_run.hold_plan(PHASES, 'act'), pause_after='act')
    host, _changed, _taken = _run.checkpoint(run, host, [str(work / 'app')], [], False)
    _run.record_phase(run, host, 'act', {})
    (work / 'app' / 'app.conf').write_text('changed by the act node\n')
    _run.end(run, host)
    host, changed = _run.abort(run, PHASES, 'a node failed', [], no_command, missing='skip')
    assert changed is True and host['outcome'] == 'aborted'
    assert (work / 'app' / 'app.conf').read_text() == 'good\n'
    ended, _changed = _run.end(run, host)
    assert ended['lock_released'] is True and _state.load(str(work / 'runs'), RUN)['status'] == 'finished'


def test_the_rescue_of_a_run_refused_where_it_never_began_records_no_run_state(work):
    run = settings(work)
    failure = dict(FAILURE, phase='start', not_begun=True)
    host, _changed = _run.rescue(run, {}, failure, [], [], True, no_command)
    assert host['outcome'] == 'failed' and host['restore']['attempted'] is False
    assert _state.load(str(work / 'runs'), RUN) is None, 'a later continue would find this state and start the run'
    host, _changed = _run.rescue(run, {}, dict(FAILURE, phase='start'), [], [], True, no_command)
    assert _state.load(str(work / 'runs'), RUN)['status'] == 'failed'
