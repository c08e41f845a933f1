"""The fleet gate and the fleet outcome (plugin_utils/_fleet.py), on plain data."""

import datetime
import re

import pytest

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _fleet

HOSTS = ['web1', 'web2', 'web3', 'web4']
PHASES = ['preflight', 'start', 'checkpoint', 'level2_config', 'verify']


def gates_through(*entries):
    gates = {}
    for entry in entries:
        gates = _fleet.add_gate(gates, entry)
    return gates


def test_new_run_id_is_utc_time_and_six_hex_digits():
    moment = datetime.datetime(2026, 11, 21, 23, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert _fleet.new_run_id(moment, 'abc123') == '20261121T211500Z-abc123'
    assert re.match(r'^\d{8}T\d{6}Z-[0-9a-f]{6}$', _fleet.new_run_id())


def test_lagging_hosts_are_the_unreachable_and_the_failed_in_population_order():
    assert _fleet.lagging_hosts(HOSTS, ['web1', 'web2', 'web4'], ['web4']) == ['web3', 'web4']


def test_gate_with_every_host_through_is_open_and_stops_nobody():
    entry = _fleet.gate('verify', HOSTS, HOSTS, [], 0, time='2026-11-21T23:15:00Z')
    assert entry == {'phase': 'verify', 'time': '2026-11-21T23:15:00Z', 'population': HOSTS, 'lagging': [],
                     'closed': False, 'stop': [], 'message': 'All 4 hosts got through verify.'}


def test_one_failed_host_closes_a_gate_that_allows_none_and_stops_every_running_host():
    entry = _fleet.gate('verify', HOSTS, HOSTS, ['web2'], 0)
    assert entry['closed'] and entry['lagging'] == ['web2']
    assert entry['stop'] == ['web1', 'web3', 'web4']
    assert entry['message'] == (
        '1 of 4 hosts failed or became unreachable during verify (web2), more than the 0 % this run allows; '
        'every host still running (web1, web3, web4) restores its checkpoint next, so the fleet is not left '
        'half changed')


@pytest.mark.parametrize('lagging, percentage, closed', [
    (1, 25, False),   # exactly the share allowed
    (2, 50, False),
    (2, 49, True),
    (1, 24, True),
    (4, 100, False),
    (0, 0, False),
])
def test_gate_closes_only_when_more_than_the_allowed_share_lags(lagging, percentage, closed):
    running = HOSTS[lagging:]
    entry = _fleet.gate('level2_config', HOSTS, running, [], percentage)
    assert entry['closed'] is closed
    assert entry['stop'] == (running if closed else [])


def test_open_gate_with_lagging_hosts_says_the_others_go_on():
    entry = _fleet.gate('level2_config', HOSTS, HOSTS, ['web4'], 50)
    assert not entry['closed'] and entry['stop'] == []
    assert entry['message'].endswith('within the 50 % this run allows; the other hosts go on.')


def test_a_lagging_required_host_stops_every_running_host_that_is_not_required():
    entry = _fleet.gate('level3_code_staging', HOSTS, HOSTS, ['web1'], 50, required_hosts=['web1', 'web2'])
    assert not entry['closed']
    assert entry['stop'] == ['web3', 'web4']
    assert 'required host(s) web1 did not pass' in entry['message']


def test_required_hosts_that_got_through_stop_nobody():
    entry = _fleet.gate('level3_code_staging', HOSTS, HOSTS, ['web4'], 50, required_hosts=['web1'])
    assert entry['stop'] == []


def test_add_gate_keeps_earlier_phases_and_does_not_change_its_input():
    first = _fleet.gate('preflight', HOSTS, HOSTS, [])
    gates = _fleet.add_gate({}, first)
    second = _fleet.add_gate(gates, _fleet.gate('start', HOSTS, HOSTS, ['web2']))
    assert list(gates) == ['preflight'] and list(second) == ['preflight', 'start']


def test_passed_phases_are_the_gated_phases_where_the_host_did_not_lag():
    gates = gates_through(_fleet.gate('preflight', HOSTS, HOSTS, []),
                          _fleet.gate('start', HOSTS, HOSTS, ['web2'], 50),
                          _fleet.gate('checkpoint', HOSTS, HOSTS, ['web2'], 50))
    assert _fleet.passed_phases(gates, 'web1', PHASES) == ['preflight', 'start', 'checkpoint']
    assert _fleet.passed_phases(gates, 'web2', PHASES) == ['preflight']
    assert _fleet.passed_phases(gates, 'web2', []) == ['preflight']
    assert _fleet.passed_phases({}, 'web1', PHASES) == []


def test_failure_place_of_a_host_the_gate_stopped_is_the_gates_phase_and_its_lagging_hosts():
    gates = gates_through(_fleet.gate('preflight', HOSTS, HOSTS, []),
                          _fleet.gate('verify', HOSTS, HOSTS, ['web2']))
    assert _fleet.failure_place(gates, 'web1', PHASES) == {
        'phase': 'verify', 'stopped_by_fleet': True, 'failed_hosts': ['web2']}
    assert _fleet.failure_place(gates, 'web2', PHASES) == {
        'phase': 'start', 'stopped_by_fleet': False, 'failed_hosts': ['web2']}


def test_failure_place_of_a_host_that_failed_before_any_gate_is_the_first_phase():
    assert _fleet.failure_place({}, 'web1', PHASES)['phase'] == 'preflight'
    assert _fleet.failure_place({}, 'web1', [])['phase'] == 'end'


def fleet_of(records, reachable=None, gates=None):
    run = {'run_id': 'r1', 'operation': 'rollback_level2', 'level': 2, 'checkpoint': 'run-r1'}
    return _fleet.fleet_summary(run, records, gates or {}, PHASES, set(HOSTS if reachable is None else reachable))


RESTORED = {'attempted': True, 'restored': True, 'verified': True, 'reapplied': None, 'checkpoint': 'run-r1',
            'changed': True, 'drift': [], 'message': 'Checkpoint run-r1 restored and verified.'}


def test_fleet_of_hosts_that_all_succeeded_is_a_success_and_runs_from_the_earliest_start_to_the_latest_end():
    records = {
        'web1': {'outcome': 'success', 'started': '2026-11-21T23:15:07Z', 'finished': '2026-11-21T23:16:00Z', 'attempt': 1},
        'web2': {'outcome': 'success', 'started': '2026-11-21T23:15:03Z', 'attempt': 1},
    }
    fleet = fleet_of(records)
    assert fleet['outcome'] == 'success' and fleet['started'] == '2026-11-21T23:15:03Z'
    assert fleet['finished'] == '2026-11-21T23:16:00Z'
    assert fleet['succeeded_hosts'] == ['web1', 'web2'] and fleet['failed_hosts'] == []
    assert fleet['hosts']['web1']['restore'] == {'attempted': False, 'restored': False, 'verified': False, 'message': ''}
    assert fleet['hosts']['web1']['failure'] is None and fleet['hosts']['web1']['stopped_by_fleet'] is False
    assert _fleet.run_stats(fleet) == {
        'run_id': 'r1', 'operation': 'rollback_level2', 'level': 2, 'outcome': 'success', 'checkpoint': 'run-r1',
        'failed_hosts': [], 'stopped_hosts': [], 'paused_hosts': [], 'restored_hosts': []}


def test_fleet_keeps_the_failed_host_apart_from_the_hosts_the_gate_stopped():
    gates = gates_through(_fleet.gate('preflight', HOSTS, HOSTS, [], time='2026-11-21T23:15:00Z'),
                          _fleet.gate('verify', HOSTS, HOSTS, ['web2'], time='2026-11-21T23:17:00Z'))
    failure = {'phase': 'verify', 'task': 'Verify', 'message': 'health failed', 'stopped_by_fleet': False,
               'failed_hosts': ['web2']}
    stopped = dict(failure, stopped_by_fleet=True, task='', message='stopped')
    records = {
        'web1': {'outcome': 'failed', 'failure': stopped, 'restore': RESTORED},
        'web2': {'outcome': 'failed', 'failure': failure, 'restore': RESTORED},
        'web3': {'outcome': 'restore_failed', 'failure': stopped, 'restore': dict(RESTORED, verified=False)},
        'web4': {'outcome': 'failed', 'failure': stopped, 'restore': dict(RESTORED, restored=False)},
    }
    fleet = fleet_of(records, gates=gates)
    assert fleet['outcome'] == 'failed'
    assert fleet['failed_hosts'] == ['web2', 'web3']
    assert fleet['stopped_hosts'] == ['web1', 'web4']
    assert fleet['restored_hosts'] == ['web1', 'web2', 'web3']
    assert fleet['hosts']['web1']['stopped_by_fleet'] is True
    assert fleet['hosts']['web1']['passed_phases'] == ['preflight', 'verify']
    assert fleet['hosts']['web1']['phase_times'] == {'preflight': '2026-11-21T23:15:00Z',
                                                     'verify': '2026-11-21T23:17:00Z'}
    assert fleet['hosts']['web2']['passed_phases'] == ['preflight']


def test_a_host_gone_without_an_outcome_is_unreachable_and_failed_in_the_first_phase_it_did_not_pass():
    gates = gates_through(_fleet.gate('preflight', HOSTS, HOSTS, []),
                          _fleet.gate('start', HOSTS, ['web1'], []))
    fleet = fleet_of({'web1': {'outcome': 'success'}, 'web2': {'started': '2026-11-21T23:15:00Z'}, 'web3': None},
                     reachable=['web1'], gates=gates)
    assert fleet['outcome'] == 'partial'
    assert fleet['unreachable_hosts'] == ['web2', 'web3'] and fleet['failed_hosts'] == ['web2', 'web3']
    assert fleet['hosts']['web2']['failure'] == {
        'phase': 'start', 'task': '', 'message': 'host unreachable or stopped before the end of the run',
        'stopped_by_fleet': False, 'failed_hosts': ['web2']}


def test_a_reachable_host_whose_run_has_not_ended_counts_as_success():
    assert fleet_of({'web1': {'started': '2026-11-21T23:15:00Z'}})['hosts']['web1']['outcome'] == 'success'


@pytest.mark.parametrize('outcomes, expected', [
    ({'a': 'success'}, 'success'),
    ({'a': 'success', 'b': 'failed'}, 'partial'),
    ({'a': 'failed', 'b': 'unreachable'}, 'failed'),
    ({}, 'success'),
    ({'a': 'aborted', 'b': 'aborted'}, 'aborted'),
    ({'a': 'aborted', 'b': 'restore_failed'}, 'partial'),
    ({'a': 'aborted', 'b': 'success'}, 'aborted'),
])
def test_classify_sums_up_the_outcome(outcomes, expected):
    hosts = dict((name, {'outcome': outcome}) for name, outcome in outcomes.items())
    assert _fleet.classify(hosts)['outcome'] == expected


def test_classify_reads_summaries_without_failure_or_restore():
    result = _fleet.classify({'a': {'outcome': 'failed', 'failure': None, 'restore': None}, 'b': {}})
    assert result['failed_hosts'] == ['a', 'b'] and result['restored_hosts'] == []


def test_stop_message_names_the_host_before_the_gates_message():
    entry = _fleet.gate('verify', HOSTS, HOSTS, ['web2'], 0)
    assert _fleet.stop_message(entry, 'web1') == 'Stopping the run on web1: ' + entry['message']


def test_run_gates_keeps_only_the_gates_of_the_run():
    gates = {'preflight': {'phase': 'preflight', 'run_id': 'now'}, 'verify': {'phase': 'verify', 'run_id': 'earlier'},
             'start': {'phase': 'start'}}
    assert _fleet.run_gates(gates, 'now') == {'preflight': {'phase': 'preflight', 'run_id': 'now'}}
    assert _fleet.run_gates(None, 'now') == {}


def test_a_phase_gated_per_stage_keeps_every_host_that_got_through_it():
    first = {'phase': 'deploy', 'run_id': 'r', 'population': ['a', 'b'], 'lagging': [], 'stop': []}
    gates = _fleet.add_gate({}, first)
    # b then fails its verification; the next stage's deploy gate counts it as lagging
    later = {'phase': 'deploy', 'run_id': 'r', 'population': ['a', 'b', 'c'], 'lagging': ['b'], 'stop': []}
    gates = _fleet.add_gate(gates, later)
    assert gates['deploy']['passed'] == ['a', 'b', 'c']
    assert _fleet.passed(gates, 'b', 'deploy') and not _fleet.passed(gates, 'd', 'deploy')
