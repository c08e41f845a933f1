"""rollback_level2 on real SSH hosts: the fleet stops together when a host fails, and resumes.

Each test starts its own hosts (host1 staging, the others production) with the demo
application, takes a known-good backup of the configuration, breaks the configuration on every
host, and runs playbooks/rollback_level2.yml against them.
"""

import json
import os
import re

import pytest

from conftest import REPO_ROOT

pytestmark = [pytest.mark.fleet, pytest.mark.root]

PLAYBOOK = os.path.join(REPO_ROOT, 'playbooks', 'rollback_level2.yml')
CONFIG = '/srv/app/config.yaml'
STORE_SET = '/var/backups/lastgood/app'
HOSTS = ('host1', 'host2', 'host3')
# Pipelining: one SSH round trip per task instead of several.
ENV = {'ANSIBLE_PIPELINING': 'True', 'ANSIBLE_NOCOLOR': '1'}

KNOWN_GOOD = '''
- name: Take the known-good backup of the configuration
  hosts: all
  gather_facts: false
  tasks:
    - name: Back up the configuration and mark it last known good
      lastgood.rollback.backup:
        paths: [/srv/app/config.yaml, /srv/app/custom_modes.json, /srv/app/app.env]
        set: app
        name: known-good
        mark_lastgood: true
'''


def read(fleet, name, path):
    with open(fleet.host(name).path(path)) as handle:
        return handle.read()


def prepare(fleet, tmp_path, hosts=HOSTS):
    """Known-good backup on every host, then a bad config (maxAgents 0) applied everywhere."""
    playbook = tmp_path / 'known_good.yml'
    playbook.write_text(KNOWN_GOOD)
    run = fleet.ansible_playbook(str(playbook), env=ENV)
    assert run.returncode == 0, run.stdout + run.stderr
    good = read(fleet, 'host1', CONFIG)
    for name in hosts:
        fleet.ssh(name, "sed -i 's/maxAgents: 4/maxAgents: 0/' %s && /srv/app/bin/appctl reload >/dev/null" % CONFIG)
    bad = read(fleet, 'host1', CONFIG)
    assert bad != good
    return good, bad


def rollback_args(tmp_path, run_id, *extra):
    return ['-e', 'lastgood_run_id=%s' % run_id, '-e', 'lastgood_controller_dir=%s' % (tmp_path / 'controller')] + list(extra)


def fleet_report(tmp_path):
    with open(str(tmp_path / 'controller' / 'report.json')) as handle:
        return json.load(handle)


def run_state(fleet, name, run_id):
    return json.loads(read(fleet, name, '/var/lib/lastgood/runs/%s.json' % run_id))


def audit_events(fleet, name, run_id):
    lines = read(fleet, name, '/var/log/lastgood/audit.jsonl').splitlines()
    return [event['event'] for event in map(json.loads, lines) if event.get('run_id') == run_id]


# Slow: tests/integration/test_level2_playbooks.py covers the automatic restore on one host in
# every run; this adds the second host stopped by the fleet gate over SSH.
@pytest.mark.slow
def test_failing_verification_on_one_host_restores_the_checkpoint_on_every_host(make_fleet, tmp_path):
    fleet = make_fleet(2, app=True)
    hosts = ('host1', 'host2')
    bad = prepare(fleet, tmp_path, hosts)[1]
    # host2's test command fails after its configuration was restored.
    failing_test = json.dumps({'lastgood_test_command': ['sh', '-c', 'test "$(hostname)" != host2']})

    run = fleet.ansible_playbook(PLAYBOOK, *rollback_args(tmp_path, 'verify-fails', '-e', failing_test), env=ENV)

    assert run.returncode != 0, run.stdout
    report = fleet_report(tmp_path)
    assert report['run']['outcome'] == 'failed'
    assert sorted(report['run']['restored_hosts']) == list(hosts)
    assert report['run']['failed_hosts'] == ['host2'] and report['run']['stopped_hosts'] == ['host1']
    failed = report['hosts']['host2']['failure']
    assert failed['phase'] == 'verify' and not failed['stopped_by_fleet']
    stopped = report['hosts']['host1']['failure']
    assert stopped['phase'] == 'verify' and stopped['stopped_by_fleet'] and stopped['failed_hosts'] == ['host2']
    for name in hosts:
        assert report['hosts'][name]['restore']['verified'] is True
        assert read(fleet, name, CONFIG) == bad, '%s is not back at its checkpoint' % name
        assert not os.path.exists(fleet.host(name).path(STORE_SET + '/.lock')), 'lock left on %s' % name
        assert run_state(fleet, name, 'verify-fails')['status'] == 'failed'
        events = audit_events(fleet, name, 'verify-fails')
        assert 'run_checkpoint_restored' in events and events[-1] == 'run_end'


def test_host_killed_mid_rollback_stops_the_fleet_and_a_rerun_with_the_same_run_id_completes(make_fleet, tmp_path):
    fleet = make_fleet(3, app=True)
    good, bad = prepare(fleet, tmp_path)
    # A monitoring window keeps the level 2 phase open after host2's configuration is restored.
    window = ['-e', 'level2_config_monitor_seconds=12', '-e', 'level2_config_monitor_interval=1']
    returncode, output = fleet.ansible_playbook_losing(
        'host2', lambda: read(fleet, 'host2', CONFIG) == good,
        PLAYBOOK, *rollback_args(tmp_path, 'kill-resume', *window), env=ENV)

    assert returncode != 0, output
    report = fleet_report(tmp_path)
    assert report['run']['outcome'] == 'failed'
    assert report['hosts']['host2']['outcome'] == 'unreachable'
    assert report['run']['unreachable_hosts'] == ['host2']
    with open(str(tmp_path / 'controller' / 'report.md')) as handle:
        assert '| host2 | unreachable |' in handle.read()
    for name in ('host1', 'host3'):
        assert report['hosts'][name]['failure']['failed_hosts'] == ['host2']
        assert report['hosts'][name]['restore']['verified'] is True
        assert read(fleet, name, CONFIG) == bad

    fleet.start('host2')
    rerun = fleet.ansible_playbook(PLAYBOOK, *rollback_args(tmp_path, 'kill-resume'), env=ENV)

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert 'Resuming run kill-resume' in rerun.stdout + rerun.stderr
    report = fleet_report(tmp_path)
    assert report['run']['outcome'] == 'success'
    for name in HOSTS:
        assert read(fleet, name, CONFIG) == good, '%s is not at the known good configuration' % name
        state = run_state(fleet, name, 'kill-resume')
        assert state['status'] == 'finished'
        assert state['artifacts']['checkpoint']['attempt'] == 1, 'the checkpoint was taken again on %s' % name
        health = fleet.ssh(name, '/srv/app/bin/appctl health', check=False)
        assert health.returncode == 0, health.stdout


RECAP = re.compile(r'^(\S+)\s*:\s*ok=(\d+)\s+changed=\d+\s+unreachable=\d+\s+failed=(\d+)\s+skipped=(\d+)\s+'
                   r'rescued=(\d+)', re.M)


def test_a_run_announces_its_start_and_end_reports_the_metrics_and_stays_within_30_tasks_per_host(
        make_fleet, tmp_path):
    fleet = make_fleet(1, app=True)
    prepare(fleet, tmp_path, hosts=('host1',))
    run = fleet.ansible_playbook(PLAYBOOK, *rollback_args(tmp_path, 'comms'), env=ENV)

    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    tasks = [sum(int(n) for n in found.groups()[1:]) for found in RECAP.finditer(output)]
    assert tasks and max(tasks) <= 30, 'a level 2 run went through %s tasks per host (budget 30)' % tasks
    controller = tmp_path / 'controller'
    started = (controller / 'notify-started-internal.txt').read_text()
    assert started.startswith('INFO: Configuration rollback (Level 2) - Started\n')
    assert 'Hosts: 1 (host1)\n' in started
    assert (controller / 'notify-complete-internal.txt').read_text().startswith(
        'INFO: Configuration rollback (Level 2) - Complete\n')
    report = fleet_report(tmp_path)
    # the fleet inventory's stability window (2 s) and the demo application's /metrics, read on the host
    assert report['hosts']['host1']['verify']['stability'] == {'ok': True, 'seconds': 2, 'interval': 1, 'readings': 2}
    assert report['verification']['status'] == 'STABLE'
    assert report['verification']['metrics'] == {'session_success_rate': 99, 'error_rate': 0.5,
                                                 'security_violations': 0}
