"""A null for every value AWX can hand a job is taken as empty or absent (ansible/awx#16205).

AWX writes survey answers, workflow node data, artifacts and launch variables with the !unsafe tag
(tests/lib/awx.py, awx_extravars), and ansible-core 2.19 loads ``!unsafe ''`` as None.  For every
survey question of every template (and of the "safe change" workflow) and every workflow node
datum (of the gated rollback workflows too), the job's variables are built as AWX writes them
with that value an empty string -- a None once Ansible loaded it -- and every role option of the
playbooks behind the template that reads the variable is rendered and validated against the
role's argument spec, as Ansible's role argument validation does.  The jobs themselves run on the
fleet with their survey defaults (tests/fleet/test_awx_jobs.py).
"""

import os

import pytest
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from lib.awx import (PLAYBOOK_DIR, gated_workflows, job_templates, load_yaml, loaded_job_vars, plays,
                     referenced_lastgood_vars, role_calls, role_options, survey, targets, template_key, trusted, workflow)


# Questions whose answer is a string (a multiselect answers with a list of its choices, an integer
# question with a number).  A multiple choice answer is one of its choices, never empty, but the
# same variable given at launch may be.
STRING_QUESTIONS = ('text', 'textarea', 'password', 'multiplechoice')


def _inputs():
    """(template, variable, where it comes from) for every value AWX may hand a job as a string."""
    found = []
    workflow_questions = [q['variable'] for q in survey(workflow()['survey'])['spec'] if q['type'] in STRING_QUESTIONS]
    for key, definition in sorted(job_templates().items()):
        for question in survey(definition['survey'])['spec']:
            if question['type'] in STRING_QUESTIONS:
                found.append((key, question['variable'], 'survey'))
        for name in workflow_questions:
            found.append((key, name, 'workflow survey'))
    for node in workflow()['nodes']:
        key = template_key(node)
        for name, value in (node.get('extra_data') or {}).items():
            if isinstance(value, str):
                found.append((key, name, 'node ' + node['identifier']))
    # The gated rollback workflows ask their template's survey (above); their nodes' data:
    for workflow_key, nodes in gated_workflows().items():
        for node in nodes:
            for name, value in (node.get('extra_data') or {}).items():
                if isinstance(value, str):
                    found.append((template_key(node), name, 'gated %s node %s' % (workflow_key, node['identifier'])))
    return sorted(set(found))


INPUTS = _inputs()


def _play_variables(play, playbook):
    """What a play of a collection playbook defines before its roles run: its vars files, then its vars."""
    variables = {}
    for vars_file in play.get('vars_files') or []:
        variables.update(trusted(load_yaml(os.path.join(os.path.dirname(playbook), vars_file)) or {}))
    variables.update(trusted(play.get('vars') or {}))
    return variables


def _holds_none(value):
    if isinstance(value, dict):
        return any(_holds_none(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_none(item) for item in value)
    return value is None


def _defaults():
    variables = {}
    for name in ('run_defaults.yml', 'level_defaults.yml'):
        path = os.path.join(PLAYBOOK_DIR, 'vars', name)
        if os.path.exists(path):
            variables.update(trusted(load_yaml(path) or {}))
    return variables


def test_every_survey_question_and_node_datum_is_checked():
    names = set(name for _key, name, _source in INPUTS)
    assert {'lastgood_health_url', 'lastgood_verify_backup', 'lastgood_restore_id', 'lastgood_workflow_step'} <= names
    assert {'lastgood_run_until', 'lastgood_run_action', 'lastgood_abort_missing', 'lastgood_reason'} <= names


def _option_errors(key, name, source, job_vars):
    """(role options checked, errors) of the role options that read ``name`` in the playbooks of ``key``."""
    errors, checked = [], []
    for playbook in targets(key):
        variables = _defaults()
        for play in plays(playbook):
            variables.update(_play_variables(play, playbook))
        variables.update(job_vars)
        for role, entry_point, call_vars in role_calls(playbook):
            options = role_options(role, entry_point) or {}
            for option, value in sorted(call_vars.items()):
                if option not in options or name not in referenced_lastgood_vars(value):
                    continue
                checked.append('%s.%s' % (role, option))
                try:
                    rendered = Templar(loader=DataLoader(), variables=variables).template(trusted(value))
                except AnsibleError as exc:
                    errors.append('%s %s: %s = %r does not render: %s' % (role, entry_point, option, value, exc))
                    continue
                if _holds_none(rendered) and options[option].get('type') != 'raw':
                    # Role argument validation lets a None through for a str option, and the role's
                    # tasks then fail on it (a None has no length): the playbook resolves it first.
                    errors.append('%s %s (%s from %s): receives %r' % (role, entry_point, option, source, rendered))
                result = ArgumentSpecValidator({option: options[option]}).validate({option: rendered})
                errors += ['%s %s (%s from %s): %s' % (role, entry_point, option, source, message)
                           for message in result.error_messages]
    return checked, errors


def test_the_check_reaches_the_role_options_of_the_values_that_failed_under_awx():
    job_vars = loaded_job_vars('rollback-level2', workflow_vars={'lastgood_health_url': ''})
    assert 'level2_config.level2_config_health_url' in _option_errors(
        'rollback-level2', 'lastgood_health_url', 'survey', job_vars)[0]
    job_vars = loaded_job_vars('verify', workflow_vars={'lastgood_verify_backup': ''})
    assert 'verify.verify_backup' in _option_errors('verify', 'lastgood_verify_backup', 'node', job_vars)[0]


@pytest.mark.parametrize('key, name, source', INPUTS)
def test_a_null_is_accepted_by_every_role_option_it_reaches(key, name, source):
    job_vars = loaded_job_vars(key, awx_vars={'awx_job_id': 1}, workflow_vars={name: ''})
    assert job_vars[name] is None, 'AWX tags it !unsafe, so Ansible loads it as None'
    errors = _option_errors(key, name, source, job_vars)[1]
    assert not errors, '\n'.join(errors)
