"""A run done by several ansible-playbook runs, as the nodes of a gated AWX workflow do it (docs/awx.md), on localhost.

Each job does one part of a level 2 run with the same run id: the first pauses it after the checkpoint
(lastgood_run_until), the next ones continue it (lastgood_run_action=continue) up to the action, up to
verify, and to its end.  Between the jobs the run stays open - run state running, lock held, no end
notice - and the last job's fleet report still shows what the earlier jobs did.  The workflow's failure
route is an abort with the same run id, across an inventory part of which the run never reached.
"""

import json
import os

import pytest

from lib.demo_site import PLAYBOOK, ROOT, break_config

LEVEL2 = os.path.join(ROOT, 'playbooks', 'rollback_level2.yml')

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')


def lock_holder(site):
    path = os.path.join(site.extra['lastgood_backup_root'], 'app', '.lock')
    return json.loads(open(path).read())['run_id'] if os.path.exists(path) else None


def part(site, run_id, until='', action='continue', **extra):
    variables = {'lastgood_run_id': run_id, 'lastgood_run_action': action, 'lastgood_run_until': until}
    variables.update(extra)
    return site.playbook(LEVEL2, extra=variables)


def notices(site):
    return sorted(name for name in os.listdir(site.controller) if name.startswith('notify-')) \
        if site.controller.exists() else []


def test_a_run_in_four_jobs_pauses_between_them_and_ends_with_the_whole_report(site):
    bad = break_config(site)

    first = part(site, 'it-parts', until='checkpoint', action='resume')

    assert first.returncode == 0, first.stdout
    assert first.stdout.count('skipping: [localhost]') >= 2, 'the action and verify ran'
    assert site.app.read('config.yaml') == bad, 'the job that pauses after the checkpoint acted'
    state = site.run_state('it-parts')
    assert state['status'] == 'running' and state['completed_phases'] == ['checkpoint']
    assert lock_holder(site) == 'it-parts'
    assert site.report()['run']['outcome'] == 'paused' and site.report()['run']['paused_hosts'] == ['localhost']
    started_notices = notices(site)
    assert started_notices and all(name.startswith('notify-started') for name in started_notices), started_notices
    # another run cannot start while this one is paused
    other = site.playbook(LEVEL2, extra={'lastgood_run_id': 'it-other',
                                         'lastgood_controller_dir': str(site.base / 'other-controller')})
    assert other.returncode == 2 and 'held by' in other.stdout and site.app.read('config.yaml') == bad

    act = part(site, 'it-parts', until='action')

    assert act.returncode == 0, act.stdout
    assert site.app.read('config.yaml') != bad and site.app.run('health').returncode == 0
    assert site.run_state('it-parts')['completed_phases'] == ['checkpoint', 'level2_config']
    assert lock_holder(site) == 'it-parts' and site.report()['run']['outcome'] == 'paused'

    verify = part(site, 'it-parts', until='verify')

    assert verify.returncode == 0, verify.stdout
    assert site.run_state('it-parts')['completed_phases'] == ['checkpoint', 'level2_config', 'verify']
    assert site.run_state('it-parts')['status'] == 'running' and lock_holder(site) == 'it-parts'
    # continuing sends no new start notice, pausing no end notice
    assert notices(site) == started_notices

    close = part(site, 'it-parts')

    assert close.returncode == 0, close.stdout
    assert site.run_state('it-parts')['status'] == 'finished' and lock_holder(site) is None
    events = site.audit_events('it-parts')
    assert events.count('run_paused') == 3 and events.count('run_end') == 1 and events.count('run_start') == 1
    assert events.count('run_phase_done') == 3, events
    report = site.report()
    assert report['run']['outcome'] == 'success' and report['run']['paused_hosts'] == []
    host = report['hosts']['localhost']
    # what the earlier jobs did stays in the report of the job that ended the run
    assert host['action']['source'] == 'store' and host['verify']['ok'] is True
    assert host['state_verified'] is True and report['checksums_verified'] is True
    assert any(name.startswith('notify-') and name not in started_notices for name in notices(site))


def test_continue_never_starts_a_run(site):
    before = site.app.read('config.yaml')

    run = part(site, 'it-never-began', until='action')

    assert run.returncode == 2
    assert 'run it-never-began has no state' in run.stdout and 'nothing to continue here' in run.stdout
    assert site.app.read('config.yaml') == before and lock_holder(site) is None
    assert not os.path.exists(os.path.join(site.extra['lastgood_state_dir'], 'it-never-began.json'))


def test_a_pause_before_the_checkpoint_is_refused_before_the_lock(site):
    run = part(site, 'it-early', until='start', action='resume')

    assert run.returncode == 2
    assert 'the run cannot pause after start: it pauses after one of checkpoint, level2_config, verify' in run.stdout
    assert lock_holder(site) is None


def test_the_workflows_abort_puts_back_a_paused_run_and_counts_a_host_it_never_reached(site, tmp_path):
    bad = break_config(site)
    assert part(site, 'it-gate', until='checkpoint', action='resume').returncode == 0
    assert part(site, 'it-gate', until='action').returncode == 0
    assert site.app.read('config.yaml') != bad

    # the abort node runs on every host of the inventory: localhost, and one the run never reached (its
    # own directories, nothing in them; a play's vars_files outrank inventory variables, so the extra
    # variables choose them by host)
    other = tmp_path / 'other'
    for name, own in (('lastgood_state_dir', 'runs'), ('lastgood_backup_root', 'store'),
                      ('lastgood_audit_log', 'audit.jsonl'), ('lastgood_report_dir', 'reports')):
        site.extra[name] = "{{ '%s' if inventory_hostname == 'localhost' else '%s' }}" % (site.extra[name], other / own)
    inventory = tmp_path / 'inventory.json'
    inventory.write_text(json.dumps({'all': {'hosts': {'localhost': {}, 'other': {'ansible_host': 'localhost'}}}}))
    site.extra.update({'lastgood_run_id': 'it-gate', 'lastgood_run_action': 'abort', 'lastgood_abort_missing': 'skip',
                       'lastgood_reason': 'a node of the gated workflow failed', 'lastgood_fail_aborted': True})
    aborted = site.playbook(LEVEL2, '-i', str(inventory))

    # the job fails (an AWX workflow would otherwise end successful), every host saying it was aborted
    assert aborted.returncode == 2, aborted.stdout
    assert 'Run it-gate (rollback_level2) aborted on localhost. Checkpoint run-it-gate' in aborted.stdout
    assert 'Run it-gate (rollback_level2) aborted on other. Run it-gate never began on this host' in aborted.stdout
    assert site.app.read('config.yaml') == bad, aborted.stdout
    assert not os.path.exists(os.path.join(str(tmp_path), 'store', 'app', '.lock'))
    report = site.report()
    assert report['run']['outcome'] == 'aborted' and sorted(report['run']['aborted_hosts']) == ['localhost', 'other']
    assert 'never began on this host' in report['hosts']['other']['restore']['message']
    # on the host the run never reached: no lock, run state or audit event, only its report saying so
    assert sorted(os.listdir(other)) == ['reports'], 'the abort recorded a run on a host it never reached'
    assert 'never began on this host' in (other / 'reports' / 'it-gate' / 'report.md').read_text()


@pytest.mark.parametrize('playbook, extra, action_phase', [
    ('rollback_level1.yml', {'lastgood_features': ['partyMode']}, 'level1_feature_flag'),
    ('restore_checkpoint.yml', {'lastgood_restore_id': 'known-good'}, 'restore'),
])
def test_the_other_gated_templates_run_in_parts_too(site, playbook, extra, action_phase):
    """Levels 1 and restore_checkpoint have gated workflows as level 2 has (awx/vars/templates.yml)."""
    if action_phase == 'restore':
        break_config(site)
    else:
        # a feature switched on that level 1 switches off; the configuration is otherwise sound
        site.app.write('config.yaml', site.app.read('config.yaml').replace('enabled: false\n  maxAgents: 4',
                                                                           'enabled: true\n  maxAgents: 4'))
        assert site.app.run('reload').returncode == 0
    path = os.path.join(ROOT, 'playbooks', playbook)
    run_id = 'it-' + action_phase.replace('_', '-')

    acted = site.playbook(path, extra=dict(extra, lastgood_run_id=run_id, lastgood_run_until='action'))

    assert acted.returncode == 0, acted.stdout
    state = site.run_state(run_id)
    assert state['status'] == 'running' and state['completed_phases'] == ['checkpoint', action_phase]
    assert lock_holder(site) == run_id and site.report()['run']['outcome'] == 'paused'

    ended = site.playbook(path, extra=dict(extra, lastgood_run_id=run_id, lastgood_run_action='continue'))

    assert ended.returncode == 0, ended.stdout
    state = site.run_state(run_id)
    assert state['status'] == 'finished' and state['completed_phases'] == ['checkpoint', action_phase, 'verify']
    assert lock_holder(site) is None and site.report()['run']['outcome'] == 'success'
    assert site.report()['hosts']['localhost']['action'], 'the report lost what the first job did'
