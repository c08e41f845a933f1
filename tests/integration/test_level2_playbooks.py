"""The level 2 playbooks end to end on localhost, against a running demo application in a temp dir.

Every run-wide path (store, run state, audit log, reports) lives below the test's tmp_path and is
passed as extra vars, as docs/dev/roles.md says a site does.
"""

import json
import os
import re
import subprocess

import pytest

from lib.webhook import Receiver
from lib import trees
from lib.demo_site import PLAYBOOK, ROOT, Site, break_config

LEVEL2 = os.path.join(ROOT, 'playbooks', 'rollback_level2.yml')

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')


@pytest.fixture
def site(tmp_path):
    """A running, healthy demo app with a known-good backup of its configuration."""
    current = Site(tmp_path)
    try:
        current.start()
        yield current
    finally:
        current.app.run('stop')


def test_failed_verification_restores_the_checkpoint_then_a_rerun_with_the_same_run_id_completes(site):
    good = site.app.read('config.yaml')
    bad = break_config(site)
    token = 's3cr3t-hook-token'
    with Receiver() as hook:
        hook_vars = {'lastgood_webhook_url': hook.url, 'lastgood_webhook_token': token, 'lastgood_run_id': 'it-resume'}

        failed = site.playbook(LEVEL2, extra=dict(hook_vars, lastgood_test_command=['false']))

        assert failed.returncode == 2, failed.stdout
        assert site.app.read('config.yaml') == bad, 'the checkpoint of the broken state was not put back'
        assert site.app.read('app.env') == 'PARTY_MODE_ENABLED=true\n'
        report = site.report()
        assert report['run']['outcome'] == 'failed'
        host = report['hosts']['localhost']
        assert host['failure']['phase'] == 'verify'
        assert host['restore'] == dict(host['restore'], attempted=True, restored=True, verified=True, reapplied=True)
        assert 'The application loaded it again' in host['restore']['message']
        # The rollback had reloaded the good config: the rescue made the app load the checkpoint again.
        assert site.app.run('health').returncode == 1, 'the app still runs the config of the failed run'
        assert site.run_state('it-resume')['status'] == 'failed'
        assert 'run_checkpoint_restored' in site.audit_events('it-resume')
        assert not os.path.exists(os.path.join(site.extra['lastgood_backup_root'], 'app', '.lock'))

        rerun = site.playbook(LEVEL2, extra=hook_vars)

    assert rerun.returncode == 0, rerun.stdout
    assert 'Resuming run it-resume (attempt 2): skipping checkpoint.' in rerun.stdout + rerun.stderr
    assert site.app.read('config.yaml') == good
    assert not os.path.exists(site.app.file('app.env')), 'the override file absent from the known good state stayed'
    assert site.app.run('health').returncode == 0
    state = site.run_state('it-resume')
    assert state['status'] == 'finished' and state['attempts'] == 2
    assert state['artifacts']['checkpoint']['attempt'] == 1
    assert state['artifacts']['level2_config']['attempt'] == 2
    report = site.report()
    assert report['run']['outcome'] == 'success'
    assert report['checksums_verified'] is True and report['audit_chains_verified'] is True
    assert 'run_resume' in (site.controller / 'postmortem.md').read_text()
    host_report = site.base / 'reports' / 'it-resume' / 'report.md'
    assert 'Outcome on this host: **SUCCESS**' in host_report.read_text()

    # each run (the failed one, the resumed one) announces its start and its end
    assert [post['body']['status'] for post in hook.posts] == ['started', 'failed', 'started', 'complete']
    assert all(post['authorization'] == 'Bearer ' + token for post in hook.posts)
    assert hook.posts[-1]['body']['run_id'] == 'it-resume'
    assert 'Configuration rollback (Level 2)' in hook.posts[-1]['body']['internal']
    for output in (failed.stdout + failed.stderr, rerun.stdout + rerun.stderr):
        assert token not in output and hook.url not in output


def test_check_mode_prints_the_plan_and_changes_nothing(site):
    break_config(site)
    before = trees.tree_digest(str(site.base))

    run = site.playbook(LEVEL2, '--check', extra={'lastgood_run_id': 'it-dry-run'})

    assert run.returncode == 0, run.stdout
    plan = run.stdout.split('Dry run on localhost: level 2 would restore from store known-good:', 1)[1]
    assert 'restore %s' % site.app.file('config.yaml') in plan
    assert 'remove %s' % site.app.file('app.env') in plan
    assert trees.tree_digest(str(site.base)) == before


def test_preflight_names_every_failed_check_and_changes_nothing(site):
    (site.base / 'runs').mkdir()
    (site.base / 'runs' / 'other-run.json').write_text(json.dumps({'status': 'running'}, indent=2) + '\n')
    os.unlink(site.app.file('custom_modes.json'))
    before = trees.tree_digest(str(site.base))

    run = site.playbook(os.path.join(ROOT, 'playbooks', 'preflight.yml'),
                        extra={'preflight_space_multiple': 1e15, 'lastgood_preflight_backups': ['lastgood', 'no-such-backup']})

    assert run.returncode == 2
    # the message as the error line shows it, not the failed result (every check) printed after it
    message = run.stdout.split('Preflight failed on localhost; nothing was changed:', 1)[1].split('fatal: [localhost]')[0]
    assert re.search(r'- \S+custom_modes.json does not exist', message)
    assert 'the checkpoint needs' in message
    assert 'run(s) other-run are still running' in message
    assert 'backup no-such-backup' in message
    assert 'backup lastgood' not in message
    assert trees.tree_digest(str(site.base)) == before


@pytest.mark.slow
def test_configuration_restored_from_a_git_commit_is_validated_and_written(site):
    repo = site.app.root
    git = ['git', '-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t.invalid']
    subprocess.run(git + ['init', '-q'], check=True)
    subprocess.run(git + ['add', 'config.yaml', 'custom_modes.json'], check=True)
    subprocess.run(git + ['commit', '-q', '-m', 'known good config'], check=True)
    good = site.app.read('config.yaml')
    break_config(site)

    run = site.playbook(LEVEL2, extra={'lastgood_run_id': 'it-git', 'level2_config_source': 'git',
                                       'level2_config_git_repo': repo, 'level2_config_git_ref': 'HEAD'})

    assert run.returncode == 0, run.stdout
    assert site.app.read('config.yaml') == good
    assert not os.path.exists(site.app.file('app.env'))
    action = site.report()['hosts']['localhost']['action']
    assert action['source'] == 'git' and len(action['source_id']) == 40


@pytest.mark.slow
def test_failed_hosts_within_the_allowed_share_are_restored_while_the_others_finish(tmp_path):
    # Three "hosts" on this machine, each with its own app and store: extra vars holding templates
    # give every host its own paths, as docs/dev/roles.md describes for per-host values.
    names = ('h1', 'h2', 'h3')
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text('all:\n  hosts:\n%s  vars:\n    ansible_connection: local\n'
                         % ''.join('    %s: {}\n' % name for name in names))
    sites = dict((name, Site(tmp_path / name)) for name in names)
    configs = {}
    try:
        for name, site in sites.items():
            site.start(name)
            configs[name] = (site.app.read('config.yaml'), break_config(site))
        per_host = dict(sites['h1'].extra)
        for key, value in per_host.items():
            if isinstance(value, str) and value.startswith(str(tmp_path / 'h1')):
                per_host[key] = value.replace(str(tmp_path / 'h1'), str(tmp_path) + '/{{ inventory_hostname }}')
        per_host['lastgood_controller_dir'] = str(tmp_path / 'controller')
        per_host.update({'lastgood_run_id': 'it-partial', 'lastgood_max_fail_percentage': 50,
                         'lastgood_test_command': ['sh', '-c', 'test "{{ inventory_hostname }}" != h2']})
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')

        run = subprocess.run([PLAYBOOK, '-i', str(inventory), '-e', json.dumps(per_host), LEVEL2], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900, check=False)

        assert run.returncode == 2, run.stdout
        report = json.loads((tmp_path / 'controller' / 'report.json').read_text())
        assert report['run']['outcome'] == 'partial'
        assert report['run']['failed_hosts'] == ['h2'] and report['run']['restored_hosts'] == ['h2']
        for name, (good, bad) in configs.items():
            assert sites[name].app.read('config.yaml') == (bad if name == 'h2' else good), name
    finally:
        for site in sites.values():
            site.app.run('stop')
