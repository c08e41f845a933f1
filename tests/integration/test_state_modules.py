"""config_update, lock, run_state, audit_log and rollback_decide through ansible-playbook on localhost."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from lib.trees import tree_digest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')

PLAYBOOK = textwrap.dedent('''\
    - name: Exercise the state modules on localhost
      hosts: localhost
      connection: local
      gather_facts: false
      vars:
        schema:
          type: object
          required: [version]
          properties:
            version: {type: integer}
      tasks:
        - name: Turn the feature flag off in config.yaml
          lastgood.rollback.config_update:
            path: "{{ work }}/app/config.yaml"
            values:
              partyMode.enabled: "{{ flag }}"
            required_keys: [partyMode.enabled, partyMode.maxAgents]
          register: yaml_update

        - name: Raise the registry version under its schema
          lastgood.rollback.config_update:
            path: "{{ work }}/app/custom_modes.json"
            values:
              version: "{{ version }}"
            schema: "{{ schema }}"
          register: json_update

        - name: Try a change the schema forbids
          lastgood.rollback.config_update:
            path: "{{ work }}/app/custom_modes.json"
            values:
              version: four
            schema: "{{ schema }}"
          register: invalid_update
          ignore_errors: true

        - name: Take the rollback lock
          lastgood.rollback.lock:
            path: "{{ work }}/lock/.lock"
            run_id: "{{ run_id }}"
            audit_log: "{{ work }}/log/audit.jsonl"
          register: lock_acquire

        - name: Start or resume the run
          lastgood.rollback.run_state:
            state_dir: "{{ work }}/runs"
            run_id: "{{ run_id }}"
            operation: start
          register: run_start

        - name: Record the phase
          lastgood.rollback.run_state:
            state_dir: "{{ work }}/runs"
            run_id: "{{ run_id }}"
            operation: phase_done
            phase: "{{ phase }}"
            artifacts:
              config: "{{ yaml_update.path }}"
          register: run_phase

        - name: Record two sessions starting and one ending
          lastgood.rollback.audit_log:
            path: "{{ work }}/log/audit.jsonl"
            run_id: "{{ run_id }}"
            event: "{{ item.event }}"
            detail: "{{ item.detail }}"
          loop:
            - {event: session_start, detail: {session_id: s1}}
            - {event: session_start, detail: {session_id: s2}}
            - {event: session_end, detail: {session_id: s1, status: failed}}
          register: audit_append

        - name: List the sessions still running
          lastgood.rollback.audit_log:
            path: "{{ work }}/log/audit.jsonl"
            operation: active_sessions
          register: audit_sessions

        - name: Prove the audit chain
          lastgood.rollback.audit_log:
            path: "{{ work }}/log/audit.jsonl"
            operation: verify
          register: audit_verify

        - name: Decide the rollback level
          lastgood.rollback.rollback_decide:
            audit_log: "{{ work }}/log/audit.jsonl"
            conditions: [bad_configuration_deployed]
            metrics:
              error_rate: 12.5
          register: decision

        - name: Who holds the lock
          lastgood.rollback.lock:
            path: "{{ work }}/lock/.lock"
            operation: status
          register: lock_status

        - name: Release the rollback lock
          lastgood.rollback.lock:
            path: "{{ work }}/lock/.lock"
            run_id: "{{ run_id }}"
            operation: release
          register: lock_release

        - name: Hand the results to the test
          ansible.builtin.copy:
            content: "{{ results | to_nice_json }}"
            dest: "{{ results_file }}"
            mode: "0600"
          check_mode: false
          vars:
            results:
              yaml_update: "{{ yaml_update }}"
              json_update: "{{ json_update }}"
              invalid_update: "{{ invalid_update }}"
              lock_acquire: "{{ lock_acquire }}"
              lock_status: "{{ lock_status }}"
              lock_release: "{{ lock_release }}"
              run_start: "{{ run_start }}"
              run_phase: "{{ run_phase }}"
              audit_append: "{{ audit_append }}"
              audit_sessions: "{{ audit_sessions }}"
              audit_verify: "{{ audit_verify }}"
              decision: "{{ decision }}"
    ''')

CONFIG_YAML = 'partyMode:\n  enabled: true  # the flag\n  maxAgents: 4\n'
REGISTRY_JSON = '{\n  "customModes": [],\n  "version": 3\n}\n'


def _play(site, check=False, **extra):
    results = site / 'results.json'
    variables = dict({'work': str(site / 'work'), 'results_file': str(results), 'run_id': 'it-run-1',
                      'flag': False, 'version': 4, 'phase': 'checkpoint',
                      'ansible_python_interpreter': sys.executable}, **extra)
    env = dict(os.environ, ANSIBLE_LOCAL_TEMP=str(site / 'tmp-local'), ANSIBLE_REMOTE_TMP=str(site / 'tmp-remote'),
               ANSIBLE_PIPELINING='1', ANSIBLE_NOCOLOR='1')
    command = [ANSIBLE_PLAYBOOK, '-i', 'localhost,', '-c', 'local', str(site / 'playbook.yml'),
               '-e', json.dumps(variables)] + (['--check'] if check else [])
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return json.loads(results.read_text())


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The playbook applied, applied again, then run with --check and other values."""
    site = tmp_path_factory.mktemp('state_modules')
    work = site / 'work'
    (work / 'app').mkdir(parents=True)
    (work / 'app' / 'config.yaml').write_text(CONFIG_YAML)
    (work / 'app' / 'custom_modes.json').write_text(REGISTRY_JSON)
    (site / 'playbook.yml').write_text(PLAYBOOK)
    first = _play(site)
    files = {name: (work / 'app' / name).read_text() for name in ('config.yaml', 'custom_modes.json')}
    lock_left = (work / 'lock' / '.lock').exists()
    second = _play(site)
    before_check = tree_digest(str(work))
    predicted = _play(site, check=True, flag=True, version=5, phase='verify')
    return {'first': first, 'files': files, 'lock_left': lock_left, 'second': second, 'predicted': predicted,
            'check_wrote_nothing': tree_digest(str(work)) == before_check}


def test_the_modules_apply_their_changes_through_a_playbook(runs):
    first = runs['first']
    assert first['yaml_update']['changed'] and first['yaml_update']['method'] == 'line_edit'
    assert runs['files']['config.yaml'] == CONFIG_YAML.replace('true', 'false')
    assert open(first['yaml_update']['backup']).read() == CONFIG_YAML
    assert json.loads(runs['files']['custom_modes.json'])['version'] == 4
    assert first['invalid_update']['failed'] and first['invalid_update']['restored'] is None
    assert 'schema violation at version' in first['invalid_update']['msg']
    assert first['lock_acquire']['changed'] and first['lock_status']['holder']['run_id'] == 'it-run-1'
    assert first['lock_release']['changed'] and not runs['lock_left']
    assert first['run_start']['resumed'] is False and first['run_phase']['completed_phases'] == ['checkpoint']
    assert [s['session_id'] for s in first['audit_sessions']['sessions']] == ['s2']
    assert first['audit_verify']['ok'] and first['audit_verify']['lines'] == 3
    assert (first['decision']['level'], first['decision']['rule']) == (2, 'bad_configuration_deployed')
    assert first['decision']['metrics']['session_success_rate'] == 0.0 and first['decision']['audit_chain']['ok']


def test_a_second_identical_run_changes_no_file_and_resumes_the_run(runs):
    second = runs['second']
    assert not second['yaml_update']['changed'] and not second['json_update']['changed']
    assert second['yaml_update']['backup'] is None
    assert second['run_start']['resumed'] and not second['run_start']['changed'] and not second['run_phase']['changed']
    assert second['audit_verify']['ok'] and second['audit_verify']['lines'] == 6


def test_check_mode_predicts_changes_and_writes_nothing(runs):
    predicted = runs['predicted']
    assert runs['check_wrote_nothing']
    assert predicted['yaml_update']['changed'] and predicted['json_update']['changed']
    assert predicted['yaml_update']['backup'] is None
    assert predicted['lock_acquire']['changed']
    assert predicted['run_phase']['changed'] and predicted['run_phase']['completed_phases'] == ['checkpoint', 'verify']
    assert all(item['changed'] for item in predicted['audit_append']['results'])
    assert predicted['audit_verify']['lines'] == 6
