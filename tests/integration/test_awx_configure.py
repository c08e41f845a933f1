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

from lib.awx import (AWX_DIR, REPO_ROOT, gated_workflow, gated_workflow_definitions, job_templates, load_yaml, survey,
                     template_extra_vars, templates_data, workflow)

ANSIBLE_PLAYBOOK = os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-playbook')
REFUSED = 'Connection refused'
# Parallelism asked of configure.yml: every template gets the forks, the sliceable ones the slices.
FORKS = 25
SLICES = 4
# The webhook and its token (a vault's, in real use): the token goes to AWX only in the credential and the
# notification template, never into a template's or the workflow's variables.
WEBHOOK_URL = 'https://hooks.invalid/rollback'
WEBHOOK_TOKEN = 'not-a-real-webhook-token'
NOTIFICATIONS = load_yaml(os.path.join(AWX_DIR, 'vars', 'notifications.yml'))
NOTIFYING = NOTIFICATIONS['lastgood_awx_notifying_templates']
# Tasks whose arguments hold a secret: the playbook hides them (no_log); the copy run here shows them.
SECRET_TASKS = ('Create or update the notification template AWX sends on job failure, success and approval',)


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
        for task in play['tasks']:
            if task['name'] in SECRET_TASKS:
                task['no_log'] = False
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
        'lastgood_awx_webhook_url': WEBHOOK_URL,
        'lastgood_awx_webhook_token': WEBHOOK_TOKEN,
        # "Wait forever": the value awx.awx.workflow_job_template drops (it sends only truthy node fields).
        'lastgood_awx_approval_timeout': 0,
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


def _sent(configure_run, name):
    """{loop item key or None: module arguments} of a task of the run."""
    return dict(((result.get('item') or {}).get('key') if isinstance(result.get('item'), dict) else None,
                 result['invocation']['module_args']) for result in configure_run[name])


def _controller_results(configure_run):
    return [(name, result) for name, results in configure_run.items() for result in results
            if 'invocation' in result and 'controller_host' in result['invocation']['module_args']]


def test_every_controller_task_gets_past_argument_checking_to_the_controller_call(configure_run):
    results = _controller_results(configure_run)
    approvals = [node for node in workflow()['nodes'] if node['unified_job_template']['type'] == 'workflow_approval']
    # execution environment, project, workflow; credential type, credential, notification template; the templates,
    # the gated workflows, the approval nodes and the schedules.
    schedules = templates_data()['lastgood_awx_schedules']
    assert len(results) == 6 + len(job_templates()) + len(gated_workflow_definitions()) + len(approvals) + len(schedules)
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


GATED_TASK = 'Create or update the gated rollback workflows'


def test_each_gated_workflow_runs_its_own_template_created_alongside_with_its_survey(configure_run):
    sent = _sent(configure_run, GATED_TASK)
    templates = _sent(configure_run, 'Create or update a job template per playbook, with its survey')
    assert sorted(sent) == sorted(gated_workflow_definitions())
    for key, args in sent.items():
        # what Ansible rendered in the task is what tests/lib/awx.py renders for the unit tests
        assert args['workflow_nodes'] == gated_workflow(key), key
        names = [node['unified_job_template']['name'] for node in args['workflow_nodes']]
        assert names[0] == templates['start-workflow']['name']
        assert set(names[1:]) == {templates[key]['name']}, key
        assert templates[key]['job_slice_count'] == SLICES, 'every node runs sliced'
        assert args['survey_spec'] == survey(job_templates()[key]['survey'])
        assert args['survey_enabled'] is True and args['allow_simultaneous'] is False
        for event in ('error', 'success', 'approvals'):
            assert args['notification_templates_' + event] == ['lastgood: job status'], (key, event)


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


def test_the_credential_type_injects_the_webhook_into_the_environment_unrendered(configure_run):
    [sent] = _sent(configure_run, 'Create or update the credential type of the notification webhook').values()
    assert sent['kind'] == 'cloud'
    assert sent['injectors'] == {'env': {'LASTGOOD_WEBHOOK_URL': '{{ url }}', 'LASTGOOD_WEBHOOK_TOKEN': '{{ token }}'}}
    fields = dict((field['id'], field) for field in sent['inputs']['fields'])
    assert fields['token']['secret'] is True and sent['inputs']['required'] == ['url']


def test_the_webhook_credential_holds_the_url_and_the_token_and_is_not_logged(configure_run):
    [result] = configure_run['Create or update the credential of the notification webhook']
    sent = result['invocation']['module_args']
    assert sent['credential_type'] == NOTIFICATIONS['lastgood_awx_webhook_credential_type']['name'].replace(
        '{{ lastgood_awx_name_prefix }}', 'lastgood: ')
    assert sent['inputs'] == {'url': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER', 'token': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'}


def test_the_webhook_credential_is_attached_to_every_template_that_notifies_and_no_other(configure_run):
    sent = _sent(configure_run, 'Create or update a job template per playbook, with its survey')
    for key in job_templates():
        expected = ['fleet ssh'] + (['lastgood: notification webhook'] if key in NOTIFYING else [])
        assert sent[key]['credentials'] == expected, key


def test_the_token_is_in_no_template_variables_and_nowhere_but_the_notification_template(configure_run):
    for name, results in configure_run.items():
        if name not in SECRET_TASKS:
            assert WEBHOOK_TOKEN not in json.dumps(results), name


def test_the_notification_template_posts_to_the_webhook_with_the_token(configure_run):
    [sent] = _sent(configure_run, SECRET_TASKS[0]).values()
    assert sent['name'] == 'lastgood: job status' and sent['notification_type'] == 'webhook'
    assert sent['notification_configuration'] == {
        'url': WEBHOOK_URL, 'http_method': 'POST', 'headers': {'Authorization': 'Bearer ' + WEBHOOK_TOKEN},
        'disable_ssl_verification': False, 'username': '', 'password': ''}


def test_the_playbook_hides_the_arguments_of_tasks_holding_a_secret():
    with open(os.path.join(AWX_DIR, 'configure.yml')) as handle:
        [play] = yaml.safe_load(handle)
    hidden = [task['name'] for task in play['tasks'] if task.get('no_log') is True]
    assert sorted(hidden) == sorted(SECRET_TASKS)


def test_every_template_and_the_workflow_notify_on_failure_success_and_approval(configure_run):
    for key, sent in _sent(configure_run, 'Create or update a job template per playbook, with its survey').items():
        assert sent['notification_templates_error'] == ['lastgood: job status'], key
        assert sent['notification_templates_success'] == ['lastgood: job status'], key
    [sent] = _sent(configure_run, 'Create or update the safe change workflow').values()
    for event in ('error', 'success', 'approvals'):
        assert sent['notification_templates_' + event] == ['lastgood: job status'], event


def test_an_approval_timeout_of_0_is_sent_to_the_approval_node(configure_run):
    approvals = [node for node in workflow()['nodes'] if node['unified_job_template']['type'] == 'workflow_approval']
    sent = [result['invocation']['module_args'] for result in
            configure_run["Set how long the workflow's approvals wait (the one before a Level 4 full restore)"]]
    assert [args['identifier'] for args in sent] == [node['identifier'] for node in approvals]
    for args in sent:
        assert args['workflow_job_template'] == 'lastgood: Safe change'
        assert args['approval_node']['timeout'] == 0 and args['approval_node']['name']
        assert args['unified_job_template'] is None, 'the node keeps its approval template'


def test_an_email_notification_without_its_smtp_settings_stops_before_anything_is_sent():
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, 'ansible.cfg'))
    extra = {'lastgood_awx_project_scm_url': 'https://git.invalid/p.git', 'lastgood_awx_inventory': 'fleet',
             'lastgood_awx_credentials': ['fleet ssh'], 'lastgood_awx_notification_type': 'email'}
    result = subprocess.run([ANSIBLE_PLAYBOOK, os.path.join(AWX_DIR, 'configure.yml'), '-e', json.dumps(extra)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert 'lastgood_awx_notification_email' in result.stdout
    assert 'Nothing was changed on the controller' in result.stdout
    assert 'Create or update' not in result.stdout
