"""set_stats artifacts: each key published by one place, and none shadowing an input.

AWX hands the artifacts of a workflow node to every later node as extra variables, which win
over everything but the workflow's own variables.  An artifact named like a variable some
playbook or role takes would silently replace it in every later node; two publishers of one key
would overwrite each other.  tests/fleet/test_awx_jobs.py reads the artifacts for real.
"""

import glob
import os

from lib.awx import (PLAYBOOK_DIR, ROLES_DIR, artifact_publishers, load_yaml, playbook_inputs, referenced_lastgood_vars,
                     run_extra_vars, survey, survey_names)

# The one artifact meant to be taken: the workflow id every later node derives its run id from.
HANDOFF = 'lastgood_workflow_run_id'


def _inputs():
    """Every variable a playbook, a role or a survey takes."""
    names = set()
    for path in glob.glob(os.path.join(PLAYBOOK_DIR, '*.yml')):
        names |= playbook_inputs(path)
    for path in glob.glob(os.path.join(ROLES_DIR, '*', 'meta', 'argument_specs.yml')):
        for entry_point in (load_yaml(path).get('argument_specs') or {}).values():
            names |= set(entry_point.get('options') or {})
    for path in glob.glob(os.path.join(ROLES_DIR, '*', 'defaults', 'main.yml')):
        names |= set(load_yaml(path) or {})
    for name in survey_names():
        names |= set(question['variable'] for question in survey(name)['spec'])
    return names


def test_the_roles_and_the_workflow_start_publish_artifacts():
    publishers = artifact_publishers()
    assert HANDOFF in publishers
    assert {'lastgood_checkpoint', 'lastgood_run', 'lastgood_report'} <= set(publishers)


# run_control's outcome entry point is the YAML lastgood.rollback.fleet_outcome replaces (issue 14): a run
# uses one or the other.  The exception goes with run_control.
SUPERSEDED = {'lastgood_run': {'roles/run_control/tasks/outcome.yml'}}


def test_every_artifact_key_has_one_publisher():
    shared = dict((key, files) for key, files in artifact_publishers().items()
                  if len(set(files) - SUPERSEDED.get(key, set())) > 1)
    assert not shared


def test_the_fleet_actions_publish_the_run_the_notification_and_the_report():
    publishers = artifact_publishers()
    assert publishers['lastgood_run'][-1] == 'plugins/action/fleet_outcome.py'
    # sent by fleet_notify and, at the end of a run, by fleet_report (its notify option)
    assert publishers['lastgood_notify'] == ['plugins/plugin_utils/_notify.py']
    assert publishers['lastgood_report'] == ['plugins/action/fleet_report.py']


def test_no_artifact_shadows_a_variable_a_later_node_takes():
    shadowing = sorted((set(artifact_publishers()) - {HANDOFF}) & _inputs())
    assert not shadowing


def test_the_workflow_id_artifact_is_what_the_run_id_expression_reads():
    assert HANDOFF in referenced_lastgood_vars(run_extra_vars())
    assert all(key.startswith('lastgood_') for key in artifact_publishers())
