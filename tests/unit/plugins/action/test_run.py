"""The controller's part of lastgood.rollback.run: the failure a rescue records, the gate checks, the closing words."""

import pytest

from ansible_collections.lastgood.rollback.plugins.action import run as action

PHASES = ['preflight', 'start', 'checkpoint', 'act', 'verify']


def gate(phase, lagging=(), stop=(), closed=False, message='gate message'):
    return {'phase': phase, 'time': '2026-12-07T20:00:00Z', 'population': ['web1', 'web2', 'web3'],
            'lagging': list(lagging), 'closed': closed, 'stop': list(stop), 'message': message}


OPEN = {phase: gate(phase) for phase in ('preflight', 'start', 'checkpoint')}


def test_failure_of_a_host_that_failed_itself_names_its_phase_task_and_error():
    gates = dict(OPEN, act=gate('act', lagging=['web1']))
    failure = action.failure_record(gates, 'web1', PHASES, {'name': 'Apply the config'},
                                    {'msg': 'non-zero return code', 'stderr': '  boom\n'})
    assert failure == {'phase': 'act', 'task': 'Apply the config', 'message': 'non-zero return code boom',
                       'stopped_by_fleet': False, 'failed_hosts': ['web1']}


def test_failure_of_a_host_a_closed_gate_stopped_names_the_gate_phase_and_the_lagging_hosts():
    gates = dict(OPEN, act=gate('act', lagging=['web1'], stop=['web2', 'web3'], closed=True))
    failure = action.failure_record(gates, 'web2', PHASES, {'name': 'Stop'}, {'msg': 'Stopping the run on web2: x'})
    assert failure['phase'] == 'act' and failure['stopped_by_fleet'] is True and failure['failed_hosts'] == ['web1']
    assert failure['message'] == 'Stopping the run on web2: x'


def test_failure_before_any_gate_is_in_the_first_phase():
    failure = action.failure_record({}, 'web1', PHASES, None, None)
    assert failure == {'phase': 'preflight', 'task': '', 'message': '', 'stopped_by_fleet': False,
                       'failed_hosts': ['web1']}


def test_failure_after_every_phase_is_at_the_end():
    gates = {phase: gate(phase) for phase in PHASES}
    assert action.failure_record(gates, 'web1', PHASES, {}, {'msg': 'late'})['phase'] == 'end'


def test_a_host_in_the_gate_stop_list_is_stopped_with_the_gate_message_naming_it():
    stopping = gate('act', lagging=['web1'], stop=['web2'], closed=True, message='1 of 3 hosts failed')
    assert action.stopped_by(stopping, 'web2') and not action.stopped_by(stopping, 'web3')
    assert not action.stopped_by(None, 'web2')
    assert action.stop_message(stopping, 'web2') == 'Stopping the run on web2: 1 of 3 hosts failed'


def test_the_phase_gate_is_the_phase_own_gate_not_a_later_or_earlier_one():
    gates = dict(OPEN, act=gate('act'))
    assert action.phase_gate(gates, gate('verify'), 'act') is gates['act']
    assert action.phase_gate({}, gate('act', stop=['web1']), 'act')['stop'] == ['web1']
    assert action.phase_gate(gates, gate('verify'), 'verify')['phase'] == 'verify'
    assert action.phase_gate(gates, gate('checkpoint'), 'verify') is None


HOST = {'run_id': 'r-1', 'operation': 'rollback_level2'}


def test_success_message_says_every_phase_passed_and_marks_a_dry_run():
    assert action.success_message(HOST, 'web1', False) == 'Run r-1 (rollback_level2) finished on web1: every phase passed.'
    assert action.success_message(HOST, 'web1', True) == (
        'Run r-1 (rollback_level2) finished on web1: every phase passed (dry run: nothing was changed).')


def test_failure_message_says_where_what_state_and_how_to_resume():
    host = dict(HOST, outcome='failed', lock_held=False, lock_released=True,
                failure={'phase': 'act', 'message': ' the health check failed.\n'},
                restore={'message': 'Checkpoint cp restored and verified: the live paths match it. '})
    assert action.failure_message(host, 'web1') == (
        'Run r-1 (rollback_level2) failed on web1 in phase act: the health check failed. Checkpoint cp restored and '
        'verified: the live paths match it. The rollback lock was released. Next: read the report, fix the cause, '
        'then rerun with -e lastgood_run_id=r-1 to resume the run (or -e lastgood_run_action=abort with it to put the '
        'checkpoint back and close the run).')


def test_failure_message_of_a_failed_abort_says_to_abort_again():
    host = dict(HOST, outcome='restore_failed', lock_held=True, failure={'phase': 'abort', 'message': 'Aborted'},
                restore={'message': 'Restoring checkpoint cp failed: x'})
    assert action.failure_message(host, 'web1').endswith(
        'Next: fix the cause, then abort again with -e lastgood_run_id=r-1 -e lastgood_run_action=abort.')


def test_abort_message_says_what_the_checkpoint_is_and_that_the_run_is_closed():
    host = dict(HOST, outcome='aborted', restore={'message': 'Checkpoint cp restored and verified: the live paths match it.'})
    assert action.abort_message(host, 'web1') == (
        'Run r-1 (rollback_level2) aborted on web1. Checkpoint cp restored and verified: the live paths match it. '
        'The run is closed and its lock released; start a new run when ready.')


def test_failure_message_of_a_host_whose_checkpoint_is_not_back_says_the_lock_stays():
    host = dict(HOST, outcome='restore_failed', lock_held=True, lock_released=False,
                failure={'phase': 'act', 'message': ''}, restore={'message': 'Restoring checkpoint cp failed: x'})
    message = action.failure_message(host, 'web1')
    assert message.startswith('Run r-1 (rollback_level2) failed on web1 in phase act. Restoring checkpoint cp failed: x ')
    assert 'The rollback lock stays held by this run until the host is checked.' in message


@pytest.mark.parametrize('reason, shown', [('bad value:', ': bad value'), ('two.. ', ': two.'), ('', '')])
def test_failure_message_drops_one_trailing_stop_of_the_reason(reason, shown):
    host = dict(HOST, failure={'phase': 'p', 'message': reason})
    assert action.failure_message(host, 'h').startswith('Run r-1 (rollback_level2) failed on h in phase p%s. ' % shown)


def test_pause_message_says_after_which_phase_what_is_left_and_how_to_go_on():
    host = {'run_id': 'r-1', 'operation': 'rollback_level2', 'outcome': 'paused', 'pause_after': 'checkpoint',
            'held': ['level2_config', 'verify']}
    assert action.pause_message(host, 'web1') == (
        'Run r-1 (rollback_level2) paused on web1 after phase checkpoint (left for the next job: level2_config, '
        'verify). The run stays open and holds its lock; continue it with -e lastgood_run_id=r-1 -e '
        'lastgood_run_action=continue, or put its checkpoint back and close it with -e lastgood_run_action=abort.')


def test_abort_message_of_a_host_the_run_never_reached_says_nothing_was_recorded_there():
    host = {'run_id': 'r-1', 'operation': 'rollback_level2', 'outcome': 'aborted', 'never_began': True,
            'restore': {'message': 'Run r-1 never began on this host (no run state in /x), so nothing needed putting back.'}}
    assert action.abort_message(host, 'web1').endswith('nothing needed putting back. Nothing of the run was recorded '
                                                       'on this host.')


def test_a_run_refused_where_it_never_began_tells_the_rescue_to_record_no_run_state():
    failure = action.failure_record(OPEN, 'web1', PHASES, {'name': 'Take the lock'},
                                    {'msg': 'run r-1 has no state', 'not_begun': True})
    assert failure['not_begun'] is True and failure['phase'] == 'act'
    assert 'not_begun' not in action.failure_record(OPEN, 'web1', PHASES, {'name': 'x'}, {'msg': 'other'})
