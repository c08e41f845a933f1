"""The level 3 and level 4 roles' decisions through ansible-playbook on localhost, on a demo app in a temp dir.

The fleet scenarios (molecule/level3_code, molecule/level4_full_restore) run the whole playbooks;
these pin the choices the roles make where a wrong one would be silent: which release a
rollback goes to, what a failed revert leaves behind, which approvals count.
"""

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils._store import Store
from lib import trees
from lib.demo_app import APPCTL, run_appctl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')

pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')


def case_block(case):
    """One case as a block: run the role with the case's options; the rescue keeps the failure message."""
    result = ("lookup('ansible.builtin.vars', %r, default=none)" % case['result']) if 'result' in case else 'none'
    return {
        'name': 'Case %s' % case['name'],
        'block': [
            {'name': 'Run the role', 'vars': case['vars'],
             'ansible.builtin.include_role': {'name': 'lastgood.rollback.' + case['role'],
                                              'tasks_from': case.get('entry', 'main')}},
            {'name': 'Note the success', 'ansible.builtin.set_fact': {
                'results': "{{ results | combine({%r: {'ok': true, 'result': %s}}) }}" % (case['name'], result)}},
        ],
        'rescue': [
            {'name': 'Note the failure', 'ansible.builtin.set_fact': {
                'results': "{{ results | combine({%r: {'ok': false, 'msg': ansible_failed_result.msg, "
                           "'task': ansible_failed_task.name, 'stderr': ansible_failed_result.stderr | default('')}}) }}"
                           % case['name']}},
        ],
    }


def run_cases(work, cases, *options):
    """Run the cases in order in one playbook on localhost; returns {case name: {ok, result or msg}}.

    ``options`` go to ansible-playbook (``--check``).
    """
    play = {
        'name': 'Run the role in each case and keep what happened', 'hosts': 'localhost', 'connection': 'local',
        'gather_facts': False, 'vars': {'results': {}},
        'tasks': [case_block(case) for case in cases] + [
            {'name': 'Keep the results', 'check_mode': False, 'ansible.builtin.copy': {
                'dest': str(work / 'results.json'), 'content': '{{ results | to_json }}', 'mode': '0600'}}],
    }
    (work / 'site.yml').write_text(json.dumps([play]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCAL_TEMP=str(work / 'tmp'), DEMO_APP_PYTHON=sys.executable)
    proc = subprocess.run([PLAYBOOK, '-i', 'localhost,', str(work / 'site.yml'),
                           '-e', json.dumps({'ansible_python_interpreter': sys.executable})] + list(options),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads((work / 'results.json').read_text())


@pytest.fixture
def app(tmp_path):
    root = tmp_path / 'app'
    installed = run_appctl(APPCTL, 'install', str(root), '--port', '1')
    assert installed.returncode == 0, installed.stderr
    return root


def level3_vars(app, work, **options):
    base = {
        'level3_code_releases_dir': str(app / 'releases'),
        'level3_code_current_link': str(app / 'current'),
        'level3_code_repo': str(app / 'code'),
        'level3_code_deploy_command': [str(app / 'bin' / 'appctl'), '--root', str(app), 'deploy'],
        'level3_code_apply_command': [],
        'level3_code_check_command': [str(app / 'bin' / 'appctl'), '--root', str(app), 'check'],
        'level3_code_check_retries': 0,
        'level3_code_audit_log': str(work / 'audit.jsonl'),
        'level3_code_run_id': 'r1',
    }
    base.update(options)
    return base


def test_release_rollback_refuses_without_a_known_good_release_and_changes_nothing(app, tmp_path):
    before = trees.tree_digest(str(app))
    results = run_cases(tmp_path, [{'name': 'none marked', 'role': 'level3_code', 'vars': level3_vars(app, tmp_path)}])
    assert results['none marked']['ok'] is False
    assert 'is marked known-good' in results['none marked']['msg']
    assert 'Nothing was changed' in results['none marked']['msg']
    assert trees.tree_digest(str(app)) == before


def test_release_rollback_goes_to_the_last_known_good_release_by_number_not_by_mtime(app, tmp_path):
    releases = app / 'releases'
    assert run_appctl(APPCTL, '--root', str(app), 'deploy', 'v1.1.0').returncode == 0
    for name in ('1', '2', '3'):
        (releases / name / 'KNOWN_GOOD').write_text('marked\n')
    (releases / '3' / 'BAD_RELEASE').write_text('leaks context\n')
    os.utime(releases / '1', (4102444800, 4102444800))  # release 1 looks newest by mtime
    os.utime(releases / '2', (946684800, 946684800))
    case = {'name': 'rollback', 'role': 'level3_code', 'result': 'level3_code_result',
            'vars': level3_vars(app, tmp_path)}
    results = run_cases(tmp_path, [case, dict(case, name='again')])
    assert results['rollback']['ok'] is True, results['rollback']
    assert os.readlink(app / 'current') == 'releases/2'
    assert results['rollback']['result']['to_release'] == '2'
    assert results['rollback']['result']['removed'] == ['lib/party-mode', 'docs/PARTY_MODE.md']
    assert not (releases / '2' / 'lib' / 'party-mode').exists()
    assert results['again']['result']['changed'] is False
    assert not [name for name in os.listdir(app) if name.startswith('.lastgood-tmp-')]


def test_git_revert_that_does_not_apply_leaves_the_work_tree_as_it_was(app, tmp_path):
    repo = str(app / 'code')
    head = subprocess.check_output(['git', '-C', repo, 'rev-parse', 'HEAD'], text=True).strip()
    before = trees.tree_digest(str(app / 'releases'))
    # 1.1.0 rewrote the lines 1.0.0 changed in router.py: reverting 1.0.0 on top of it conflicts.
    results = run_cases(tmp_path, [{'name': 'revert', 'role': 'level3_code', 'vars': level3_vars(
        app, tmp_path, level3_code_strategy='git', level3_code_git_mode='revert',
        level3_code_revert_commits=['v1.0.0'])}])
    assert results['revert']['ok'] is False
    assert 'rollback branch' in results['revert']['msg'] and 'was deleted' in results['revert']['msg']
    assert subprocess.check_output(['git', '-C', repo, 'rev-parse', '--abbrev-ref', 'HEAD'], text=True).strip() == 'main'
    assert subprocess.check_output(['git', '-C', repo, 'rev-parse', 'HEAD'], text=True).strip() == head
    assert subprocess.check_output(['git', '-C', repo, 'status', '--porcelain'], text=True) == ''
    assert subprocess.call(['git', '-C', repo, 'rev-parse', '--verify', '--quiet', 'refs/heads/rollback-r1']) != 0
    assert trees.tree_digest(str(app / 'releases')) == before


def test_git_reset_deploys_the_known_good_tag_without_the_feature_files_once(app, tmp_path):
    case = {'name': 'reset', 'role': 'level3_code', 'result': 'level3_code_result',
            'vars': level3_vars(app, tmp_path, level3_code_strategy='git', level3_code_target_ref='v1.1.0')}
    results = run_cases(tmp_path, [case, dict(case, name='again')])
    assert results['reset']['ok'] is True, results['reset']
    assert results['reset']['result']['removed'] == ['docs/PARTY_MODE.md', 'lib/party-mode/orchestrator.py']
    assert os.readlink(app / 'current') == 'releases/3'
    assert 'rollback-r1' in (app / 'releases' / '3' / 'REVISION').read_text()
    assert not (app / 'releases' / '3' / 'lib' / 'party-mode').exists()
    assert results['again']['ok'] is True
    assert results['again']['result']['changed'] is False
    assert sorted(os.listdir(app / 'releases')) == ['1', '2', '3']


NOW = '{{ now(utc=True, fmt="%Y-%m-%dT%H:%M:%SZ") }}'


def approval(who, role, when=NOW):
    return {'who': who, 'role': role, 'when': when}


REFUSALS = {
    'none': ([], ['system_compromise_suspected'], 'Missing: cto, security_architect'),
    'one role missing': ([approval('ana', 'cto')], ['system_compromise_suspected'], 'Missing: security_architect'),
    'same person twice': ([approval('ana', 'cto'), approval('ana', 'security_architect')],
                          ['system_compromise_suspected'], 'The same person may not approve for two roles'),
    'stale': ([approval('ana', 'cto'), approval('bo', 'security_architect', '2020-01-01T00:00:00Z')],
              ['system_compromise_suspected'], 'bo as security_architect (older than 24 hours)'),
    'future': ([approval('ana', 'cto'), approval('bo', 'security_architect', '2999-01-01T00:00:00Z')],
               ['system_compromise_suspected'], 'bo as security_architect (when is in the future)'),
    'not utc': ([approval('ana', 'cto'), approval('bo', 'security_architect', 'yesterday')],
                ['system_compromise_suspected'], 'bo as security_architect (when is not YYYY-MM-DDTHH:MM:SSZ (UTC))'),
    'not level 4': ([approval('ana', 'cto'), approval('bo', 'security_architect')], ['critical_bug_in_code'],
                    'call for Level 3, not Level 4'),
}


@pytest.fixture(scope='module')
def refusals(tmp_path_factory):
    """Every refusal case in one playbook run."""
    return run_cases(tmp_path_factory.mktemp('refusals'), [
        {'name': name, 'role': 'level4_full_restore', 'entry': 'approve',
         'vars': {'level4_full_restore_run_id': 'r1', 'level4_full_restore_approvals': approvals,
                  'level4_full_restore_conditions': conditions}}
        for name, (approvals, conditions, _expected) in REFUSALS.items()])


@pytest.mark.parametrize('case', sorted(REFUSALS))
def test_level4_refuses_approvals_that_do_not_satisfy_the_authority_matrix(refusals, case):
    assert refusals[case]['ok'] is False
    message = ' '.join(refusals[case]['msg'].split())
    assert message.startswith('Level 4 full restore refused; nothing was changed on any host.')
    assert REFUSALS[case][2] in message


def test_level4_accepts_two_people_for_the_two_roles_and_an_extra_role_when_asked(tmp_path):
    people = [approval('ana', 'cto'), approval('bo', 'security_architect'), approval('cy', 'engineering_lead')]
    results = run_cases(tmp_path, [
        {'name': 'matrix', 'role': 'level4_full_restore', 'entry': 'approve', 'result': 'level4_full_restore_approval',
         'vars': {'level4_full_restore_run_id': 'r1', 'level4_full_restore_approvals': people[:2]}},
        {'name': 'extra', 'role': 'level4_full_restore', 'entry': 'approve',
         'vars': {'level4_full_restore_run_id': 'r1', 'level4_full_restore_approvals': people[:2],
                  'level4_full_restore_extra_authority': ['engineering_lead']}},
        {'name': 'extra given', 'role': 'level4_full_restore', 'entry': 'approve',
         'vars': {'level4_full_restore_run_id': 'r1', 'level4_full_restore_approvals': people,
                  'level4_full_restore_extra_authority': ['engineering_lead']}},
    ])
    assert results['matrix']['ok'] is True
    assert results['matrix']['result']['required'] == ['cto', 'security_architect']
    assert results['matrix']['result']['approvers'] == ['ana', 'bo']
    assert results['extra']['ok'] is False
    assert 'Missing: engineering_lead' in ' '.join(results['extra']['msg'].split())
    assert results['extra given']['ok'] is True


def level4_vars(app, work, **options):
    """The role on the demo app below ``app``: store, audit log and investigations in ``work``."""
    appctl = [str(app / 'bin' / 'appctl'), '--root', str(app)]
    base = {
        'level4_full_restore_run_id': 'r4',
        'level4_full_restore_approvals': [approval('ana', 'cto'), approval('bo', 'security_architect')],
        'level4_full_restore_features': [],
        'level4_full_restore_investigation_dir': str(work / 'investigations'),
        'level4_full_restore_snapshot_paths': [str(app / 'code'), str(app / 'config.yaml')],
        'level4_full_restore_repo': str(app / 'code'),
        'level4_full_restore_evidence_paths': [str(work / 'audit.jsonl'), str(work / 'absent')],
        'level4_full_restore_backup_root': str(work / 'store'),
        'level4_full_restore_baseline_paths': [str(app / 'code')],
        'level4_full_restore_config_paths': [str(app / 'config.yaml')],
        'level4_full_restore_remove_paths': [str(app / 'logs' / 'party.log')],
        'level4_full_restore_apply_command': [],
        'level4_full_restore_test_commands': [appctl + ['check']],
        'level4_full_restore_test_retries': 0,
        'level4_full_restore_audit_log': str(work / 'audit.jsonl'),
    }
    base.update(options)
    return base


def take_baseline_then_compromise(app, work):
    """The baseline backup of the code and config, then a backdoor committed and Party Mode turned on."""
    Store(str(work / 'store'), 'app').create([str(app / 'code'), str(app / 'config.yaml')], name='baseline')
    code = str(app / 'code')
    (app / 'code' / 'backdoor.py').write_text('# exfiltrates session context\n')
    git = ['git', '-C', code, '-c', 'user.name=Intruder', '-c', 'user.email=intruder@example.invalid']
    subprocess.run(git + ['add', 'backdoor.py'], check=True, capture_output=True)
    subprocess.run(git + ['commit', '-q', '-m', 'backdoor'], check=True, capture_output=True)
    config = (app / 'config.yaml').read_text()
    (app / 'config.yaml').write_text(config.replace('enabled: false', 'enabled: true', 1))
    (app / 'logs').mkdir(exist_ok=True)
    (app / 'logs' / 'party.log').write_text('party\n')


def level4_case(name, app, work, **options):
    return {'name': name, 'role': 'level4_full_restore', 'result': 'level4_full_restore_result',
            'vars': level4_vars(app, work, **options)}


def audit_events(work):
    return [json.loads(line) for line in (work / 'audit.jsonl').read_text().splitlines()]


def test_level4_preserves_the_compromise_restores_the_baseline_and_packs_checked_evidence(app, tmp_path):
    golden, config = trees.tree_digest(str(app / 'code')), (app / 'config.yaml').read_text()
    take_baseline_then_compromise(app, tmp_path)
    results = run_cases(tmp_path, [level4_case('restore', app, tmp_path), level4_case('again', app, tmp_path)])
    assert results['restore']['ok'] is True, results['restore']
    result = results['restore']['result']
    assert not (app / 'code' / 'backdoor.py').exists()
    assert (app / 'config.yaml').read_text() == config
    assert not (app / 'logs' / 'party.log').exists() and result['removed'] == [str(app / 'logs' / 'party.log')]
    package = tmp_path / 'investigations' / result['incident']
    assert result['investigation'] == str(package) and result['snapshot_tag'] == 'rollback-snapshot-r4'
    check = subprocess.run(['sha256sum', '--check', '--strict', 'SHA256SUMS'], cwd=package, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert [line.split()[1] for line in (package / 'SHA256SUMS').read_text().splitlines()] == [
        'evidence.tar.gz', 'repo.bundle', 'git-log.txt', 'approvals.json', 'restore.json']
    shown = subprocess.run(['git', 'bundle', 'list-heads', str(package / 'repo.bundle'), 'refs/tags/rollback-snapshot-r4'],
                           cwd=str(tmp_path), capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and 'rollback-snapshot-r4' in shown.stdout, shown.stderr
    restored = json.loads((package / 'restore.json').read_text())
    assert restored['baseline']['id'] == 'baseline' and restored['tests'] == [' '.join(
        [str(app / 'bin' / 'appctl'), '--root', str(app), 'check'])]
    assert json.loads((package / 'approvals.json').read_text())['approvers'] == ['ana', 'bo']
    archived = subprocess.check_output(['tar', '--list', '--gzip', '--file', result['archive']], text=True).split()
    assert result['incident'] + '/repo.bundle' in archived
    assert result['incident'] + '/INCIDENT.md' not in archived
    incident = (package / 'INCIDENT.md').read_text()
    assert '| ana | cto |' in incident and 'rollback-snapshot-r4' in incident
    snapshot = Store(str(tmp_path / 'store'), 'investigation')
    assert snapshot.verify('snapshot-r4')['ok'] is True
    with open(snapshot.manifest_path('snapshot-r4')) as handle:
        held = [entry['path'] for entry in json.load(handle)['entries']]
    assert str(app / 'code' / 'backdoor.py').lstrip('/') in held
    # the second run keeps the evidence of the first and restores nothing more
    assert results['again']['ok'] is True, results['again']
    assert trees.tree_digest(str(app / 'code')) == golden
    names = [event['event'] for event in audit_events(tmp_path)]
    assert names.count('approval_recorded') == 4 and names.count('full_restore_done') == 2
    assert names.index('approval_recorded') < names.index('full_restore_done')
    assert not [name for name in os.listdir(package) if name.startswith('.lastgood-tmp-')]


def test_level4_failure_names_the_step_and_what_was_done_and_keeps_the_evidence(app, tmp_path):
    take_baseline_then_compromise(app, tmp_path)
    head = subprocess.check_output(['git', '-C', str(app / 'code'), 'rev-parse', 'HEAD'], text=True)
    config = (app / 'config.yaml').read_text()
    # no such baseline: the restore refuses before it touches anything
    refused = run_cases(tmp_path, [level4_case('no baseline', app, tmp_path, level4_full_restore_baseline_id='gone')])
    assert refused['no baseline']['ok'] is False
    message = ' '.join(refused['no baseline']['msg'].split())
    assert message.startswith('Level 4 full restore of localhost failed while restoring the full baseline (app/gone)')
    assert 'Done before: approvals recorded' in message
    assert 'snapshot investigation/snapshot-r4 taken and verified' in message
    assert (app / 'code' / 'backdoor.py').exists() and (app / 'config.yaml').read_text() == config
    assert subprocess.check_output(['git', '-C', str(app / 'code'), 'rev-parse', 'HEAD'], text=True) == head
    # the tests fail after the restore: the host is left restored for the run's rescue, the evidence kept
    failed = run_cases(tmp_path, [level4_case('tests fail', app, tmp_path, level4_full_restore_test_commands=[['false']])])
    assert failed['tests fail']['ok'] is False
    message = ' '.join(failed['tests fail']['msg'].split())
    assert 'failed while running the test suite: false exited 1 after 1 tries' in message
    assert 'snapshot investigation/snapshot-r4 (taken by an earlier attempt) verified' in message
    assert 'the full baseline restored and verified from app/baseline' in message
    assert "The run's rescue puts the run's checkpoint back" in message
    assert not (app / 'code' / 'backdoor.py').exists()
    incidents = os.listdir(tmp_path / 'investigations')
    assert len(incidents) == 1
    assert sorted(os.listdir(tmp_path / 'investigations' / incidents[0])) == ['evidence.tar.gz', 'repo.bundle']
    events = [event['event'] for event in audit_events(tmp_path)]
    assert 'full_restore_done' not in events and events.count('approval_recorded') == 4


def test_level4_in_check_mode_checks_the_approvals_plans_the_restore_and_changes_nothing(app, tmp_path):
    take_baseline_then_compromise(app, tmp_path)
    before = trees.tree_digest(str(app)), trees.tree_digest(str(tmp_path / 'store'))
    results = run_cases(tmp_path, [
        level4_case('plan', app, tmp_path),
        level4_case('refused', app, tmp_path, level4_full_restore_approvals=[approval('ana', 'cto')]),
    ], '--check')
    assert results['plan']['ok'] is True, results['plan']
    assert results['plan']['result']['baseline'] == 'app/baseline'
    assert results['plan']['result']['snapshot_backup'] == 'investigation/snapshot-r4'
    assert results['refused']['ok'] is False
    assert 'Missing: security_architect' in ' '.join(results['refused']['msg'].split())
    assert (trees.tree_digest(str(app)), trees.tree_digest(str(tmp_path / 'store'))) == before
    assert not (tmp_path / 'investigations').exists() and not (tmp_path / 'audit.jsonl').exists()
