"""The fleet gate (lastgood.rollback.fleet_gate) in real plays: several local hosts and one unreachable.

Each play runs a block in which h2 may fail (its rescue follows) and h4 is unreachable (ssh to a
closed port), takes gates with run_once, and saves what every host sees of them for the test.
"""

import os

import pytest

from lib.fleet_play import ANSIBLE_PLAYBOOK, play as fleet_play, saved

pytestmark = pytest.mark.skipif(not os.access(ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

PLAY = '''
- name: Take fleet gates while h2 fails and h4 is unreachable
  hosts: all
  gather_facts: false
  tasks:
    - name: Run the phases
      block:
        - name: Reach every host
          ansible.builtin.ping:

        - name: Pass the first gate
          lastgood.rollback.fleet_gate:
            phase: first
            max_fail_percentage: "{{ max_fail | default(0) }}"
            run_id: "{{ given_run_id | default('gate-run') }}"
          run_once: true
          register: first_gate

        - name: Fail on h2
          ansible.builtin.fail:
            msg: h2 fails in the second phase
          when: inventory_hostname in fail_on | default(['h2'])

        - name: Pass the second gate
          lastgood.rollback.fleet_gate:
            phase: second
            max_fail_percentage: "{{ max_fail | default(0) }}"
            required_hosts: "{{ required | default([]) }}"
            run_id: "{{ given_run_id | default('gate-run') }}"
          run_once: true
      rescue:
        - name: Note the rescue
          ansible.builtin.set_fact:
            rescued: true

    - name: Save what each host sees
      ansible.builtin.copy:
        content: "{{ {'gates': lastgood_gates, 'gate': lastgood_gate} | to_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0600"
'''


def play(tmp_path, **variables):
    run = fleet_play(tmp_path, PLAY, variables)[0]
    return run, dict((host, saved(tmp_path, host)) for host in ('h1', 'h2', 'h3') if saved(tmp_path, host))


def test_unreachable_and_rescued_hosts_lag_and_close_a_gate_that_allows_no_failure(tmp_path):
    run, seen = play(tmp_path)
    assert sorted(seen) == ['h1', 'h2', 'h3'], run.stdout + run.stderr
    first, second = seen['h1']['gates']['first'], seen['h1']['gates']['second']
    assert first['population'] == ['h1', 'h2', 'h3', 'h4']
    assert first['lagging'] == ['h4'] and first['closed'] and first['stop'] == ['h1', 'h2', 'h3']
    assert second['lagging'] == ['h2', 'h4'] and second['closed'] and second['stop'] == ['h1', 'h3']
    assert '2 of 4 hosts failed or became unreachable during second (h2, h4)' in second['message']
    assert all(host['gates'] == seen['h1']['gates'] and host['gate'] == second for host in seen.values())
    assert list(seen['h1']['gates']) == ['first', 'second']


def test_a_gate_allowing_half_the_fleet_stays_open_with_two_of_four_lagging(tmp_path):
    run, seen = play(tmp_path, max_fail=50)
    gates = seen['h1']['gates']
    assert not gates['first']['closed'] and gates['first']['stop'] == []
    assert gates['second']['lagging'] == ['h2', 'h4']
    assert not gates['second']['closed'] and gates['second']['stop'] == [], run.stdout


def test_a_lagging_required_host_stops_the_others_even_when_the_share_allows_it(tmp_path):
    run, seen = play(tmp_path, max_fail=50, required=['h2'])
    second = seen['h1']['gates']['second']
    assert not second['closed'] and second['stop'] == ['h1', 'h3'], run.stdout
    assert 'required host(s) h2 did not pass' in second['message']


def test_every_gate_names_the_given_run(tmp_path):
    run, seen = play(tmp_path, given_run_id='gate-run-1', fail_on=[])
    for host in seen.values():
        assert set(host['gates']) == {'first', 'second'}, run.stdout
        assert {gate['run_id'] for gate in host['gates'].values()} == {'gate-run-1'}
    assert seen['h2']['gates']['second']['lagging'] == ['h4']


def test_a_gate_without_a_run_id_fails_and_says_so(tmp_path):
    run, seen = play(tmp_path, given_run_id='', fail_on=[])
    assert 'fleet_gate needs the run id' in run.stdout, run.stdout
