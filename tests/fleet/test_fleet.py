"""The fleet harness itself: hosts are separate, a killed host is unreachable, down cleans up."""

import json
import os
import re
import subprocess

import pytest

import fleet as harness

pytestmark = [pytest.mark.fleet, pytest.mark.root]

KILL_MID_RUN = '''
- name: Lose a host in the middle of a run
  hosts: all
  gather_facts: false
  tasks:
    - name: Every host answers before the loss
      ansible.builtin.command: hostname
      changed_when: false

    - name: Take host2 off the network
      ansible.builtin.command: "{{ fleet_python }} {{ fleet_script }} --dir {{ fleet_state_dir }} kill host2"
      delegate_to: localhost
      run_once: true
      changed_when: true

    - name: The next task after the loss
      ansible.builtin.command: hostname
      changed_when: false

    - name: The rest of the fleet carries on
      ansible.builtin.command: hostname
      changed_when: false
'''


def _playbook(tmp_path, text):
    path = tmp_path / 'playbook.yml'
    path.write_text(text)
    return str(path)


def _recap(stdout):
    """{host: {stat: count}} from the PLAY RECAP of the default callback."""
    stats = {}
    for line in stdout.split('PLAY RECAP')[-1].splitlines():
        host, sep, counts = line.partition(' : ')
        if sep:
            stats[host.strip()] = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', counts))
    return stats


def _task_output(stdout, name):
    """The default callback's output of the task called ``name``."""
    return stdout.split('TASK [%s]' % name, 1)[1].split('TASK [', 1)[0].split('PLAY RECAP', 1)[0]


def test_a_write_on_one_host_is_invisible_on_the_other_hosts_and_the_controller(fleet):
    marker = '/srv/app/probe-%d' % os.getpid()
    fleet.ssh('host1', 'echo from-host1 > %s' % marker)
    try:
        assert fleet.ssh('host1', 'cat %s' % marker).stdout == 'from-host1\n'
        for other in fleet.names[1:]:
            assert fleet.ssh(other, 'test -e %s' % marker, check=False).returncode == 1
        assert not os.path.exists(marker)
        with open(fleet.host('host1').path(marker)) as handle:
            assert handle.read() == 'from-host1\n'
    finally:
        fleet.ssh('host1', 'rm -f %s' % marker)


@pytest.mark.parametrize('shared_path', ['/var/backups/lastgood', '/var/log/lastgood', '/var/lib/lastgood'])
def test_every_private_path_is_per_host(fleet, shared_path):
    marker = '%s/probe-%d' % (shared_path, os.getpid())
    fleet.ssh('host2', 'touch %s' % marker)
    try:
        assert fleet.ssh('host3', 'test -e %s' % marker, check=False).returncode == 1
        assert os.path.exists(fleet.host('host2').path(marker))
    finally:
        fleet.ssh('host2', 'rm -f %s' % marker)


def test_each_host_has_its_own_hostname_and_process_table(fleet):
    names = [fleet.ssh(name, 'hostname').stdout.strip() for name in fleet.names]
    assert names == fleet.names
    # PID 1 of every host is its sshd; the controller's processes are not visible.
    assert fleet.ssh('host1', 'cat /proc/1/comm').stdout.strip() == 'sshd'
    assert str(os.getpid()) not in fleet.ssh('host1', 'ls /proc').stdout.split()


def test_inventory_puts_the_first_host_in_staging_and_the_rest_in_production(fleet):
    listing = subprocess.run([os.path.join(harness.REPO_ROOT, '.venv', 'bin', 'ansible-inventory'),
                              '-i', fleet.inventory, '--list'], capture_output=True, text=True, check=True,
                             cwd=harness.REPO_ROOT)
    groups = json.loads(listing.stdout)
    assert groups['staging']['hosts'] == ['host1']
    assert groups['production']['hosts'] == ['host2', 'host3']
    hostvars = groups['_meta']['hostvars']
    assert [hostvars[name]['ansible_host'] for name in fleet.names] == [h.address for h in fleet.hosts]
    assert hostvars['host1']['ansible_user'] == 'root'


def test_the_demo_app_on_each_host_answers_on_that_hosts_address(fleet):
    for host in fleet.hosts:
        result = fleet.ssh(host.name, '/srv/app/bin/appctl health', check=False)
        document = json.loads(result.stdout)
        assert result.returncode == 0, document
        assert document['host'] == host.name
        assert json.loads(fleet.ssh(host.name, '/srv/app/bin/appctl status').stdout)['url'] == host.app_url


def test_a_killed_host_fails_the_next_task_unreachable_and_the_rest_continue(make_fleet, tmp_path):
    running = make_fleet(3)
    result = running.ansible_playbook(
        _playbook(tmp_path, KILL_MID_RUN),
        '-e', 'fleet_python=%s fleet_script=%s' % (harness.sys.executable, os.path.join(harness.HERE, 'fleet.py')))
    stats = _recap(result.stdout)
    assert stats['host2']['unreachable'] == 1, result.stdout
    assert stats['host2']['ok'] == 1
    for survivor in ('host1', 'host3'):
        assert stats[survivor]['unreachable'] == 0 and stats[survivor]['failed'] == 0
    # host1 also ran the run_once kill task.
    assert (stats['host1']['ok'], stats['host3']['ok']) == (4, 3)
    assert 'fatal: [host2]: UNREACHABLE!' in _task_output(result.stdout, 'The next task after the loss')
    assert 'host2' not in _task_output(result.stdout, 'The rest of the fleet carries on')
    assert result.returncode == 4, result.stderr


def test_a_killed_host_comes_back_with_its_data(make_fleet):
    running = make_fleet(2)
    running.ssh('host2', 'echo kept > /var/lib/lastgood/survivor')
    running.kill('host2')
    assert running.ssh('host2', 'true', check=False).returncode == 255
    assert running.ssh('host1', 'true').returncode == 0
    running.start('host2')
    assert running.ssh('host2', 'cat /var/lib/lastgood/survivor').stdout == 'kept\n'


def test_down_leaves_no_process_or_mount_behind_and_is_safe_twice(make_fleet):
    running = make_fleet(2, app=True)
    records = [host.record for host in running.harness.hosts]
    namespaces = [record['init']['mnt_ns'] for record in records]
    assert all(harness.processes_in_namespace(ns) for ns in namespaces)
    assert harness.mounts_mentioning(running.harness.state_dir)

    running.harness.down()
    running.harness.down()

    for ns in namespaces:
        assert harness.processes_in_namespace(ns) == []
    assert harness.mounts_mentioning(running.harness.state_dir) == []
    for record in records:
        for ident in (record['init'], record['unshare']):
            assert not harness._same_process(ident)  # pylint: disable=protected-access
    for host in running.hosts:
        assert not harness._listening(host.address, host.port)  # pylint: disable=protected-access
        assert not harness._listening(host.address, harness.DEFAULT_APP_PORT)  # pylint: disable=protected-access
    assert [row['alive'] for row in running.harness.status()] == [False, False]


def test_two_fleets_from_different_state_dirs_get_different_addresses(fleet, make_fleet):
    second = make_fleet(1)
    assert second.hosts[0].address not in [host.address for host in fleet.hosts]
    assert second.ssh('host1', 'hostname').stdout.strip() == 'host1'
    assert fleet.ssh('host1', 'test -e /srv/app/config.yaml', check=False).returncode == 0
    assert second.ssh('host1', 'test -e /srv/app/config.yaml', check=False).returncode == 1


def test_host_path_refuses_paths_that_are_not_private(fleet):
    with pytest.raises(harness.FleetError, match='not private'):
        fleet.host('host1').path('/etc/passwd')
    with pytest.raises(harness.FleetError, match='not private'):
        fleet.host('host1').path('/srv/application/../app-other')


def test_up_refuses_while_the_same_state_dir_runs_a_fleet(make_fleet):
    running = make_fleet(1)
    with pytest.raises(harness.FleetError, match='already running'):
        running.harness.up(1)


def test_cli_status_reports_each_host_and_exits_3_when_one_is_down(make_fleet):
    running = make_fleet(2)
    script = os.path.join(harness.HERE, 'fleet.py')
    base = [harness.sys.executable, script, '--dir', running.harness.state_dir]
    up = subprocess.run(base + ['status', '--json'], capture_output=True, text=True, check=False)
    assert up.returncode == 0
    assert [row['alive'] for row in json.loads(up.stdout)] == [True, True]
    assert subprocess.run(base + ['kill', 'host1'], capture_output=True, check=False).returncode == 0
    down = subprocess.run(base + ['status', '--json'], capture_output=True, text=True, check=False)
    assert down.returncode == 3
    assert [row['alive'] for row in json.loads(down.stdout)] == [False, True]
