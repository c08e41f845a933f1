"""Job template extra vars that turn survey answers into what the playbooks take.

A survey answers with strings, numbers and lists of strings; where a playbook wants a list of
mappings the template's extra vars build it.  Rendered here with Ansible's own templating from
the variables AWX would start the job with (tests/lib/awx.py).
"""

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from lib.awx import loaded_job_vars, survey, survey_defaults, template_extra_vars


def _rendered(key, name, answers):
    # As Ansible loads AWX's extravars file: the template's own extra vars are templates, the
    # answers !unsafe strings (an empty one a None).
    variables = loaded_job_vars(key, workflow_vars=answers, awx_vars={'awx_job_id': 7})
    return Templar(loader=DataLoader(), variables=variables).template(variables[name])


APPROVALS = {
    'lastgood_approval_cto_who': 'Ada Lovelace', 'lastgood_approval_cto_when': '2026-11-22T01:00:00Z',
    'lastgood_approval_security_architect_who': 'Alan Turing',
    'lastgood_approval_security_architect_when': '2026-11-22T01:05:00Z',
    'lastgood_approval_reference': 'INC-42 bridge call',
}


def test_level4_template_turns_the_survey_approvals_into_lastgood_approvals():
    assert _rendered('rollback-level4', 'lastgood_approvals', APPROVALS) == [
        {'who': 'Ada Lovelace', 'role': 'cto', 'when': '2026-11-22T01:00:00Z', 'reference': 'INC-42 bridge call'},
        {'who': 'Alan Turing', 'role': 'security_architect', 'when': '2026-11-22T01:05:00Z',
         'reference': 'INC-42 bridge call'},
    ]


def test_level4_template_leaves_out_an_approval_nobody_gave():
    answers = dict(APPROVALS, lastgood_approval_security_architect_who='')
    assert [approval['role'] for approval in _rendered('rollback-level4', 'lastgood_approvals', answers)] == ['cto']
    assert _rendered('rollback-level4', 'lastgood_approvals', {}) == []


def test_level4_approval_questions_have_no_default_so_nobody_approves_by_default():
    questions = [q for q in survey('rollback-level4')['spec'] if q['variable'].endswith(('_who', '_when'))]
    assert len(questions) == 4
    assert not set(q['variable'] for q in questions) & set(survey_defaults(survey('rollback-level4')))


def test_deploy_template_turns_the_survey_change_into_lastgood_deploy_config():
    answers = {'lastgood_deploy_config_file': '/srv/app/config.yaml',
               'lastgood_deploy_config_values': 'partyMode.maxAgents: 4\npartyMode.enabled: false\n'}
    assert _rendered('deploy-staged', 'lastgood_deploy_config', answers) == [
        {'path': '/srv/app/config.yaml', 'values': {'partyMode.maxAgents': 4, 'partyMode.enabled': False}}]


def test_deploy_template_with_the_survey_defaults_changes_no_configuration():
    assert _rendered('deploy-staged', 'lastgood_deploy_config', {}) == []
    assert _rendered('deploy-staged', 'lastgood_deploy_config', {'lastgood_deploy_config_values': ''}) == []


def test_every_template_extra_var_is_left_for_awx_to_render():
    for key in ('rollback-level4', 'deploy-staged', 'rollback-level2'):
        assert all('{{' in value for value in template_extra_vars(key).values())
