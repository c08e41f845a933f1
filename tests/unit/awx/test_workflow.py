"""The "safe change" workflow: its shape, what each node passes, and the run ids its nodes get.

AWX itself is not here; the variables each job starts with are computed with the rules of
tests/lib/awx.py (taken from AWX's source) and rendered with Ansible's own templating.
"""

import re

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from lib.awx import (AWX_DIR, job_templates, load_yaml, loaded_job_vars, playbook_inputs, role_entry_points, role_options,
                     run_extra_vars, success_chain, survey, survey_answer_errors, targets, template_key, workflow,
                     workflow_graph)

RUN_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$')
CHECKPOINT_NAME_MAX = 100  # checkpoint names are at most 100 characters: "run-" + the run id
CHANGE_NODES = ('deploy-staging', 'verify-staging', 'deploy-canary', 'verify-production')


def _nodes():
    return dict((node['identifier'], node) for node in workflow()['nodes'])


def _edges(node, kind):
    return [target['identifier'] for target in (node.get('related') or {}).get(kind) or []]


def _success_chain():
    return success_chain(workflow_graph(workflow()['nodes']))


def _rendered_run_id(variables):
    """The run id of a job whose extra vars Ansible loaded from AWX's extravars file (loaded_job_vars)."""
    return Templar(loader=DataLoader(), variables=variables).template(variables['lastgood_run_id'])


def _run_id(identifier, workflow_id='20261122T000000Z-abcdef'):
    node = _nodes()[identifier]
    return _rendered_run_id(loaded_job_vars(template_key(node), node=node,
                                            artifacts={'lastgood_workflow_run_id': workflow_id},
                                            awx_vars={'awx_job_id': 1000, 'awx_workflow_job_id': 99}))


def test_node_identifiers_are_unique_and_every_edge_leads_to_a_node():
    identifiers = [node['identifier'] for node in workflow()['nodes']]
    assert len(identifiers) == len(set(identifiers))
    for node in workflow()['nodes']:
        for kind in ('success_nodes', 'failure_nodes', 'always_nodes'):
            assert set(_edges(node, kind)) <= set(identifiers), node['identifier']


def test_every_job_node_runs_a_template_the_playbook_creates():
    for node in workflow()['nodes']:
        if node['unified_job_template']['type'] == 'job_template':
            assert template_key(node), node['identifier']


def test_the_only_root_is_the_node_that_chooses_the_workflow_id():
    reached = set(target for node in workflow()['nodes'] for kind in ('success_nodes', 'failure_nodes', 'always_nodes')
                  for target in _edges(node, kind))
    roots = [node['identifier'] for node in workflow()['nodes'] if node['identifier'] not in reached]
    assert roots == ['start']
    assert template_key(_nodes()['start']) == 'start-workflow'


def test_success_path_is_preflight_checkpoint_staging_verify_canary_verify():
    chain = [template_key(_nodes()[identifier]) for identifier in _success_chain()]
    assert chain == ['start-workflow', 'preflight', 'verify', 'checkpoint', 'deploy-staged', 'verify',
                     'deploy-staged', 'verify']
    limits = [_nodes()[identifier].get('limit') for identifier in _success_chain()]
    assert limits[4:] == ['staging', 'staging', 'production', 'production']


def test_the_checkpoint_is_marked_last_known_good_only_after_the_current_state_verified():
    chain = _success_chain()
    checkpoint = _nodes()['checkpoint']
    assert checkpoint['extra_data']['lastgood_mark_lastgood'] == 'true'
    assert template_key(_nodes()[chain[chain.index('checkpoint') - 1]]) == 'verify'


def test_every_failed_deployment_or_verification_goes_to_the_level2_rollback():
    for identifier in CHANGE_NODES:
        assert _edges(_nodes()[identifier], 'failure_nodes') == ['rollback-level2'], identifier
    assert template_key(_nodes()['rollback-level2']) == 'rollback-level2'


def test_nothing_before_the_deployment_leads_to_a_rollback():
    for identifier in _success_chain()[:_success_chain().index('deploy-staging')]:
        assert not _edges(_nodes()[identifier], 'failure_nodes'), identifier


def test_level4_runs_only_after_an_approval_of_a_failed_level2():
    nodes = _nodes()
    assert _edges(nodes['rollback-level2'], 'failure_nodes') == ['approve-level4']
    assert nodes['approve-level4']['unified_job_template']['type'] == 'workflow_approval'
    parents = [node['identifier'] for node in workflow()['nodes']
               if any('rollback-level4' in _edges(node, kind) for kind in ('success_nodes', 'failure_nodes',
                                                                           'always_nodes'))]
    assert parents == ['approve-level4']
    assert _edges(nodes['approve-level4'], 'success_nodes') == ['rollback-level4']


def test_node_extra_data_is_an_answer_the_node_templates_survey_accepts():
    for node in workflow()['nodes']:
        key = template_key(node)
        if not key:
            continue
        questions = dict((q['variable'], q) for q in survey(job_templates()[key]['survey'])['spec'])
        for name, value in (node.get('extra_data') or {}).items():
            if name in questions:
                assert not survey_answer_errors(questions[name], value), (node['identifier'], name)


def test_node_extra_data_is_taken_by_the_node_playbook_or_its_run_id():
    consumed_by_run_id = set(re.findall(r'\b(lastgood_\w+)', run_extra_vars()['lastgood_run_id']))
    for node in workflow()['nodes']:
        key = template_key(node)
        for name in node.get('extra_data') or {}:
            taken = set()
            for path in targets(key):
                taken |= playbook_inputs(path)
                for role, entry_point in role_entry_points(path):
                    taken |= set(role_options(role, entry_point) or {})
            if job_templates()[key]['run']:
                taken |= consumed_by_run_id
            assert name in taken, (node['identifier'], name)


def test_workflow_survey_never_overrides_what_a_node_sets():
    # A workflow's own variables win over every node's extra data in AWX.
    asked = set(question['variable'] for question in survey(workflow()['survey'])['spec'])
    for node in workflow()['nodes']:
        assert not asked & set(node.get('extra_data') or {}), node['identifier']


def test_templates_accept_the_prompts_the_nodes_give():
    configure = load_yaml(AWX_DIR + '/configure.yml')
    [task] = [task for task in configure[0]['tasks'] if 'awx.awx.job_template' in task]
    args = task['awx.awx.job_template']
    assert args['ask_variables_on_launch'] is True
    assert args['ask_limit_on_launch'] is True


def test_every_run_node_gets_its_own_run_id_from_the_workflow_id():
    run_nodes = [node['identifier'] for node in workflow()['nodes']
                 if template_key(node) and job_templates()[template_key(node)]['run']]
    ids = dict((identifier, _run_id(identifier)) for identifier in run_nodes)
    assert len(set(ids.values())) == len(ids), ids
    for identifier, run_id in ids.items():
        assert run_id.startswith('20261122T000000Z-abcdef-'), identifier
        assert RUN_ID.match(run_id) and len('run-' + run_id) <= CHECKPOINT_NAME_MAX, run_id


def test_a_run_nodes_id_does_not_depend_on_the_awx_job_so_every_slice_shares_it():
    assert _run_id('deploy-canary') == _run_id('deploy-canary')
    node = _nodes()['rollback-level2']
    slices = [_rendered_run_id(loaded_job_vars('rollback-level2', node=node, artifacts={'lastgood_workflow_run_id': 'W1'},
                                               awx_vars={'awx_job_id': job, 'awx_workflow_job_id': 55}))
              for job in (1001, 1002, 1003)]
    assert slices == ['W1-rollback-level2'] * 3


@pytest.mark.parametrize('awx_vars, expected', [
    ({'awx_job_id': 42}, 'awx-42'),
    ({'awx_job_id': 42, 'awx_workflow_job_id': 7}, 'awx-7'),
])
def test_a_template_launched_on_its_own_is_named_after_its_job_or_slice_workflow(awx_vars, expected):
    assert _rendered_run_id(loaded_job_vars('rollback-level2', awx_vars=awx_vars)) == expected


def test_a_null_workflow_id_or_step_is_left_out_of_the_run_id():
    # An empty answer or node datum reaches the job as !unsafe '' -- a None under ansible-core 2.19.
    variables = loaded_job_vars('rollback-level2', artifacts={'lastgood_workflow_run_id': ''},
                                workflow_vars={'lastgood_workflow_step': ''}, awx_vars={'awx_job_id': 42})
    assert variables['lastgood_workflow_run_id'] is None and variables['lastgood_workflow_step'] is None
    assert _rendered_run_id(variables) == 'awx-42'


def test_a_run_id_given_at_launch_wins_over_the_template_expression():
    variables = loaded_job_vars('rollback-level2', workflow_vars={'lastgood_run_id': 'resume-me'},
                                awx_vars={'awx_job_id': 42})
    assert _rendered_run_id(variables) == 'resume-me'
