"""rollback_level3 with the git strategy on real SSH hosts (host1 staging, host2 production).

tests/integration/test_level_roles.py pins the git strategy's choices on localhost; this runs the
whole playbook over SSH, where the work tree, the git identity and the deploy command are the
host's own.
"""

import json
import os

import pytest

from conftest import REPO_ROOT

pytestmark = [pytest.mark.fleet, pytest.mark.root]

PLAYBOOK = os.path.join(REPO_ROOT, 'playbooks', 'rollback_level3.yml')
RUN_ID = 'git-fleet'
BRANCH = 'rollback-' + RUN_ID
HOSTS = ('host1', 'host2')
ENV = {'ANSIBLE_PIPELINING': 'True', 'ANSIBLE_NOCOLOR': '1'}


def remote(fleet, name, command):
    return fleet.ssh(name, command).stdout.strip()


# reset starts the rollback branch at the known-good tag; revert starts it at the running code
# (main, v1.1.0) and reverts the commit that brought Party Mode.  Either way the branch's tree is
# the known-good one.
@pytest.mark.parametrize('mode, options', [
    ('reset', {}),
    # Slow: a second private fleet for the same run in the other git mode.
    pytest.param('revert', {'lastgood_code_revert_commits': ['v1.1.0']}, marks=pytest.mark.slow),
])
def test_git_rollback_puts_every_host_on_a_rollback_branch_with_the_known_good_tree_staging_first(
        make_fleet, tmp_path, mode, options):
    fleet = make_fleet(len(HOSTS), app=True)
    known_good = remote(fleet, 'host1', 'git -C /srv/app/code rev-parse "pre-party-mode-v1.0.0^{commit}"')
    reverted = remote(fleet, 'host1', 'git -C /srv/app/code rev-parse "v1.1.0^{commit}"')
    extra = dict(options, lastgood_code_strategy='git', lastgood_code_git_mode=mode, lastgood_run_id=RUN_ID,
                 lastgood_controller_dir=str(tmp_path / 'controller'))

    run = fleet.ansible_playbook(PLAYBOOK, '-e', json.dumps(extra), env=ENV)

    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / 'controller' / 'report.json').read_text())
    assert report['run']['outcome'] == 'success'
    deployed_at = {}
    for name in HOSTS:
        assert remote(fleet, name, 'git -C /srv/app/code rev-parse --abbrev-ref HEAD') == BRANCH
        assert fleet.ssh(name, 'git -C /srv/app/code diff --quiet %s HEAD' % known_good, check=False).returncode == 0
        # The tag predates the feature, so there are no feature files left to remove in a commit of their own.
        assert remote(fleet, name, 'git -C /srv/app/code rev-parse %s' % ('HEAD' if mode == 'reset' else 'HEAD^')) == \
            (known_good if mode == 'reset' else reverted)
        assert remote(fleet, name, 'git -C /srv/app/code status --porcelain') == ''
        revision = remote(fleet, name, 'cat /srv/app/current/REVISION').split()
        assert revision[1] == BRANCH, revision
        assert fleet.ssh(name, 'test -e /srv/app/current/lib/party-mode', check=False).returncode == 1
        health = json.loads(remote(fleet, name, '/srv/app/bin/appctl health'))
        assert health['status'] == 'healthy' and health['version'] == '1.0.0', health
        action = report['hosts'][name]['action']
        assert action['strategy'] == 'git' and action['mode'] == mode and action['removed'] == [], action
        events = [json.loads(line) for line in fleet.ssh(name, 'cat /var/log/lastgood/audit.jsonl').stdout.splitlines()]
        deployed_at[name] = [event['ts'] for event in events if event['event'] == 'code_rolled_back'][0]
    assert deployed_at['host1'] < deployed_at['host2'], 'production rolled back before staging: %s' % deployed_at


def test_failed_verification_restores_the_checkpoint_and_reports_that_the_app_loaded_it_again(make_fleet, tmp_path):
    """The rescue puts the run's checkpoint (the running release) back on every host, runs the
    apply command so the application loads it, and the report says so for each host."""
    fleet = make_fleet(len(HOSTS), app=True)
    before = {name: remote(fleet, name, 'git -C /srv/app/code rev-parse --abbrev-ref HEAD; readlink /srv/app/current')
              for name in HOSTS}
    extra = {'lastgood_code_strategy': 'git', 'lastgood_run_id': 'level3-verify-fails',
             'lastgood_controller_dir': str(tmp_path / 'controller'), 'lastgood_test_command': ['false']}

    run = fleet.ansible_playbook(PLAYBOOK, '-e', json.dumps(extra), env=ENV)

    assert run.returncode != 0, run.stdout
    report = json.loads((tmp_path / 'controller' / 'report.json').read_text())
    assert report['run']['outcome'] == 'failed'
    for name in HOSTS:
        host = report['hosts'][name]
        assert host['failure']['phase'] == 'verify', host['failure']
        restore = host['restore']
        assert restore == dict(restore, attempted=True, restored=True, verified=True, reapplied=True), restore
        assert 'The application loaded it again (/srv/app/bin/appctl reload)' in restore['message'], restore
        assert remote(fleet, name, 'git -C /srv/app/code rev-parse --abbrev-ref HEAD; readlink /srv/app/current') == \
            before[name]
        assert fleet.ssh(name, 'test -e /srv/app/current/lib/party-mode', check=False).returncode == 0
