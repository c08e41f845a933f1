"""awx/configure.yml run for real against a controller address where nothing listens.

There is no AWX here.  Each awx.awx module still runs in full up to its first request: Ansible
templates the task, the module checks every argument against its argument spec (types,
choices, aliases), then fails to connect.  So a run in which every controller task fails with
"connection refused", and none with a parameter error, proves the playbook's arguments are
valid for the installed awx.awx; the recorded module arguments show what AWX would be sent.
"""

import json
import os
import shutil
import socket
import subprocess

import pytest
import yaml

from lib.awx import AWX_DIR, REPO_ROOT, job_templates, survey, template_extra_vars, templates_data, workflow

ANSIBLE_PLAYBOOK = os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-playbook')
REFUSED = 'Connection refused'
# Parallelism asked of configure.yml: every template gets the forks, the sliceable ones the slices.
FORKS = 25
SLICES = 4


@pytest.fixture(scope='module')
def closed_port():
    """A loopback port bound by nobody else and listened on by nobody: connections are refused."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope='module')
def configure_run(tmp_path_factory, closed_port):
    """{task name: [module results]} of one run of a copy of awx/configure.yml whose plays ignore errors."""
    work = tmp_path_factory.mktemp('awx')
    for name in ('vars', 'surveys'):
        shutil.copytree(os.path.join(AWX_DIR, name), str(work / name))
    with open(os.path.join(AWX_DIR, 'configure.yml')) as handle:
        playbook = yaml.safe_load(handle)
    for play in playbook:
        play['ignore_errors'] = True
    (work / 'configure.yml').write_text(yaml.safe_dump(playbook, sort_keys=False))
    extra = {
        'lastgood_awx_controller_host': 'https://127.0.0.1:%d' % closed_port,
        'lastgood_awx_controller_oauthtoken': 'not-a-token',
        'lastgood_awx_project_scm_url': 'https://git.invalid/ops/lastgood-awx-project.git',
        'lastgood_awx_inventory': 'fleet',
        'lastgood_awx_credentials': ['fleet ssh'],
        'lastgood_awx_execution_environment_image': 'registry.invalid/lastgood-rollback-ee:0.1.0',
        'lastgood_awx_forks': FORKS,
        'lastgood_awx_job_slice_count': SLICES,
    }
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'), ANSIBLE_STDOUT_CALLBACK='json',
               ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false')
    result = subprocess.run([ANSIBLE_PLAYBOOK, str(work / 'configure.yml'), '-e', json.dumps(extra)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tasks = {}
    for play in json.loads(result.stdout)['plays']:
        for task in play['tasks']:
            outcome = task['hosts']['localhost']
            tasks[task['task']['name']] = outcome.get('results', [outcome])
    return tasks


def _controller_results(configure_run):
    return [(name, result) for name, results in configure_run.items() for result in results
            if 'invocation' in result and 'controller_host' in result['invocation']['module_args']]


def test_every_controller_task_gets_past_argument_checking_to_the_controller_call(configure_run):
    results = _controller_results(configure_run)
    assert len(results) == 3 + len(job_templates()) + len(templates_data()['lastgood_awx_schedules'])
    not_refused = [(name, result.get('msg')) for name, result in results if REFUSED not in result.get('msg', '')]
    assert not not_refused


def test_each_job_template_carries_its_survey_and_playbook(configure_run):
    results = configure_run['Create or update a job template per playbook, with its survey']
    sent = dict((result['item']['key'], result['invocation']['module_args']) for result in results)
    assert sorted(sent) == sorted(job_templates())
    for key, definition in job_templates().items():
        assert sent[key]['survey_spec'] == survey(definition['survey'])
        assert sent[key]['survey_enabled'] is True
        assert sent[key]['playbook'] == definition['playbook']


def test_templates_expose_forks_and_slice_only_where_slicing_is_safe(configure_run):
    results = configure_run['Create or update a job template per playbook, with its survey']
    sent = dict((result['item']['key'], result['invocation']['module_args']) for result in results)
    for key, definition in job_templates().items():
        assert sent[key]['forks'] == FORKS and sent[key]['ask_forks_on_launch'] is True
        assert sent[key]['ask_job_slice_count_on_launch'] is definition['sliceable']
        assert sent[key]['job_slice_count'] == (SLICES if definition['sliceable'] else 1), key
    assert [key for key in job_templates() if job_templates()[key]['sliceable']], 'no template may be sliced'


def test_templates_send_their_extra_vars_unrendered_for_awx_to_template(configure_run):
    results = configure_run['Create or update a job template per playbook, with its survey']
    for result in results:
        sent = result['invocation']['module_args']['extra_vars']
        assert sent == template_extra_vars(result['item']['key'])
        assert ('lastgood_run_id' in sent) is result['item']['value']['run']
        assert all('{{' in value for value in sent.values())


def test_workflow_nodes_name_the_job_templates_created_alongside(configure_run):
    [result] = configure_run['Create or update the safe change workflow']
    nodes = result['invocation']['module_args']['workflow_nodes']
    names = set(result['invocation']['module_args']['name'] for result in
                configure_run['Create or update a job template per playbook, with its survey'])
    assert [node['identifier'] for node in nodes] == [node['identifier'] for node in workflow()['nodes']]
    for node in nodes:
        template = node['unified_job_template']
        if template['type'] == 'job_template':
            assert template['name'] in names
            assert template['organization']['name'] == 'Default'
        else:
            assert template['type'] == 'workflow_approval'
            assert isinstance(template['timeout'], int) or str(template['timeout']).isdigit()


def test_schedules_launch_the_checkpoint_template_created_alongside(configure_run):
    results = configure_run['Create or update the periodic checkpoint schedules']
    names = set(result['invocation']['module_args']['name'] for result in
                configure_run['Create or update a job template per playbook, with its survey'])
    sent = dict((result['item']['key'], result['invocation']['module_args']) for result in results)
    assert sorted(sent) == sorted(templates_data()['lastgood_awx_schedules'])
    for key, schedule in templates_data()['lastgood_awx_schedules'].items():
        assert sent[key]['unified_job_template'] in names
        assert sent[key]['unified_job_template'].endswith('Checkpoint')
        assert sent[key]['rrule'].startswith('DTSTART:20260101T000000Z RRULE:FREQ=')
        assert sent[key]['enabled'] is True
        assert set(sent[key]['extra_data']) == set(schedule['extra_data'])
        assert all('{{' not in json.dumps(value) for value in sent[key]['extra_data'].values())


@pytest.mark.parametrize('playbook, config', [
    (os.path.join(AWX_DIR, 'configure.yml'), os.path.join(REPO_ROOT, 'ansible.cfg')),
    (os.path.join(AWX_DIR, 'project', 'start-workflow.yml'), os.path.join(AWX_DIR, 'project', 'ansible.cfg')),
])
def test_awx_playbooks_pass_the_syntax_check(playbook, config):
    env = dict(os.environ, ANSIBLE_CONFIG=config)
    result = subprocess.run([ANSIBLE_PLAYBOOK, '--syntax-check', playbook], cwd=os.path.dirname(config), env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_controller_settings_stop_before_anything_is_sent():
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'))
    result = subprocess.run([ANSIBLE_PLAYBOOK, os.path.join(AWX_DIR, 'configure.yml')], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert 'lastgood_awx_project_scm_url' in result.stdout
    assert 'Nothing was changed on the controller' in result.stdout
    assert 'Create or update' not in result.stdout
