"""deploy_staged on real SSH hosts: a canary host lost in the middle of its batch halts the rollout.

molecule/deploy_staged covers a good change and a change that fails verification in a batch; this
covers the host that never reports back: it does not fail, it just is not there any more, and the
next batch must not go out.
"""

import json
import os

import pytest

from conftest import REPO_ROOT

pytestmark = [pytest.mark.fleet, pytest.mark.root]

PLAYBOOK = os.path.join(REPO_ROOT, 'playbooks', 'deploy_staged.yml')
CONFIG = '/srv/app/config.yaml'
ENV = {'ANSIBLE_PIPELINING': 'True', 'ANSIBLE_NOCOLOR': '1'}


def read(fleet, name, path):
    with open(fleet.host(name).path(path)) as handle:
        return handle.read()


def test_canary_host_lost_during_its_batch_halts_the_rollout_before_the_next_batch(make_fleet, tmp_path):
    fleet = make_fleet(3, app=True)
    before = read(fleet, 'host3', CONFIG)
    change = {'lastgood_run_id': 'lost-canary', 'lastgood_controller_dir': str(tmp_path / 'controller'),
              'lastgood_canary_batches': ['1', '100%'],
              'lastgood_deploy_config': [{'path': CONFIG, 'values': {'partyMode.rateLimit.sessionsPerMinute': 60}}]}

    # host2, the first canary batch, is lost as soon as it has the change, before its batch ends.
    returncode, output = fleet.ansible_playbook_losing(
        'host2', lambda: 'sessionsPerMinute: 60' in read(fleet, 'host2', CONFIG),
        PLAYBOOK, '-e', json.dumps(change), env=ENV)

    assert returncode != 0, output
    assert read(fleet, 'host3', CONFIG) == before, 'the next batch got the change after host2 was lost'
    assert 'sessionsPerMinute: 60' in read(fleet, 'host1', CONFIG), 'staging, verified before, lost the change'
    with open(str(tmp_path / 'controller' / 'report.json')) as handle:
        report = json.load(handle)
    assert report['run']['unreachable_hosts'] == ['host2']
    assert report['run']['failed_hosts'] == ['host2'] and report['run']['stopped_hosts'] == ['host3']
    assert report['hosts']['host1']['status'] == 'success'
    assert report['hosts']['host3']['status'] == 'stopped'
    assert report['hosts']['host3']['failure']['failed_hosts'] == ['host2']
    events = [json.loads(line)['event'] for line in read(fleet, 'host3', '/var/log/lastgood/audit.jsonl').splitlines()]
    assert 'change_deployed' not in events
