"""The fleet outcome (lastgood.rollback.fleet_outcome) in a real play: h2 fails in its action phase and is
rescued, h4 is unreachable; with a gate that allows no failure h1 and h3 are stopped and put their
checkpoint back, with one that allows half the fleet they succeed.

Each host's lastgood_host is what lastgood.rollback.run would leave (set here with set_fact).
"""

import os

import pytest

from lib.fleet_play import ANSIBLE_PLAYBOOK, play, saved

pytestmark = pytest.mark.skipif(not os.access(ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

PLAY = '''
- name: A run in which h2 fails in its action phase and h4 is unreachable
  hosts: all
  gather_facts: false
  tasks:
    - name: Run the phases
      block:
        - name: Reach every host
          ansible.builtin.ping:

        - name: Pass the preflight gate
          lastgood.rollback.fleet_gate:
            phase: preflight
            max_fail_percentage: "{{ max_fail }}"
            run_id: outcome-1
          run_once: true

        - name: Begin the run on the host
          ansible.builtin.set_fact:
            lastgood_host:
              run_id: outcome-1
              operation: rollback_level2
              level: 2
              checkpoint: run-outcome-1
              attempt: 1
              started: "2026-11-21T23:15:0{{ inventory_hostname[-1] }}Z"

        - name: Fail on h2
          ansible.builtin.fail:
            msg: the action failed
          when: inventory_hostname == 'h2'

        - name: Pass the action's gate
          lastgood.rollback.fleet_gate:
            phase: level2_config
            max_fail_percentage: "{{ max_fail }}"
            run_id: outcome-1
          run_once: true

        - name: Stop the hosts the gate stopped
          ansible.builtin.fail:
            msg: "{{ lastgood_gate.message }}"
          when: inventory_hostname in lastgood_gate.stop
      rescue:
        - name: Record the failure as the run's rescue does
          ansible.builtin.set_fact:
            lastgood_host: >-
              {{ lastgood_host | combine({'outcome': 'failed',
                   'failure': {'phase': 'level2_config', 'task': ansible_failed_task.name,
                               'message': ansible_failed_result.msg,
                               'stopped_by_fleet': inventory_hostname in lastgood_gate.stop,
                               'failed_hosts': lastgood_gate.lagging if inventory_hostname in lastgood_gate.stop
                                               else [inventory_hostname]},
                   'restore': {'attempted': true, 'restored': true, 'verified': true, 'message': 'back'}}) }}
      always:
        - name: End the run on the host
          ansible.builtin.set_fact:
            lastgood_host: "{{ lastgood_host | combine({'finished': '2026-11-21T23:20:00Z'}) }}"

        - name: Sum up the run
          lastgood.rollback.fleet_outcome:
            phases: [preflight, start, checkpoint, level2_config, verify]
          run_once: true

        - name: Save what each host sees
          ansible.builtin.copy:
            content: "{{ lastgood_fleet | to_json }}"
            dest: "{{ out }}/{{ inventory_hostname }}.json"
            mode: "0600"
'''


@pytest.fixture(scope='module', params=[0, 50], ids=['gate-closes', 'gate-allows-half'])
def ran(request, tmp_path_factory):
    work = tmp_path_factory.mktemp('outcome')
    run, stats = play(work, PLAY, {'max_fail': request.param})
    fleets = dict((host, saved(work, host)) for host in ('h1', 'h2', 'h3'))
    assert all(fleets.values()), run.stdout + run.stderr
    return request.param, fleets, stats


def test_every_host_sees_the_same_fleet(ran):
    dummy, fleets, dummy_stats = ran
    assert fleets['h1'] == fleets['h2'] == fleets['h3']


def test_the_failed_host_the_stopped_hosts_and_the_unreachable_host_are_told_apart(ran):
    max_fail, fleets, dummy = ran
    fleet = fleets['h1']
    assert fleet['run_id'] == 'outcome-1' and fleet['operation'] == 'rollback_level2' and fleet['level'] == 2
    assert fleet['checkpoint'] == 'run-outcome-1'
    assert fleet['unreachable_hosts'] == ['h4']
    assert fleet['hosts']['h4']['failure']['phase'] == 'preflight'
    if max_fail == 0:
        assert fleet['outcome'] == 'failed'
        assert fleet['failed_hosts'] == ['h2', 'h4'] and fleet['stopped_hosts'] == ['h1', 'h3']
        assert fleet['restored_hosts'] == ['h1', 'h2', 'h3']
        assert fleet['hosts']['h1']['failure']['failed_hosts'] == ['h2', 'h4']
        assert fleet['hosts']['h1']['stopped_by_fleet'] is True
    else:
        assert fleet['outcome'] == 'partial'
        assert fleet['succeeded_hosts'] == ['h1', 'h3'] and fleet['stopped_hosts'] == []
        assert fleet['restored_hosts'] == ['h2']


def test_phases_passed_and_their_times_come_from_the_gates(ran):
    dummy, fleets, dummy_stats = ran
    hosts = fleets['h1']['hosts']
    assert hosts['h1']['passed_phases'] == ['preflight', 'level2_config']
    assert hosts['h2']['passed_phases'] == ['preflight']
    assert hosts['h4']['passed_phases'] == []
    assert set(hosts['h1']['phase_times']) == {'preflight', 'level2_config'}


def test_the_run_starts_with_its_earliest_host(ran):
    dummy, fleets, dummy_stats = ran
    assert fleets['h1']['started'] == '2026-11-21T23:15:01Z'
    assert fleets['h1']['hosts']['h3']['finished'] == '2026-11-21T23:20:00Z'


def test_lastgood_run_is_published_for_awx(ran):
    dummy, fleets, stats = ran
    fleet = fleets['h1']
    assert stats['lastgood_run'] == dict((key, fleet[key]) for key in (
        'run_id', 'operation', 'level', 'outcome', 'checkpoint', 'failed_hosts', 'stopped_hosts', 'paused_hosts',
        'restored_hosts'))
