"""lastgood.rollback.run through ansible-playbook: a run of two "hosts" on this machine, each with its own files.

The fleet gates are given by the test (the fleet_gate action computes them in a real run): after
each phase a task sets ``lastgood_gates``/``lastgood_gate`` as the gate would, then the run step of
the phase records it and stops a host the gate stopped.  h1 fails in the phase ``act`` or in the
preflight when told to.
"""

import importlib.util
import json
import os
import subprocess

import pytest

from lib.local_playbook import ANSIBLE_PLAYBOOK, ROOT

pytestmark = pytest.mark.skipif(not os.access(ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

PHASES = ['preflight', 'start', 'checkpoint', 'act']
PLAY = '''
- name: A run with lastgood.rollback.run on two hosts
  hosts: all
  gather_facts: false
  module_defaults:
    lastgood.rollback.run:
      run_id: "{{ run_id }}"
      operation: rollback_test
      level: 2
      checkpoint: "run-{{ run_id }}"
      checkpoint_paths: ["{{ here }}/app"]
      phases: %(phases)s
      backup_root: "{{ here }}/store"
      set: app
      state_dir: "{{ here }}/runs"
      audit_log: "{{ here }}/audit.jsonl"
  vars:
    here: "{{ base }}/{{ inventory_hostname }}"
  tasks:
    - name: Run
      block:
        - name: Fail the preflight on the host told to
          ansible.builtin.fail:
            msg: preflight failed
          when: inventory_hostname == fail_preflight_on | default('')

        - name: Pass the preflight gate
          ansible.builtin.set_fact: &gate
            lastgood_gates: "{{ test_gates[gate_phase] }}"
            lastgood_gate: "{{ test_gates[gate_phase][gate_phase] }}"
          run_once: true
          vars: {gate_phase: preflight}

        - name: Stop here when the preflight gate stopped this host
          lastgood.rollback.run: {state: phase, phase: preflight}
          when: not begin_checks_gate | default(false)

        - name: Take the lock and start (or resume) the run
          lastgood.rollback.run:
            state: begin
            meta: {ticket: INC-1}

        - name: Pass the start gate
          ansible.builtin.set_fact: *gate
          run_once: true
          vars: {gate_phase: start}

        - name: Stop here when the start gate stopped this host
          lastgood.rollback.run: {state: phase, phase: start}

        - name: Take the checkpoint
          lastgood.rollback.backup:
            backup_root: "{{ here }}/store"
            set: app
            paths: ["{{ here }}/app"]
            name: "run-{{ run_id }}"
          when: "'checkpoint' not in lastgood_host.completed"

        - name: Pass the checkpoint gate
          ansible.builtin.set_fact: *gate
          run_once: true
          vars: {gate_phase: checkpoint}

        - name: Record the checkpoint
          lastgood.rollback.run:
            state: phase
            phase: checkpoint
            artifacts: {checkpoint: "run-{{ run_id }}"}

        - name: Change the application
          ansible.builtin.copy:
            dest: "{{ here }}/app/app.conf"
            content: "changed by {{ run_id }}\\n"
            mode: "0644"
          when: "'act' not in lastgood_host.completed"

        - name: Fail the change on the host told to
          ansible.builtin.command:
            argv: [sh, -c, "echo the change broke it >&2; exit 4"]
          when: inventory_hostname == fail_on | default('')
          changed_when: false

        # Fails while its condition is evaluated, before its arguments are templated: they read a
        # variable of the task alone, which the rescue cannot resolve.
        - name: Fail the condition on the host told to
          ansible.builtin.command:
            argv: [sh, -c, "echo {{ condition_text }}"]
          vars:
            condition_text: never run
          when: inventory_hostname == fail_condition_on | default('') and (none | length > 0)
          changed_when: false

        - name: Pass the act gate
          ansible.builtin.set_fact: *gate
          run_once: true
          vars: {gate_phase: act}

        - name: Record the change
          lastgood.rollback.run:
            state: phase
            phase: act
            artifacts: {changed: true}
      rescue:
        - name: Put the checkpoint back
          lastgood.rollback.run:
            state: rescue
            apply_command: [touch, "{{ here }}/reloaded"]
      always:
        - name: End the run
          lastgood.rollback.run:
            state: end

        - name: Write the report and say how the run ended
          lastgood.rollback.run:
            state: close
            report_dir: "{{ here }}/reports"
            fleet: "{{ test_fleet | default({}) }}"
            report_documents: "{{ omit if test_fleet is defined else {'report.json': {'outcome': lastgood_host.outcome} | to_json} }}"
          register: closed
          ignore_errors: true

        - name: Save what the run step returned for the test
          ansible.builtin.copy:
            content: "{{ {'host': lastgood_host | default(none), 'close': closed} | to_json }}"
            dest: "{{ here }}/result.json"
            mode: "0600"
          check_mode: false
''' % {'phases': json.dumps(PHASES)}


def gates(lagging_from=None, lagging=(), stop=(), closed=True):
    """``{phase: the gates so far}`` for a run in which ``lagging`` fail from ``lagging_from`` on."""
    found, sofar = {}, {}
    failing = False
    for phase in PHASES:
        failing = failing or phase == lagging_from
        sofar = dict(sofar, **{phase: {
            'phase': phase, 'time': '2026-12-07T20:00:00Z', 'population': ['h1', 'h2'],
            'lagging': list(lagging) if failing else [], 'closed': closed and failing,
            'stop': list(stop) if failing else [],
            'message': ('1 of 2 hosts failed or became unreachable during %s (h1), more than the 0 %% this run '
                        'allows; every host still running (h2) restores its checkpoint next, so the fleet is not '
                        'left half changed' % phase) if failing else 'All 2 hosts got through %s.' % phase}})
        found[phase] = sofar
    return found


class Site:
    def __init__(self, base):
        self.base = base
        (base / 'inventory.yml').write_text('all:\n  hosts: {h1: {}, h2: {}}\n  vars: {ansible_connection: local}\n')
        (base / 'play.yml').write_text(PLAY)
        for host in ('h1', 'h2'):
            (base / host / 'app').mkdir(parents=True)
            (base / host / 'app' / 'app.conf').write_text('good\n')

    def run(self, run_id, test_gates, *args, **extra):
        # Each gate names its run, as fleet_gate writes it (gates of another run do not count).
        test_gates = dict((phase, dict((name, dict(entry, run_id=run_id)) for name, entry in sofar.items()))
                          for phase, sofar in test_gates.items())
        variables = dict({'base': str(self.base), 'run_id': run_id, 'test_gates': test_gates,
                          'ansible_python_interpreter': os.path.join(ROOT, '.venv', 'bin', 'python')}, **extra)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
        for host in ('h1', 'h2'):
            if (self.base / host / 'result.json').exists():
                (self.base / host / 'result.json').unlink()
        done = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(self.base / 'inventory.yml'), '-e', json.dumps(variables),
                               str(self.base / 'play.yml')] + list(args),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        return done

    def result(self, host):
        return json.loads((self.base / host / 'result.json').read_text())

    def events(self, host, run_id):
        lines = (self.base / host / 'audit.jsonl').read_text().splitlines()
        return [event for event in map(json.loads, lines) if event['run_id'] == run_id]

    def state(self, host, run_id):
        return json.loads((self.base / host / 'runs' / (run_id + '.json')).read_text())

    def app(self, host):
        return (self.base / host / 'app' / 'app.conf').read_text()


@pytest.fixture
def site(tmp_path):
    return Site(tmp_path)


def test_a_run_that_succeeds_records_each_phase_finishes_and_releases_the_lock(site):
    done = site.run('it-ok', gates())
    assert done.returncode == 0, done.stdout + done.stderr
    for host in ('h1', 'h2'):
        result = site.result(host)
        assert result['close']['msg'] == 'Run it-ok (rollback_test) finished on %s: every phase passed.' % host
        record = result['host']
        assert record['outcome'] == 'success' and record['attempt'] == 1 and record['completed'] == []
        assert record['started'] and record['finished'] and record['lock_released'] is True
        events = site.events(host, 'it-ok')
        assert [event['event'] for event in events] == ['run_start', 'run_phase_done', 'run_phase_done', 'run_end']
        assert [event['detail']['phase'] for event in events[1:3]] == ['checkpoint', 'act']
        assert record['audit'] == {'chain_ok': True, 'lines': 4, 'first_broken': None, 'events': 4,
                                   'quarantined': []}
        assert [event['event'] for event in record['events']] == [event['event'] for event in events]
        state = site.state(host, 'it-ok')
        assert state['status'] == 'finished' and state['completed_phases'] == ['checkpoint', 'act']
        assert state['meta']['ticket'] == 'INC-1'
        assert not (site.base / host / 'store' / 'app' / '.lock').exists()
        assert json.loads((site.base / host / 'reports' / 'it-ok' / 'report.json').read_text()) == {'outcome': 'success'}
        assert site.app(host) == 'changed by it-ok\n'


def test_a_failed_host_and_the_host_the_gate_stopped_both_put_their_checkpoint_back_then_resume(site):
    done = site.run('it-fail', gates('act', lagging=['h1'], stop=['h2']), fail_on='h1')
    assert done.returncode == 0, done.stdout + done.stderr  # the close step's failures are ignored, to read them
    failed, stopped = site.result('h1'), site.result('h2')
    assert failed['host']['failure'] == {'phase': 'act', 'task': 'Fail the change on the host told to',
                                         'message': 'non-zero return code the change broke it',
                                         'stopped_by_fleet': False, 'failed_hosts': ['h1']}
    gate_message = gates('act')['act']['act']['message']
    assert stopped['host']['failure'] == {'phase': 'act', 'task': 'Record the change',
                                          'message': 'Stopping the run on h2: ' + gate_message,
                                          'stopped_by_fleet': True, 'failed_hosts': ['h1']}
    for host, result in (('h1', failed), ('h2', stopped)):
        restore = result['host']['restore']
        assert restore['attempted'] and restore['restored'] and restore['verified'] and restore['reapplied'] is True
        assert restore['message'] == ('Checkpoint run-it-fail restored and verified: the live paths match it. The '
                                      'application loaded it again (touch %s/%s/reloaded).' % (site.base, host))
        assert site.app(host) == 'good\n' and (site.base / host / 'reloaded').exists()
        assert result['host']['outcome'] == 'failed'
        assert result['close']['failed'] is True
        assert result['close']['msg'].startswith('Run it-fail (rollback_test) failed on %s in phase act: ' % host)
        assert result['close']['msg'].endswith('The rollback lock was released. Next: read the report, fix the cause, '
                                               'then rerun with -e lastgood_run_id=it-fail to resume the run (or '
                                               '-e lastgood_run_action=abort with it to put the checkpoint back and '
                                               'close the run).')
        assert site.state(host, 'it-fail')['status'] == 'failed'
        names = [event['event'] for event in site.events(host, 'it-fail')]
        assert names[-3:] == ['run_failed', 'run_checkpoint_restored', 'run_end']
    # h2 recorded act before its gate stopped it; h1 never got there
    assert site.state('h2', 'it-fail')['completed_phases'] == ['checkpoint', 'act', 'rescue']
    assert site.state('h1', 'it-fail')['completed_phases'] == ['checkpoint', 'rescue']

    again = site.run('it-fail', gates())
    assert again.returncode == 0, again.stdout + again.stderr
    for host in ('h1', 'h2'):
        record = site.result(host)['host']
        assert record['resumed'] is True and record['attempt'] == 2 and record['completed'] == ['checkpoint']
        assert record['outcome'] == 'success' and site.app(host) == 'changed by it-fail\n'
        resume = [event for event in site.events(host, 'it-fail') if event['event'] == 'run_resume']
        assert resume[0]['detail'] == {'operation': 'rollback_test', 'level': 2, 'attempt': 2,
                                       'checkpoint': 'run-it-fail', 'skipping': ['checkpoint']}
        assert site.state(host, 'it-fail')['status'] == 'finished'
    assert '[WARNING]: Resuming run it-fail (attempt 2): skipping checkpoint.' in again.stderr


def test_a_host_that_failed_in_a_condition_puts_its_checkpoint_back(site):
    done = site.run('it-cond', gates('act', lagging=['h1'], stop=['h2']), fail_on='h1', fail_condition_on='h2')
    assert done.returncode == 0, done.stdout + done.stderr  # the close step's failures are ignored, to read them
    result = site.result('h2')
    assert result['host']['failure']['task'] == 'Fail the condition on the host told to'
    assert 'has no len()' in result['host']['failure']['message']
    restore = result['host']['restore']
    assert restore['attempted'] and restore['restored'] and restore['verified'], restore
    assert site.app('h2') == 'good\n' and site.state('h2', 'it-cond')['status'] == 'failed'


def test_a_host_the_preflight_gate_stopped_never_begins(site):
    done = site.run('it-stop', gates('preflight', lagging=['h1'], stop=['h2']), begin_checks_gate=True,
                    fail_preflight_on='h1')
    assert done.returncode == 0, done.stdout + done.stderr
    stopped = site.result('h2')['host']
    assert stopped['failure']['phase'] == 'preflight' and stopped['failure']['stopped_by_fleet'] is True
    assert stopped['failure']['message'].startswith('Stopping the run on h2: 1 of 2 hosts failed')
    assert stopped['restore']['attempted'] is False and 'lock_file' not in stopped
    assert not (site.base / 'h2' / 'store').exists()
    assert [event['event'] for event in site.events('h2', 'it-stop')] == ['run_failed', 'run_end']
    assert site.state('h2', 'it-stop')['status'] == 'failed'
    assert site.result('h1')['host']['failure']['message'] == 'preflight failed'


def test_a_check_mode_run_writes_nothing_and_says_it_was_a_dry_run(site):
    done = site.run('it-check', gates(), '--check')
    assert done.returncode == 0, done.stdout + done.stderr
    for host in ('h1', 'h2'):
        result = site.result(host)
        assert result['close']['msg'].endswith('every phase passed (dry run: nothing was changed).')
        assert sorted(os.listdir(site.base / host)) == ['app', 'result.json']


@pytest.mark.skipif(importlib.util.find_spec('ansible_collections.lastgood.rollback.plugins.plugin_utils._report') is None,
                    reason='the host report helper (plugin_utils/_report.py, fleet_report) is not on this branch')
def test_close_without_documents_renders_the_host_report_from_the_fleet_summary(site):
    fleet = {'run_id': 'it-doc', 'operation': 'rollback_test', 'level': 2, 'checkpoint': 'run-it-doc',
             'outcome': 'success', 'started': '2026-12-07T20:00:00Z', 'succeeded_hosts': ['h1', 'h2'],
             'failed_hosts': [], 'stopped_hosts': [], 'unreachable_hosts': [], 'restored_hosts': [],
             'hosts': dict((host, {'outcome': 'success', 'passed_phases': PHASES, 'phase_times': {}, 'attempt': 1,
                                   'failure': None, 'restore': {}, 'stopped_by_fleet': False}) for host in ('h1', 'h2'))}
    done = site.run('it-doc', gates(), test_fleet=fleet)
    assert done.returncode == 0, done.stdout + done.stderr
    for host in ('h1', 'h2'):
        report = json.loads((site.base / host / 'reports' / 'it-doc' / 'report.json').read_text())
        assert report['run']['run_id'] == 'it-doc' and report['host']['host'] == host
        assert [event['event'] for event in report['events']][-1] == 'run_end'
        assert (site.base / host / 'reports' / 'it-doc' / 'report.md').read_text().startswith('# Run it-doc on %s' % host)
