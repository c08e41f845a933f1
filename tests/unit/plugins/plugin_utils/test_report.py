"""The report (plugin_utils/_report.py): host records, the merge of plays of one run, the documents."""

import json
import os

import pytest

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _fleet, _report
from lib.golden import assert_golden

RUN = {'run_id': 'r1', 'operation': 'rollback_level2', 'level': 2, 'checkpoint': 'run-r1'}
RESTORED = {'attempted': True, 'restored': True, 'verified': True, 'changed': True, 'message': 'Checkpoint put back.'}
STOPPED = {'phase': 'verify', 'task': '', 'message': 'stopped by the fleet', 'stopped_by_fleet': True,
           'failed_hosts': ['web2']}
AUDIT = {'chain_ok': True, 'lines': 4, 'first_broken': None, 'events': 2}


def host(outcome='success', **extra):
    record = {'run_id': 'r1', 'outcome': outcome, 'started': '2026-11-21T23:15:00Z',
              'finished': '2026-11-21T23:16:40Z', 'attempt': 1, 'audit': AUDIT,
              'events': [{'ts': '2026-11-21T23:15:00.5Z', 'event': 'run_start', 'detail': {'attempt': 1}},
                         {'ts': '2026-11-21T23:16:40.1Z', 'event': 'run_end', 'detail': {'outcome': outcome}}]}
    record.update(extra)
    return record


def fleet_of(hosts, gates=None):
    return _fleet.fleet_summary(RUN, hosts, gates or {}, ['preflight', 'start', 'checkpoint', 'verify'], set(hosts))


@pytest.mark.parametrize('summary, status', [
    ({'outcome': 'success'}, 'success'),
    ({'outcome': 'failed', 'failure': dict(STOPPED, stopped_by_fleet=False), 'restore': RESTORED}, 'failed'),
    ({'outcome': 'failed', 'failure': STOPPED, 'restore': RESTORED}, 'rolled_back'),
    ({'outcome': 'failed', 'failure': STOPPED, 'restore': dict(RESTORED, changed=False)}, 'stopped'),
    ({'outcome': 'failed', 'failure': STOPPED, 'restore': {'attempted': False}}, 'stopped'),
    ({'outcome': 'restore_failed', 'failure': STOPPED, 'restore': dict(RESTORED, verified=False)}, 'restore_failed'),
    ({}, 'unknown'),
])
def test_host_status_tells_a_host_the_fleet_stopped_from_one_that_failed(summary, status):
    assert _report.host_status(summary) == status


def test_host_record_after_success_is_proven_by_the_verify_checksums():
    fleet = fleet_of({'web1': host()})
    results = {'verify': {'ok': True, 'checksums_verified': True, 'backup': 'known-good',
                          'checks': [{'name': 'health', 'ok': True}]},
               'checkpoint': {'id': 'run-r1', 'verified': True, 'files': 3, 'bytes': 120},
               'action': {'changed': True, 'host': 'web1', 'source': 'store'},
               'preflight': {'ok': True, 'checks': [{'name': 'disk_space', 'ok': False}]}}
    record = _report.host_record(fleet, 'web1', host(), results)
    assert record['state_verified'] is True and record['status'] == 'success'
    assert record['checkpoint'] == {'id': 'run-r1', 'verified': True, 'files': 3, 'bytes': 120}
    assert record['action'] == {'changed': True, 'source': 'store'}
    assert record['preflight']['failed_checks'] == [{'name': 'disk_space', 'ok': False}]
    assert record['verify']['failed_checks'] == [] and record['verify']['backup'] == 'known-good'
    assert record['audit'] == AUDIT


def test_host_record_of_a_resumed_run_says_the_checkpoint_was_verified_earlier():
    gates = {'checkpoint': _fleet.gate('checkpoint', ['web1'], ['web1'], [])}
    record = _report.host_record(fleet_of({'web1': host()}, gates), 'web1', host(), {})
    assert record['checkpoint']['verified'] == 'earlier' and record['checkpoint']['id'] == 'run-r1'
    assert record['state_verified'] is None


def test_host_record_after_a_failure_is_proven_by_the_restore():
    failed = host('failed', failure=STOPPED, restore=RESTORED)
    assert _report.host_record(fleet_of({'web1': failed}), 'web1', failed, {})['state_verified'] is True
    untouched = host('failed', failure=STOPPED)
    assert _report.host_record(fleet_of({'web1': untouched}), 'web1', untouched, {})['state_verified'] is None


def test_host_report_documents_hold_the_run_the_record_and_the_events():
    fleet = fleet_of({'web1': host('failed', failure=STOPPED, restore=RESTORED)})
    documents = _report.host_report_documents(fleet, 'web1', host('failed', failure=STOPPED, restore=RESTORED))
    data = json.loads(documents['report.json'])
    assert 'hosts' not in data['run'] and data['run']['outcome'] == 'failed'
    assert data['host']['status'] == 'rolled_back'
    assert [event['host'] for event in data['events']] == ['web1', 'web1']
    # the text: golden/host_report_*.md below


def part_of(hosts, checked, run_id='r1'):
    fleet = dict(fleet_of(hosts), run_id=run_id)
    records = dict((name, _report.host_record(fleet, name, hosts[name])) for name in checked)
    events = [event for name in checked for event in _report.host_events(name, hosts[name])]
    return _report.report_slice(fleet, records, events, list(hosts))


def test_a_slice_keeps_the_summary_of_a_host_that_could_not_be_checked():
    part = part_of({'web1': host(), 'web2': None}, ['web1'])
    assert part['unchecked_hosts'] == ['web2']
    assert part['hosts']['web2']['outcome'] == 'success' and 'audit' not in part['hosts']['web2']
    assert [event['event'] for event in part['timeline']] == ['run_start', 'run_end']


def test_merge_adds_the_hosts_of_another_play_of_the_run_and_sums_the_run_up_again():
    first = _report.merge_report(None, part_of({'web1': host(), 'web2': host('failed', restore=RESTORED)},
                                               ['web1', 'web2']), 'T1')
    assert first['run']['outcome'] == 'partial' and first['run']['failed_hosts'] == ['web2']
    second = _report.merge_report(first, part_of({'web3': host()}, ['web3']), 'T2')
    assert sorted(second['hosts']) == ['web1', 'web2', 'web3']
    assert second['run']['outcome'] == 'partial'
    assert second['run']['succeeded_hosts'] == ['web1', 'web3'] and second['run']['restored_hosts'] == ['web2']
    assert len(second['timeline']) == 6 and second['generated'] == 'T2'
    replayed = _report.merge_report(second, part_of({'web2': host()}, ['web2']), 'T3')
    assert replayed['run']['outcome'] == 'success' and replayed['run']['failed_hosts'] == []
    assert len(replayed['timeline']) == 6


def test_merge_replaces_a_report_of_another_run():
    earlier = _report.merge_report(None, part_of({'web1': host()}, ['web1'], run_id='r0'), 'T1')
    report = _report.merge_report(earlier, part_of({'web3': host()}, ['web3']), 'T2')
    assert list(report['hosts']) == ['web3'] and report['run']['run_id'] == 'r1'


def test_merge_proves_only_what_was_compared_and_every_audit_chain():
    report = _report.merge_report(None, part_of({'web1': host(), 'web2': None}, ['web1']), 'T1')
    assert report['checksums_verified'] is None and report['audit_chains_verified'] is True
    assert report['unchecked_hosts'] == ['web2']
    broken = host(audit=dict(AUDIT, chain_ok=False), outcome='failed', restore=dict(RESTORED, verified=False))
    report = _report.merge_report(None, part_of({'web1': host('failed', restore=RESTORED), 'web2': broken},
                                                ['web1', 'web2']), 'T1')
    assert report['checksums_verified'] is False and report['audit_chains_verified'] is False


def test_report_result_and_stats_name_the_files_and_every_hosts_outcome():
    report = _report.merge_report(None, part_of({'web1': host(), 'web2': None}, ['web1']), 'T1')
    result = _report.report_result(report, '/srv/reports', '/var/lib/lastgood/reports')
    assert result == {'run_id': 'r1', 'outcome': 'success', 'report_md': '/srv/reports/report.md',
                      'report_json': '/srv/reports/report.json', 'postmortem': '/srv/reports/postmortem.md',
                      'host_report': '/var/lib/lastgood/reports/r1/report.md', 'checksums_verified': None,
                      'audit_chains_verified': True}
    assert _report.report_stats(result, report)['hosts'] == {'web1': 'success', 'web2': 'success'}


def test_results_are_read_from_the_hosts_variables_by_name():
    variables = {'preflight_result': {'ok': True}, 'phase': {'verify': {'ok': False}}}
    assert _report.results_from_vars(variables) == {'preflight': {'ok': True}, 'checkpoint': {}, 'action': {},
                                                    'verify': {}}
    assert _report.results_from_vars(variables, {'verify': 'phase.verify', 'action': 'phase.verify.ok.x'}) == {
        'verify': {'ok': False}, 'action': {}}


def test_a_host_the_fleet_does_not_list_is_reported_from_its_own_run():
    record = _report.host_record({'run_id': 'r1', 'hosts': {}}, 'web9', host('failed', restore=RESTORED))
    assert record['outcome'] == 'failed' and record['started'] == '2026-11-21T23:15:00Z'
    assert record['state_verified'] is True


# -- every document, whole, against golden/report_*.md (tests/lib/golden.py) -------------------------------

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
THRESHOLDS = {'session_success_rate': {'relation': '>', 'value': 95.0}, 'error_rate': {'relation': '<', 'value': 1.0},
              'security_violations': {'relation': '<=', 'value': 0.0}}


def verified(ok=True, error_rate=0.5, window=True):
    """A verify result with the application's metrics and, with ``window``, a 300 s stability window."""
    return {'ok': ok, 'checksums_verified': True, 'backup': 'known-good',
            'checks': [{'name': 'stability_window', 'ok': ok}],
            'metrics': {'session_success_rate': 99, 'error_rate': error_rate, 'security_violations': 0},
            'stability': {'ok': ok, 'seconds': 300, 'interval': 30, 'readings': 10 if ok else 1} if window else None,
            'thresholds': THRESHOLDS}


def gates_of(hosts, failed_in_verify=()):
    """Every phase's gate at fixed times: each host passes, but ``failed_in_verify`` fail verify."""
    names, reached = list(hosts), [name for name in hosts if hosts[name]]
    return dict((phase, _fleet.gate(phase, names, reached, list(failed_in_verify) if phase == 'verify' else [],
                                    time='2026-11-21T23:%s:00Z' % minute))
                for phase, minute in (('preflight', '15'), ('start', '15'), ('checkpoint', '16'), ('verify', '16')))


def documents_of(hosts, results, reason='', failed_in_verify=()):
    """The fleet report's documents and each checked host's own, for fixed hosts and results."""
    reached = set(name for name in hosts if hosts[name])
    fleet = dict(_fleet.fleet_summary(RUN, hosts, gates_of(hosts, failed_in_verify),
                                      ['preflight', 'start', 'checkpoint', 'verify'], reached), level=2)
    if reason:
        fleet['reason'] = reason
    checked = [name for name in hosts if hosts[name]]
    records = dict((name, _report.host_record(fleet, name, hosts[name], results.get(name))) for name in checked)
    events = [event for name in checked for event in _report.host_events(name, hosts[name])]
    report = _report.merge_report(None, _report.report_slice(fleet, records, events, list(hosts)),
                                  '2026-11-21T23:20:00Z')
    texts = _report.fleet_documents(report, '/var/log/app-audit.jsonl')
    own = dict((name, _report.host_report_documents(fleet, name, hosts[name], results.get(name))['report.md'])
               for name in checked)
    return report, texts, own


def test_a_stable_run_reads_exactly_as_reviewed():
    hosts = {'web1': host(), 'web2': host()}
    results = dict((name, {'verify': verified(), 'checkpoint': {'id': 'run-r1', 'verified': True},
                           'action': {'changed': True, 'source': 'store'}}) for name in hosts)
    report, texts, own = documents_of(hosts, results, reason='error_rate_high on web1 (error_rate is 25, > 10)')
    assert report['verification']['status'] == 'STABLE'
    assert_golden(os.path.join(GOLDEN, 'report_stable.md'), texts['report.md'])
    assert_golden(os.path.join(GOLDEN, 'postmortem_stable.md'), texts['postmortem.md'])
    assert_golden(os.path.join(GOLDEN, 'host_report_stable.md'), own['web1'])


def test_a_failed_run_reads_exactly_as_reviewed():
    stopped = host('failed', failure=STOPPED, restore=RESTORED)
    failed = host('failed', failure=dict(STOPPED, stopped_by_fleet=False,
                                         message='reading 1 of 10 (30 s into the stability window) failed: error rate '
                                                 '4 % (must be < 1 %)'), restore=RESTORED)
    hosts = {'web1': stopped, 'web2': failed, 'web3': None}
    results = {'web1': {'verify': verified(window=False)}, 'web2': {'verify': verified(False, error_rate=4)}}
    report, texts, own = documents_of(hosts, results, failed_in_verify=['web2'])
    assert report['verification']['status'] == 'ISSUES'
    assert json.loads(texts['report.json']) == report
    assert_golden(os.path.join(GOLDEN, 'report_failed.md'), texts['report.md'])
    assert_golden(os.path.join(GOLDEN, 'postmortem_failed.md'), texts['postmortem.md'])
    assert_golden(os.path.join(GOLDEN, 'host_report_failed.md'), own['web2'])


def test_a_run_without_a_window_or_metrics_is_monitoring():
    hosts = {'web1': host()}
    verification = _report.merge_report(None, part_of(hosts, ['web1']), 'T1')['verification']
    assert verification['status'] == 'MONITORING' and verification['hosts_read'] == []
    assert verification['metrics'] == {'session_success_rate': None, 'error_rate': None, 'security_violations': None}


def test_the_fleets_metrics_are_the_worst_of_its_hosts_judged_by_the_verify_thresholds():
    records = {'web1': {'audit': AUDIT, 'verify': verified(error_rate=0.2)},
               'web2': {'audit': AUDIT, 'verify': dict(verified(window=False), metrics={
                   'session_success_rate': 94, 'error_rate': 0.7, 'security_violations': 2})}}
    found = _report.fleet_metrics(records, 'success')
    assert found['metrics'] == {'session_success_rate': 94, 'error_rate': 0.7, 'security_violations': 2}
    assert found['outside_thresholds'] == ['session success rate 94 % (must be > 95 %)',
                                           'security violations 2 (must be <= 0)']
    assert found['status'] == 'ISSUES' and found['stability'] == {'seconds': 300, 'passed': ['web1'], 'failed': []}


# -- a run done by several jobs (the nodes of an AWX workflow, docs/awx.md) ------------------------------

def test_a_paused_run_reads_exactly_as_reviewed_and_sends_no_end_notice():
    paused = dict(host('paused'), pause_after='checkpoint', held=['level2_config', 'verify'])
    hosts = {'web1': paused, 'web2': dict(paused)}
    results = dict((name, {'checkpoint': {'id': 'run-r1', 'verified': True, 'files': 3, 'bytes': 120}}) for name in hosts)
    report, texts, _own = documents_of(hosts, results)
    assert report['run']['outcome'] == 'paused' and report['run']['paused_hosts'] == ['web1', 'web2']
    assert report['run']['failed_hosts'] == [] and report['verification']['status'] == 'MONITORING'
    # nothing has verified the state yet, and the gates of the phases held for the next job do not count
    assert all(record['state_verified'] is None for record in report['hosts'].values())
    assert all(record['passed_phases'] == ['preflight', 'start', 'checkpoint'] for record in report['hosts'].values())
    assert_golden(os.path.join(GOLDEN, 'report_paused.md'), texts['report.md'])


def test_the_job_that_ends_a_run_keeps_what_earlier_jobs_of_it_reported_for_the_phases_it_skipped():
    act = {'changed': True, 'source': 'store'}
    earlier_results = {'checkpoint': {'id': 'run-r1', 'verified': True, 'files': 3, 'bytes': 120},
                       'action': act, 'verify': verified()}
    paused = dict(host('paused'), pause_after='verify')
    earlier_fleet = fleet_of({'web1': paused, 'web2': paused})
    earlier = _report.merge_report(None, _report.report_slice(earlier_fleet, dict(
        (name, _report.host_record(earlier_fleet, name, paused, earlier_results)) for name in ('web1', 'web2')), [],
        ['web1', 'web2']), '2026-11-21T23:17:00Z')
    # the closing job (every phase completed earlier) reports web1 only: another slice has web2
    gates = {'checkpoint': _fleet.gate('checkpoint', ['web1'], ['web1'], [])}
    closing = fleet_of({'web1': host()}, gates)
    part = _report.report_slice(closing, {'web1': _report.host_record(closing, 'web1', host(), {})}, [], ['web1'])
    merged = _report.merge_report(earlier, part, '2026-11-21T23:20:00Z')

    web1 = merged['hosts']['web1']
    assert web1['outcome'] == 'success' and web1['action'] == act and web1['verify'] == earlier['hosts']['web1']['verify']
    assert web1['checkpoint']['verified'] is True and web1['state_verified'] is True
    assert merged['hosts']['web2']['outcome'] == 'paused'
    assert merged['run']['outcome'] == 'paused' and merged['run']['succeeded_hosts'] == ['web1']
    assert merged['verification']['status'] == 'STABLE'


def test_a_failure_in_a_later_job_is_reported_as_that_jobs_failure_not_carried_over():
    earlier_fleet = fleet_of({'web1': host('paused')})
    earlier = _report.merge_report(None, _report.report_slice(earlier_fleet, {'web1': _report.host_record(
        earlier_fleet, 'web1', host('paused'), {'verify': verified()})}, [], ['web1']), '2026-11-21T23:17:00Z')
    failed = host('failed', failure=dict(STOPPED, stopped_by_fleet=False), restore=RESTORED)
    later = fleet_of({'web1': failed})
    part = _report.report_slice(later, {'web1': _report.host_record(later, 'web1', failed, {
        'verify': verified(False, error_rate=4)})}, [], ['web1'])
    merged = _report.merge_report(earlier, part, '2026-11-21T23:20:00Z')
    assert merged['hosts']['web1']['verify']['ok'] is False and merged['run']['outcome'] == 'failed'
