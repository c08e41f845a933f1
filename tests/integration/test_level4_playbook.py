"""The level 4 playbook end to end on localhost, against a running demo application in a temp dir.

Pins what only the whole run shows: a failure after the full restore swapped the baseline in (the
test suite fails) makes the run's rescue put the run's checkpoint back - the compromised code, as
it was - while the features stay off and the evidence stays; a rerun with the same run id then
completes.  The fleet scenario (molecule/level4_full_restore) checks the evidence in detail.
"""

import os
import subprocess
import time

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils._store import Store
from lib.demo_site import PLAYBOOK, ROOT, Site

LEVEL4 = os.path.join(ROOT, 'playbooks', 'rollback_level4.yml')

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')


@pytest.fixture
def site(tmp_path):
    """A running demo app with a baseline backup of its code and configuration, then compromised."""
    current = Site(tmp_path)
    try:
        current.start()
        app = current.app
        Store(current.extra['lastgood_backup_root'], 'app').create(
            [app.file(name) for name in ('config.yaml', 'custom_modes.json', 'code', 'releases', 'current')],
            name='baseline')
        app.write('code/backdoor.py', '# exfiltrates session context\n')
        git = ['git', '-C', app.file('code'), '-c', 'user.name=Intruder', '-c', 'user.email=intruder@example.invalid']
        subprocess.run(git + ['add', 'backdoor.py'], check=True, capture_output=True)
        subprocess.run(git + ['commit', '-q', '-m', 'backdoor'], check=True, capture_output=True)
        yield current
    finally:
        current.app.run('stop')


def level4_vars(site, **extra):
    now = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    values = {
        'lastgood_run_id': 'it-level4',
        'lastgood_approvals': [{'who': 'ana', 'role': 'cto', 'when': now},
                               {'who': 'bo', 'role': 'security_architect', 'when': now}],
        'lastgood_investigation_dir': str(site.base / 'investigations'),
    }
    values.update(extra)
    return values


def test_failed_tests_after_the_full_restore_put_the_checkpoint_back_then_a_rerun_completes(site):
    app = site.app
    failing = [[app.file('bin/appctl'), 'check'], ['false']]

    failed = site.playbook(LEVEL4, extra=level4_vars(site, lastgood_full_test_commands=failing))

    assert failed.returncode == 2, failed.stdout[-4000:]
    assert 'failed while running the test suite: false exited 1 after 6 tries' in ' '.join(failed.stdout.split())
    # the rescue put the run's checkpoint (the compromised code) back, verified, and restarted the app
    assert os.path.exists(app.file('code/backdoor.py'))
    host = site.report()['hosts']['localhost']
    assert host['failure']['phase'] == 'level4_full_restore'
    assert host['restore'] == dict(host['restore'], attempted=True, restored=True, verified=True, reapplied=True)
    # the override file that turned the features off is never restored: they stay off
    assert app.read('app.env') == 'PARTY_MODE_ENABLED=false\n'
    incidents = os.listdir(site.base / 'investigations')
    assert sorted(os.listdir(site.base / 'investigations' / incidents[0])) == ['evidence.tar.gz', 'repo.bundle']

    rerun = site.playbook(LEVEL4, extra=level4_vars(site))

    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert not os.path.exists(app.file('code/backdoor.py'))
    assert site.report()['run']['outcome'] == 'success'
    events = site.audit_events('it-level4')
    assert events.count('full_restore_done') == 1
    assert events.index('approval_recorded') < events.index('feature_disabled') < events.index('full_restore_done')
    package = site.base / 'investigations' / incidents[0]
    check = subprocess.run(['sha256sum', '--check', '--strict', 'SHA256SUMS'], cwd=package, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
