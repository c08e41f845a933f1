"""Fixtures for tests that need real SSH hosts.

``fleet`` (session-scoped): three hosts (host1 = staging, host2/host3 =
production) with the demo application installed and running.  Tests share it,
so they must leave the hosts as they found them (a test that kills a host
brings it back, or uses ``make_fleet`` instead).

``make_fleet`` (function-scoped): a factory for a private fleet that is taken
down at the end of the test -- for tests that kill hosts or take a fleet down.

Both need root and OpenSSH; without them the tests are skipped with the reason.
"""

import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import fleet as harness  # noqa: E402  pylint: disable=wrong-import-position

REPO_ROOT = harness.REPO_ROOT
FLEET_SIZE = 3


class RunningFleet:
    """What a test needs from a fleet: inventory, hosts, and ways to act on them."""

    def __init__(self, fleet):
        self.harness = fleet
        self.inventory = fleet.inventory_path
        self.hosts = fleet.hosts
        self.names = [host.name for host in self.hosts]

    def host(self, name):
        return self.harness.host(name)

    def ssh(self, name, command, **kwargs):
        return self.harness.ssh(name, command, **kwargs)

    def kill(self, name):
        self.harness.kill(name)

    def start(self, name):
        self.harness.start(name)

    def ansible_playbook(self, playbook, *args, **kwargs):
        """Run ansible-playbook from the checkout (its ansible.cfg) against this fleet."""
        return run_ansible_playbook(self.inventory, playbook, *args, **kwargs)

    def ansible_playbook_losing(self, victim, ready, playbook, *args, env=None, timeout=300):
        """Run ansible-playbook and take host ``victim`` off the network as soon as ``ready()`` holds.

        Returns the run's exit status and output (stdout and stderr).  Fails the test when the
        run ends before ``ready()`` holds, or it does not hold within ``timeout`` seconds.
        """
        with subprocess.Popen(_playbook_command(self.inventory, playbook, args), cwd=REPO_ROOT,
                              env=_playbook_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as run:
            deadline = time.monotonic() + timeout
            while not ready():
                assert run.poll() is None, 'the run ended before %s was to be lost:\n%s' % (victim, run.stdout.read())
                assert time.monotonic() < deadline, 'the run did not get to where %s was to be lost in time' % victim
                time.sleep(0.2)
            self.kill(victim)
            output = run.communicate(timeout=timeout)[0]
        return run.returncode, output


def _playbook_command(inventory, playbook, args):
    return [os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-playbook'), '-i', inventory, playbook] + list(args)


def _playbook_env(env):
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), **(env or {}))


def run_ansible_playbook(inventory, playbook, *args, env=None, timeout=300):
    return subprocess.run(_playbook_command(inventory, playbook, args), cwd=REPO_ROOT, env=_playbook_env(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def _skip_without_fleet_support():
    if os.geteuid() != 0:
        pytest.skip('the SSH fleet needs root (mount namespaces, sshd)')
    try:
        harness._require_root_tools()  # pylint: disable=protected-access
    except harness.FleetError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope='session')
def fleet(tmp_path_factory):
    _skip_without_fleet_support()
    running = harness.Fleet(str(tmp_path_factory.mktemp('fleet')))
    try:
        running.up(FLEET_SIZE, app=True)
        yield RunningFleet(running)
    finally:
        running.down()


@pytest.fixture(scope='module')
def awx_fleet(request, tmp_path_factory):
    """A private fleet for one module of AWX job tests (tests/lib/awx_runner.py): the module's AWX_FLEET_SIZE
    hosts (2 by default), the demo application on each; a fleet.Fleet."""
    _skip_without_fleet_support()
    running = harness.Fleet(str(tmp_path_factory.mktemp('awx-fleet')))
    try:
        running.up(getattr(request.module, 'AWX_FLEET_SIZE', 2), app=True)
        yield running
    finally:
        running.down()


@pytest.fixture
def make_fleet(tmp_path):
    _skip_without_fleet_support()
    started = []

    def make(count=2, app=False, name='fleet'):
        fleet = harness.Fleet(str(tmp_path / name))
        started.append(fleet)
        fleet.up(count, app=app)
        return RunningFleet(fleet)

    try:
        yield make
    finally:
        for fleet in started:
            fleet.down()
