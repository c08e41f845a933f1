"""playbooks/circuit_breaker.yml on localhost: the automatic Level 1 runs where the breaker fired, and only there.

The breaker's inputs are given as measured metrics (lastgood_breaker_metrics), so each test
decides whether it fires; the hosts are narrowed with -e lastgood_hosts, the way an operator
points the breaker at part of an inventory.
"""

import json
import os

import pytest

from lib.demo_site import PLAYBOOK, ROOT, Site

BREAKER = os.path.join(ROOT, 'playbooks', 'circuit_breaker.yml')
# Every check of the breaker holds: a violation, sessions failing, no intervention for 20 minutes.
FIRING = {'security_violations': 1, 'session_success_rate': 50, 'minutes_since_first_alert': 20,
          'manual_intervention': False}
QUIET = dict(FIRING, session_success_rate=99)

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')


@pytest.fixture(scope='module')
def fired(tmp_path_factory):
    """The breaker fired on the narrowed hosts and ran Level 1: the site and the run's output."""
    site = Site(tmp_path_factory.mktemp('fired'))
    try:
        site.start()
        run = site.playbook(BREAKER, '-e', 'lastgood_hosts=localhost',
                            extra={'lastgood_breaker_metrics': FIRING, 'lastgood_run_id': 'it-breaker'})
        yield site, run
    finally:
        site.app.run('stop')


def test_breaker_that_does_not_fire_runs_no_level1_on_hosts_given_with_lastgood_hosts(tmp_path):
    site = Site(tmp_path)
    try:
        site.start()

        run = site.playbook(BREAKER, '-e', 'lastgood_hosts=localhost',
                            extra={'lastgood_breaker_metrics': QUIET, 'lastgood_run_id': 'it-quiet'})

        assert run.returncode == 0, run.stdout + run.stderr
        assert 'not fired' in run.stdout
        assert 'skipping: no hosts matched' in run.stdout
        assert not os.path.exists(site.app.file('app.env')), 'Level 1 wrote the override file'
        assert not (site.base / 'runs' / 'it-quiet.json').exists(), 'a Level 1 run was started'
    finally:
        site.app.run('stop')


def test_breaker_that_fires_on_hosts_given_with_lastgood_hosts_turns_the_feature_off_there(fired):
    site, run = fired
    assert run.returncode == 0, run.stdout + run.stderr
    assert site.app.read('app.env') == 'PARTY_MODE_ENABLED=false\n'
    flags = json.loads(site.app.run('flags').stdout)
    assert flags['flags']['partyMode.enabled'] is False
    assert site.run_state('it-breaker')['status'] == 'finished'
    assert 'circuit_breaker_fired' in (site.base / 'log' / 'audit.jsonl').read_text()


def test_level1_report_says_the_sha256_proof_does_not_apply_when_no_files_were_restored(fired):
    site = fired[0]
    fleet = (site.controller / 'report.md').read_text()
    host = (site.base / 'reports' / 'it-breaker' / 'report.md').read_text()
    assert 'Final state proven by SHA-256 on every host checked: n/a — no files were restored' in fleet
    assert '| localhost | success | verify |' in fleet
    assert '| n/a — no files were restored |' in fleet
    assert 'Live paths match the known good backup (SHA-256): n/a — no files were restored' in host
    assert ': NO' not in fleet + host and '| NO |' not in fleet
    assert site.report()['checksums_verified'] is None
