"""Automatic Level 1 on real SSH hosts: the rulebook watches every host's /metrics, and only the host
whose error rate crossed the threshold gets the rollback.
"""

import json
import os

import pytest
import yaml

from lib.eda import Rulebook, jsonl, needs_level1, needs_rulebook, wait_for

pytestmark = [pytest.mark.fleet, pytest.mark.root, needs_rulebook, needs_level1]

APPCTL = '/srv/app/bin/appctl'


def test_only_the_host_whose_error_rate_crossed_gets_the_automatic_level1(make_fleet, tmp_path):
    fleet = make_fleet(2, app=True)
    fleet.ssh('host2', "sed -i 's/^  enabled: false$/  enabled: true/' /srv/app/config.yaml && %s reload >/dev/null"
              " && %s simulate error_rate=25 --while-enabled partyMode >/dev/null" % (APPCTL, APPCTL))
    site_vars = tmp_path / 'site.yml'
    site_vars.write_text(yaml.safe_dump({'lastgood_controller_dir': str(tmp_path / 'controller') + '/{{ lastgood_run_id }}'}))
    rulebook = Rulebook(tmp_path, 'lastgood.rollback.auto_rollback', {
        'lastgood_targets': [{'host': host.name, 'metrics_url': host.app_url + '/metrics',
                              'health_url': host.app_url + '/health'} for host in fleet.hosts],
        'poll_interval': 0.5, 'clear_after': 2, 'lastgood_auto_dir': str(tmp_path / 'auto'),
        'site_vars_file': str(site_vars)}, inventory=fleet.inventory)
    rulebook.start()
    try:
        claimed = wait_for(lambda: jsonl(str(tmp_path / 'auto' / 'audit.jsonl')), 60, 'the claim')[0]
        assert claimed['detail']['hosts'] == ['host2']
        report = wait_for(lambda: os.path.exists(str(tmp_path / 'controller' / claimed['run_id'] / 'report.json')),
                          180, 'the Level 1 report')
        rulebook.wait_output('incident host2-error_rate_high', 60)
        rulebook.wait_output('resolved', 60)
    finally:
        rulebook.stop()
    assert report
    with open(fleet.host('host2').path('/srv/app/app.env')) as handle:
        assert 'PARTY_MODE_ENABLED=false' in handle.read()
    assert not os.path.exists(fleet.host('host1').path('/srv/app/app.env')) or \
        'PARTY_MODE_ENABLED' not in open(fleet.host('host1').path('/srv/app/app.env')).read()
    with open(str(tmp_path / 'controller' / claimed['run_id'] / 'report.json')) as handle:
        document = json.load(handle)
    assert sorted(document['hosts']) == ['host2']
    started = [event for event in document['timeline'] if event['event'] == 'auto_rollback_started']
    assert [event['host'] for event in started] == ['host2']
    assert started[0]['detail']['message'].startswith('started automatically by error_rate_high')
    assert [record['event'] for record in jsonl(str(tmp_path / 'auto' / 'audit.jsonl'))] == ['auto_action_claimed']
