"""Secrets and notifications of awx/configure.yml (awx/vars/notifications.yml) against the code they feed.

The credential type injects what the notify code reads (plugins/plugin_utils/_notify.py), in the form AWX's
API accepts (awx/main/fields.py, CredentialTypeInputField and CredentialTypeInjectorField); the webhook
credential goes to exactly the job templates whose playbooks notify.
"""

import os
import re

import yaml

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _notify
from lib.awx import AWX_DIR, imported_playbooks, job_templates, load_yaml, plays, wrapper_path

NOTIFICATIONS = load_yaml(os.path.join(AWX_DIR, 'vars', 'notifications.yml'))
CREDENTIAL_TYPE = NOTIFICATIONS['lastgood_awx_webhook_credential_type']
_NOTIFY_ACTIONS = ('lastgood.rollback.fleet_notify', 'fleet_notify')
_NOTIFY_ROLES = ('lastgood.rollback.notify', 'notify')
_INCLUDES = ('include_tasks', 'import_tasks', 'ansible.builtin.include_tasks', 'ansible.builtin.import_tasks')
_ROLES = ('include_role', 'import_role', 'ansible.builtin.include_role', 'ansible.builtin.import_role')
# AWX's pattern for an environment variable an injector sets, and the names it refuses (ENV_BLOCKLIST, in part).
_ENV_NAME = re.compile(r'^[a-zA-Z_]+[a-zA-Z0-9_]*$')
_AWX_RESERVED = ('PATH', 'PYTHONPATH', 'VIRTUAL_ENV', 'JOB_ID', 'AWX_HOST', 'CALLBACK_QUEUE', 'JOB_CALLBACK_DEBUG')


def _notifies(tasks, base, notifications):
    """Whether any of ``tasks`` (and the task files they include) notifies, with lastgood_notifications as given."""
    for task in tasks or []:
        scope = notifications
        if 'lastgood_notifications' in (task.get('vars') or {}):
            scope = task['vars']['lastgood_notifications']
        if scope is not False:
            if any(action in task for action in _NOTIFY_ACTIONS):
                return True
            if any(action in task and task[action].get('name') in _NOTIFY_ROLES for action in _ROLES):
                return True
        for section in ('block', 'rescue', 'always'):
            if _notifies(task.get(section), base, scope):
                return True
        for action in _INCLUDES:
            target = task.get(action)
            target = target.get('file') if isinstance(target, dict) else target
            if isinstance(target, str) and '{{' not in target:
                path = os.path.join(base, target)
                if _notifies(load_yaml(path), os.path.dirname(path), scope):
                    return True
    return False


def template_notifies(key):
    for playbook in imported_playbooks(wrapper_path(key)):
        for play in plays(playbook):
            setting = (play.get('vars') or {}).get('lastgood_notifications', True)
            if any(_notifies(play.get(section), os.path.dirname(playbook), setting)
                   for section in ('pre_tasks', 'tasks', 'post_tasks')):
                return True
    return False


def test_the_webhook_credential_goes_to_exactly_the_templates_whose_playbooks_notify():
    notifying = sorted(key for key in job_templates() if template_notifies(key))
    assert notifying, 'no template notifies: the walk over the playbooks found nothing'
    assert sorted(NOTIFICATIONS['lastgood_awx_notifying_templates']) == notifying


def test_the_walk_sees_a_run_that_turns_its_notifications_off():
    # checkpoint.yml sets lastgood_notifications: false for its whole run (no start or end notice).
    assert 'checkpoint' in job_templates() and not template_notifies('checkpoint')
    assert template_notifies('rollback-level2')


def test_the_credential_type_injects_the_environment_the_notify_code_reads():
    injected = CREDENTIAL_TYPE['injectors']
    assert sorted(injected) == ['env'], 'an extra_vars injector would show the token in the job details'
    assert injected['env'] == {_notify.URL_ENV: '{{ url }}', _notify.TOKEN_ENV: '{{ token }}'}
    for name in injected['env']:
        assert _ENV_NAME.match(name) and not name.startswith('ANSIBLE_') and name not in _AWX_RESERVED


def test_the_credential_type_inputs_are_valid_for_awx_and_the_token_is_secret():
    assert CREDENTIAL_TYPE['kind'] in ('cloud', 'net'), 'AWX takes custom credential types of these kinds only'
    fields = dict((field['id'], field) for field in CREDENTIAL_TYPE['inputs']['fields'])
    assert sorted(fields) == ['token', 'url']
    for field in fields.values():
        assert field['label'] and field['type'] in ('string', 'boolean')
        assert set(field) <= {'id', 'label', 'type', 'format', 'secret', 'help_text', 'multiline', 'choices'}
    assert fields['token']['secret'] is True and not fields['url'].get('secret')
    assert fields['url'].get('format') == 'url'
    assert CREDENTIAL_TYPE['inputs']['required'] == ['url']


def test_the_injectors_reach_awx_unrendered():
    with open(os.path.join(AWX_DIR, 'vars', 'notifications.yml')) as handle:
        text = handle.read()
    for name in (_notify.URL_ENV, _notify.TOKEN_ENV):
        assert re.search(r'^\s+%s: !unsafe "\{\{ \w+ \}\}"$' % name, text, re.MULTILINE), name


def test_no_template_or_workflow_carries_the_webhook_token_as_an_extra_variable():
    data = yaml.safe_dump(load_yaml(os.path.join(AWX_DIR, 'vars', 'templates.yml')))
    assert 'webhook_token' not in data and 'lastgood_awx_webhook' not in data


def test_the_installed_workflow_node_module_sends_an_approval_timeout_of_0():
    # configure.yml sets the approval timeout with awx.awx.workflow_job_template_node because that module puts
    # the timeout in the approval template's request whenever it is given (0 too), unlike
    # workflow_job_template, which sends a node's fields only when they are truthy.
    from ansible_collections.awx.awx.plugins.modules import workflow_job_template_node
    with open(workflow_job_template_node.__file__) as handle:
        source = handle.read()
    assert re.search(r"if approval_node\.get\('timeout'\) is not None:\s+new_fields\['timeout'\] = "
                     r"approval_node\['timeout'\]", source)
    assert "endpoint=approval_endpoint" in source.split("approval_node.get('timeout')", 1)[1]
