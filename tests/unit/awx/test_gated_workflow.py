"""The gated rollback workflows: AWX as the fleet gate across the slices of a sliced run.

Their shape (start, then the run's phases as nodes, each failure to one abort node), the values
each node hands the run skeleton, the one run id every node and slice shares, and the survey.  AWX
itself is not here: the nodes are rendered as awx/configure.yml renders them, the variables of each
job are computed with the rules of tests/lib/awx.py (taken from AWX's source) and rendered with
Ansible's own templating.
"""

import re

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from lib.awx import (ABORT_MISSING, AWX_DIR, RUN_ACTIONS, RUN_UNTIL, artifact_publishers, gated_survey, gated_workflow,
                     gated_workflow_definitions, gated_workflow_graph, job_templates, load_yaml, loaded_job_vars,
                     playbook_inputs, render_settings, role_entry_points, role_options, run_extra_vars, success_chain,
                     survey, survey_answer_errors, targets, workflow, workflow_run, workflow_status)

RUN_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$')
CHECKPOINT_NAME_MAX = 100  # "run-" + the run id
WORKFLOW_ID = '20261122T000000Z-abcdef'
GATED = sorted(gated_workflow_definitions())
PHASES = ('checkpoint', 'act', 'verify')
EDGES = ('success', 'failure', 'always')


def _graph(key):
    return gated_workflow_graph(key)


def _nodes(key):
    return dict((node['identifier'], node) for node in _graph(key))


def _configure_task(name):
    [task] = [task for task in load_yaml(AWX_DIR + '/configure.yml')[0]['tasks'] if task['name'] == name]
    return task


GATED_TASK = 'Create or update the gated rollback workflows'
SAFE_CHANGE_TASK = 'Create or update the safe change workflow'


def _rendered_run_id(variables):
    return Templar(loader=DataLoader(), variables=variables).template(variables['lastgood_run_id'])


def _run_id(key, node, job, slice_workflow):
    """The run id a job of ``node`` renders: each node's slices are their own jobs under their own slice workflow."""
    return _rendered_run_id(loaded_job_vars(key, node=node, artifacts={'lastgood_workflow_run_id': WORKFLOW_ID},
                                            awx_vars={'awx_job_id': job, 'awx_workflow_job_id': slice_workflow}))


# -- which workflows ---------------------------------------------------------------------------

def test_a_gated_workflow_for_each_sliceable_template_that_acts():
    assert GATED == ['restore-checkpoint', 'rollback-level1', 'rollback-level2']
    for key, definition in gated_workflow_definitions().items():
        assert definition['template'] == key
        assert job_templates()[key]['run'] and job_templates()[key]['sliceable'], key


@pytest.mark.parametrize('key', GATED)
def test_every_node_after_start_runs_the_workflows_sliceable_template(key):
    graph = _graph(key)
    assert graph[0]['template'] == 'start-workflow'
    for node in graph[1:]:
        assert node['type'] == 'job_template'
        assert node['template'] == key, node['identifier']
        assert job_templates()[node['template']]['sliceable'], node['identifier']
        assert node['limit'] is None, 'every node runs on every host of the workflow'


def test_workflow_names_are_distinct_and_differ_from_the_safe_change_workflow():
    names = [render_settings(definition['name']) for definition in gated_workflow_definitions().values()]
    assert len(set(names)) == len(names)
    assert render_settings(workflow()['name']) not in names


# -- shape -------------------------------------------------------------------------------------

@pytest.mark.parametrize('key', GATED)
def test_identifiers_are_unique_and_every_edge_leads_to_a_node(key):
    graph = _graph(key)
    identifiers = [node['identifier'] for node in graph]
    assert len(identifiers) == len(set(identifiers))
    for node in graph:
        for kind in EDGES:
            assert set(node[kind]) <= set(identifiers), (node['identifier'], kind)


@pytest.mark.parametrize('key', GATED)
def test_the_only_root_is_the_node_that_chooses_the_workflow_id(key):
    graph = _graph(key)
    reached = set(target for node in graph for kind in EDGES for target in node[kind])
    assert [node['identifier'] for node in graph if node['identifier'] not in reached] == ['start']


@pytest.mark.parametrize('key', GATED)
def test_success_chain_is_start_checkpoint_act_verify_close(key):
    nodes = _nodes(key)
    chain = success_chain(_graph(key))
    assert chain == ['start', 'checkpoint', 'act', 'verify', 'close']
    assert [nodes[identifier]['extra_data'].get('lastgood_run_until') for identifier in chain[1:]] == [
        'checkpoint', 'action', 'verify', '']
    assert [nodes[identifier]['extra_data'].get('lastgood_run_action') for identifier in chain[1:]] == [
        'resume', 'continue', 'continue', 'continue']


@pytest.mark.parametrize('key', GATED)
def test_every_phase_nodes_failure_goes_to_abort_and_nothing_else_does(key):
    nodes = _nodes(key)
    for identifier in PHASES:
        assert nodes[identifier]['failure'] == ['abort'], identifier
    parents = sorted(node['identifier'] for node in nodes.values() if 'abort' in node['failure'] + node['always']
                     + node['success'])
    assert parents == sorted(PHASES)
    for node in nodes.values():
        assert not node['always'], node['identifier']


@pytest.mark.parametrize('key', GATED)
def test_close_and_abort_end_the_workflow_and_start_has_no_failure_route(key):
    nodes = _nodes(key)
    # close: every host of every slice passed verification, nothing to put back; AWX reports a failure.
    assert not nodes['close']['failure'] and not nodes['close']['success']
    assert not nodes['abort']['failure'] and not nodes['abort']['success']
    # start: no run began, nothing to put back.
    assert not nodes['start']['failure']


@pytest.mark.parametrize('key', GATED)
def test_abort_puts_back_every_hosts_checkpoint_and_skips_hosts_the_run_never_reached(key):
    data = _nodes(key)['abort']['extra_data']
    assert data['lastgood_run_action'] == 'abort'
    assert data['lastgood_abort_missing'] == 'skip'
    assert data['lastgood_reason'].strip()
    assert not data.get('lastgood_run_until'), 'an abort ends the run: it never pauses it'
    # AWX would count the failure that led here as handled and end the workflow successful
    assert data['lastgood_fail_aborted'] is True


@pytest.mark.parametrize('key', GATED)
def test_node_data_are_values_the_run_skeleton_takes(key):
    for node in _graph(key)[1:]:
        data = node['extra_data']
        assert data.get('lastgood_run_until', '') in RUN_UNTIL, node['identifier']
        assert data.get('lastgood_run_action', 'resume') in RUN_ACTIONS, node['identifier']
        assert data.get('lastgood_abort_missing', 'fail') in ABORT_MISSING, node['identifier']
        if 'lastgood_abort_missing' in data:
            assert data['lastgood_run_action'] == 'abort', node['identifier']
        # only the first phase may start the run; the others go on with it or put it back
        if node['identifier'] != 'checkpoint':
            assert data['lastgood_run_action'] in ('continue', 'abort'), node['identifier']


@pytest.mark.parametrize('key', GATED)
@pytest.mark.parametrize('failing, expected, status', [
    # all pass: the run ends at close
    ((), ['start', 'checkpoint', 'act', 'verify', 'close'], 'successful'),
    # a failed phase goes straight to abort; AWX counts the failure as handled (docs/awx.md), so the abort
    # job fails whether or not it put every checkpoint back (lastgood_fail_aborted): the workflow fails
    (('checkpoint', 'abort'), ['start', 'checkpoint', 'abort'], 'failed'),
    (('act', 'abort'), ['start', 'checkpoint', 'act', 'abort'], 'failed'),
    (('verify', 'abort'), ['start', 'checkpoint', 'act', 'verify', 'abort'], 'failed'),
    # what AWX would make of an abort job that succeeded: the reason for lastgood_fail_aborted
    (('verify',), ['start', 'checkpoint', 'act', 'verify', 'abort'], 'successful'),
    # a failed close has no route: the workflow fails and its notifications say so
    (('close',), ['start', 'checkpoint', 'act', 'verify', 'close'], 'failed'),
    # nothing began: nothing to put back
    (('start',), ['start'], 'failed'),
])
def test_what_awx_runs_and_the_workflows_status_when_nodes_fail(key, failing, expected, status):
    graph = _graph(key)
    ran = workflow_run(graph, failing)
    assert [identifier for identifier, _status in ran] == expected
    assert workflow_status(graph, ran) == status


# -- run ids -----------------------------------------------------------------------------------

@pytest.mark.parametrize('key', GATED)
def test_every_node_and_every_slice_runs_the_same_run(key):
    run_ids = {}
    for number, node in enumerate(gated_workflow(key)[1:]):
        # AWX makes a slice workflow per sliced node (its own awx_workflow_job_id) and a job per slice.
        for slice_number in range(3):
            run_ids[(node['identifier'], slice_number)] = _run_id(key, node, job=1000 + 10 * number + slice_number,
                                                                  slice_workflow=500 + number)
    assert set(run_ids.values()) == {WORKFLOW_ID + '-run'}, run_ids
    run_id = WORKFLOW_ID + '-run'
    assert RUN_ID.match(run_id) and len('run-' + run_id) <= CHECKPOINT_NAME_MAX


@pytest.mark.parametrize('key', GATED)
def test_the_run_id_check_tells_nodes_of_different_steps_apart(key):
    # The check above would see a node that named another step.
    node = dict(gated_workflow(key)[1])
    node['extra_data'] = dict(node['extra_data'], lastgood_workflow_step='other')
    assert _run_id(key, node, job=1, slice_workflow=2) == WORKFLOW_ID + '-other'


@pytest.mark.parametrize('key', GATED)
def test_no_artifact_of_an_earlier_node_replaces_a_node_datum(key):
    # AWX hands every artifact of the nodes before to a node's job, over its own extra data.
    published = set(artifact_publishers())
    for node in _graph(key):
        assert not published & set(node['extra_data']), node['identifier']
    assert 'lastgood_workflow_run_id' in re.findall(r'\b(lastgood_\w+)', run_extra_vars()['lastgood_run_id'])


def _taken(key):
    """Every variable the template's playbooks read, their roles take, or its run id expression reads."""
    taken = set(re.findall(r'\b(lastgood_\w+)', run_extra_vars()['lastgood_run_id']))
    for path in targets(key):
        taken |= playbook_inputs(path)
        for role, entry_point in role_entry_points(path):
            taken |= set(role_options(role, entry_point) or {})
    return taken


NODE_DATA = sorted(set((key, name) for key in GATED for node in gated_workflow(key) for name in node.get('extra_data') or {}))


@pytest.mark.parametrize('key, name', NODE_DATA)
def test_every_node_datum_is_taken_by_the_template_playbook(key, name):
    assert name in _taken(key)


# -- survey ------------------------------------------------------------------------------------

def _survey_file(key):
    """The survey file awx/configure.yml reads for the gated workflow of ``key``, rendered from its task."""
    expression = _configure_task(GATED_TASK)['awx.awx.workflow_job_template']['survey_spec']
    match = re.match(r"^\{\{ lookup\('ansible\.builtin\.file', (.+)\) \| from_json \}\}$", expression)
    assert match, expression
    item = {'key': key, 'value': gated_workflow_definitions()[key]}
    return render_settings('{{ %s }}' % match.group(1), item=item)


@pytest.mark.parametrize('key', GATED)
def test_the_survey_is_the_templates_own(key):
    assert _survey_file(key) == 'surveys/%s.json' % job_templates()[key]['survey']
    assert gated_survey(key) == survey(job_templates()[key]['survey'])


@pytest.mark.parametrize('key', GATED)
def test_no_survey_answer_overrides_what_a_node_sets(key):
    # The workflow's own variables (its survey answers) win over every node's extra data in AWX.
    asked = set(question['variable'] for question in gated_survey(key)['spec'])
    for node in _graph(key):
        assert not asked & set(node['extra_data']), node['identifier']


@pytest.mark.parametrize('key', GATED)
def test_node_data_are_answers_the_templates_survey_would_accept(key):
    questions = dict((question['variable'], question) for question in gated_survey(key)['spec'])
    for node in _graph(key):
        for name, value in node['extra_data'].items():
            if name in questions:
                assert not survey_answer_errors(questions[name], value), (node['identifier'], name)


# -- configure.yml -----------------------------------------------------------------------------

def test_the_gated_workflows_are_created_as_the_safe_change_one_is():
    gated = _configure_task(GATED_TASK)
    safe = _configure_task(SAFE_CHANGE_TASK)['awx.awx.workflow_job_template']
    args = gated['awx.awx.workflow_job_template']
    for option in ('organization', 'inventory', 'survey_enabled', 'ask_limit_on_launch', 'allow_simultaneous',
                   'destroy_current_nodes', 'notification_templates_error', 'notification_templates_success',
                   'notification_templates_approvals', 'state'):
        assert args[option] == safe[option], option
    assert args['allow_simultaneous'] is False
    assert args['workflow_nodes'] == '{{ lastgood_awx_gated_nodes }}'
    assert gated['vars'] == {'lastgood_awx_gated_template': '{{ item.value.template }}'}
    assert gated['loop'] == '{{ lastgood_awx_gated_workflows | dict2items }}'


def test_each_workflow_renders_nodes_of_its_own_template():
    names = dict((key, [node['unified_job_template']['name'] for node in gated_workflow(key)[1:]]) for key in GATED)
    for key in GATED:
        assert set(names[key]) == {render_settings(job_templates()[key]['name'])}
