"""AWX jobs on the SSH fleet: each job template's wrapper playbook, run as AWX runs it, through ansible-runner.

There is no AWX here.  A job is a private data dir laid out as AWX's RunJob lays it out
(tests/lib/awx_runner.py: the project, the collection installed from its built tarball into
requirements_collections, the inventory script, env/extravars with AWX's !unsafe tagging,
env/envvars, env/cmdline) and run with ansible_runner; the extra vars are those AWX would start
it with (tests/lib/awx.py: the template's extra vars, the survey's defaults, the workflow node's
data, the artifacts of earlier nodes); the artifacts are the set_stats data ansible-runner
reports, passed on to the following nodes tagged as AWX passes them.

One private fleet of two hosts (one per slice; staging and production) serves the module.  The
"safe change" workflow's success path runs first, node after node, for real: start, preflight,
verify the current state, checkpoint (marked last known good), deploy to staging, verify it,
deploy to production, verify it.  Then a level 2 rollback runs for real as two slices of one
job, started together as AWX starts them, writing one fleet report -- and then every other
template at once, in check mode (verify, which changes nothing, for real).
"""

import json
import os
import subprocess

import pytest
import yaml

from lib.awx import (job_extra_vars, job_templates, survey, survey_defaults, template_key,
                     workflow)
from lib.awx_runner import OPERATOR_SETUP, SSH_ENVVARS, VENV_BIN, CollectionCache, Launcher

pytestmark = [pytest.mark.fleet, pytest.mark.root]

BACKUP_ROOT = '/var/backups/lastgood/app'
STATE_DIR = '/var/lib/lastgood/runs'
REPORT_DIR = '/var/lib/lastgood/reports'
# host1 is staging, host2 production: enough for staging-first runs and for two slices (the module's
# fleet: awx_fleet in conftest.py).
AWX_FLEET_SIZE = 2
# Answers the survey defaults cannot give: a required question without a default (AWX does not
# launch the job without it), and the approvals a full restore refuses without.
ANSWERS = {
    'restore-checkpoint': lambda prepared: {'lastgood_restore_id': prepared['checkpoint_id']},
    # the last known good itself, forced: in check mode the job predicts the removal and changes nothing
    'delete-checkpoint': lambda prepared: {'lastgood_delete_checkpoint': prepared['checkpoint_id'],
                                           'lastgood_delete_force': 'true'},
    'rollback-level4': lambda prepared: {
        'lastgood_approval_cto_who': 'Ada Lovelace', 'lastgood_approval_cto_when': prepared['now'],
        'lastgood_approval_security_architect_who': 'Alan Turing',
        'lastgood_approval_security_architect_when': prepared['now'],
    },
}
# The "safe change" workflow's success path, in order (a test checks it against the workflow).
WORKFLOW_PATH = ('start', 'preflight', 'verify-current', 'checkpoint', 'deploy-staging', 'verify-staging',
                 'deploy-canary', 'verify-production')
# Templates run above the sweep: in the workflow, and the level 2 rollback as two slices.
RUN_ABOVE = ('start-workflow', 'preflight', 'verify', 'checkpoint', 'deploy-staged', 'rollback-level2')
# Templates an Event-Driven Ansible rulebook launches with its event (docs/automatic.md).
EVENT_DRIVEN = ('auto-rollback',)
# Templates that change nothing, so the sweep runs them for real too; the others in check mode.
READ_ONLY = ('verify', 'list-checkpoints')
SWEPT = sorted(key for key in job_templates() if key not in RUN_ABOVE)


def start_job(context, key, extra_vars, **kwargs):
    """Start a job of template ``key`` (or of ``playbook`` in the project, with no template) through ansible-runner."""
    return context['launcher'].start(key, extra_vars, **kwargs)


def run_job(context, key, extra_vars, **kwargs):
    """Run one job and wait for it."""
    return context['launcher'].run(key, extra_vars, **kwargs)


def _report_dir(path):
    # The fleet report goes to the test's directory instead of ~/.lastgood on this machine.
    return {'lastgood_controller_dir': str(path)}


def _node(identifier):
    return dict((node['identifier'], node) for node in workflow()['nodes'])[identifier]


@pytest.fixture(scope='module')
def context(awx_fleet, tmp_path_factory):
    """What every job of the module needs: the fleet, a work dir, the project sync's collections."""
    work = tmp_path_factory.mktemp('awx-jobs')
    collections = CollectionCache(work / 'project-update')
    return {'fleet': awx_fleet, 'work': work, 'controller_dir': work / 'controller', 'collections': collections,
            'launcher': Launcher(work, awx_fleet.inventory_path, collections, SSH_ENVVARS)}


def success_path():
    """The workflow's nodes from its root along the success edges."""
    nodes = dict((node['identifier'], node) for node in workflow()['nodes'])
    targets = set(edge['identifier'] for node in nodes.values()
                  for kind in ('success_nodes', 'failure_nodes', 'always_nodes')
                  for edge in (node.get('related') or {}).get(kind, []))
    path = [identifier for identifier in nodes if identifier not in targets]
    while (nodes[path[-1]].get('related') or {}).get('success_nodes'):
        path.append(nodes[path[-1]]['related']['success_nodes'][0]['identifier'])
    return path


@pytest.fixture(scope='module')
def prepared(context):
    """The fleet as an operator leaves it, then the workflow's success path, node after node, for real.

    Each node gets the artifacts of every node before it, as AWX gives a node its ancestors'
    artifacts (awx/main/models/workflow.py, WorkflowJobNode.get_job_kwargs, lines 346-372).
    """
    done = run_job(context, None, {}, playbook='operator-setup.yml',
                   project_files={'operator-setup.yml': OPERATOR_SETUP})
    assert done.returncode == 0, done.explain()
    artifacts, jobs = {}, {}
    for identifier in WORKFLOW_PATH:
        node = _node(identifier)
        key = template_key(node)
        variables = job_extra_vars(key, node=node, artifacts=artifacts)
        variables.update(_report_dir(context['controller_dir'] / identifier))
        job = run_job(context, key, variables, limit=node.get('limit'))
        assert job.returncode == 0, '%s: %s' % (identifier, job.explain())
        jobs[identifier] = job
        artifacts.update(job.artifacts)
    now = subprocess.run(['date', '-u', '+%Y-%m-%dT%H:%M:%SZ'], capture_output=True, text=True, check=True)
    return {'work': context['work'], 'controller_dir': context['controller_dir'], 'jobs': jobs,
            'artifacts': artifacts, 'start': jobs['start'], 'checkpoint': jobs['checkpoint'],
            'workflow_id': jobs['start'].artifacts['lastgood_workflow_run_id'],
            'checkpoint_id': jobs['checkpoint'].artifacts['lastgood_checkpoint']['id'], 'now': now.stdout.strip()}


def _remote_json(fleet, host, path):
    return json.loads(fleet.ssh(host, 'cat %s' % path).stdout)


# -- artifacts between workflow nodes ------------------------------------------------------------

FOLLOWING_PLAY = '''
- name: A following workflow node reads what the earlier ones published
  hosts: all
  gather_facts: false
  tasks:
    - name: The run id, the checkpoint and the report all name the same run
      ansible.builtin.assert:
        that:
          - lastgood_run.run_id == lastgood_workflow_run_id ~ '-checkpoint'
          - lastgood_run.checkpoint == 'run-' ~ lastgood_run.run_id
          - lastgood_checkpoint.id == lastgood_run.checkpoint
          - lastgood_report.run_id == lastgood_run.run_id
          - lastgood_run.outcome == 'success'
          - lastgood_checkpoint.hosts[inventory_hostname].verified | bool

    - name: The report the artifact points to is there
      ansible.builtin.stat:
        path: "{{ lastgood_report.report_json }}"
      delegate_to: localhost
      register: following_report

    - name: The report is for this run and names this host
      ansible.builtin.assert:
        that:
          - following_report.stat.exists
          - (lookup('ansible.builtin.file', lastgood_report.report_json) | from_json).run.run_id == lastgood_run.run_id
          - inventory_hostname in (lookup('ansible.builtin.file', lastgood_report.report_json) | from_json).hosts
'''


def test_the_module_runs_the_workflows_success_path():
    assert list(WORKFLOW_PATH) == success_path()


def test_every_job_takes_the_collection_from_requirements_collections(context, prepared):
    """The collection the jobs ran is the one installed from the built tarball (not this checkout's link)."""
    job = prepared['start']
    with open(os.path.join(job.private_data_dir, 'env', 'envvars')) as handle:
        envvars = yaml.safe_load(handle)
    listed = subprocess.run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'list', 'lastgood.rollback',
                             '--format', 'json'], cwd=os.path.join(job.private_data_dir, 'project'),
                            env=dict(os.environ, **envvars), capture_output=True, text=True, check=True)
    found = json.loads(listed.stdout)
    assert list(found) == [os.path.join(job.private_data_dir, 'requirements_collections', 'ansible_collections')]


def test_workflow_nodes_ran_on_their_hosts_and_each_run_node_under_its_own_run_id(awx_fleet, prepared):
    names = sorted(host.name for host in awx_fleet.hosts)
    limits = {'staging': ['host1'], 'production': ['host2']}
    for identifier in WORKFLOW_PATH[1:]:
        node = _node(identifier)
        assert prepared['jobs'][identifier].hosts == limits.get(node.get('limit'), names), identifier
        step = (node.get('extra_data') or {}).get('lastgood_workflow_step')
        if step:
            run = prepared['jobs'][identifier].artifacts['lastgood_run']
            assert run['run_id'] == '%s-%s' % (prepared['workflow_id'], step), identifier
            assert run['outcome'] == 'success', identifier


def test_workflow_start_publishes_one_id_and_the_checkpoint_node_runs_under_it(prepared):
    workflow_id = prepared['workflow_id']
    assert prepared['checkpoint'].artifacts['lastgood_run']['run_id'] == workflow_id + '-checkpoint'
    assert prepared['checkpoint_id'] == 'run-%s-checkpoint' % workflow_id


def test_a_following_play_reads_the_checkpoint_run_and_report_artifacts(awx_fleet, context, prepared):
    artifacts = dict(prepared['start'].artifacts)
    artifacts.update(prepared['checkpoint'].artifacts)
    assert {'lastgood_workflow_run_id', 'lastgood_checkpoint', 'lastgood_run', 'lastgood_report'} <= set(artifacts)
    job = run_job(context, None, artifacts, playbook='following.yml', project_files={'following.yml': FOLLOWING_PLAY})
    assert job.returncode == 0, job.explain()
    assert job.hosts == sorted(host.name for host in awx_fleet.hosts)


def test_checkpoint_node_marked_its_checkpoint_last_known_good_on_every_host(awx_fleet, prepared):
    for host in awx_fleet.hosts:
        marked = awx_fleet.ssh(host.name, 'cat %s/LASTGOOD' % BACKUP_ROOT).stdout.strip()
        assert marked == prepared['checkpoint_id'], host.name


# -- templates run with their survey defaults ----------------------------------------------------

def test_preflight_template_passes_with_its_survey_defaults(awx_fleet, context, prepared):
    variables = job_extra_vars('preflight')
    assert variables['lastgood_preflight_backups'] == ['lastgood']
    job = run_job(context, 'preflight', variables)
    assert job.returncode == 0, job.explain()
    assert sorted(job.artifacts['lastgood_preflight']) == sorted(host.name for host in awx_fleet.hosts)
    assert all(result['ok'] for result in job.artifacts['lastgood_preflight'].values())


def test_level2_template_run_as_two_slices_is_one_run_with_one_checkpoint_and_one_report(awx_fleet, context, prepared):
    node = _node('rollback-level2')
    slices = [['host1'], ['host2']]
    controller_dir = prepared['controller_dir'] / 'level2'
    running = []
    for number, hosts in enumerate(slices, 1):
        # Each slice is its own AWX job (own job id) in the workflow AWX makes for a sliced job, and
        # AWX starts the slices at the same time.
        # The node follows the whole success path here: it gets every artifact published before it.
        variables = job_extra_vars('rollback-level2', node=node, artifacts=prepared['artifacts'],
                                   awx_vars={'awx_workflow_job_id': 100})
        variables.update(_report_dir(controller_dir))
        running.append(start_job(context, 'rollback-level2', variables, limit=','.join(hosts)))
    jobs = [job.wait() for job in running]
    for job, hosts in zip(jobs, slices):
        assert job.returncode == 0, job.explain()
        assert job.hosts == hosts

    run_id = prepared['workflow_id'] + '-rollback-level2'
    checkpoint_id = 'run-' + run_id
    names = sorted(host.name for host in awx_fleet.hosts)
    assert [job.artifacts['lastgood_run']['run_id'] for job in jobs] == [run_id, run_id]
    assert [job.artifacts['lastgood_run']['checkpoint'] for job in jobs] == [checkpoint_id, checkpoint_id]
    assert [job.artifacts['lastgood_report']['run_id'] for job in jobs] == [run_id, run_id]
    for host in awx_fleet.hosts:
        state = _remote_json(awx_fleet, host.name, '%s/%s.json' % (STATE_DIR, run_id))
        assert state['status'] == 'finished', host.name
        assert state['meta']['checkpoint'] == checkpoint_id, host.name
        report = _remote_json(awx_fleet, host.name, '%s/%s/report.json' % (REPORT_DIR, run_id))
        assert report['run']['run_id'] == run_id and report['run']['checkpoint'] == checkpoint_id, host.name
        assert report['host']['host'] == host.name and report['host']['outcome'] == 'success', host.name
        manifest = _remote_json(awx_fleet, host.name, '%s/%s/MANIFEST.json' % (BACKUP_ROOT, checkpoint_id))
        assert manifest['id'] == checkpoint_id, host.name
    # One fleet report for the run: each slice merged its hosts into it, whichever finished first.
    assert set(job.artifacts['lastgood_report']['report_json'] for job in jobs) == {str(controller_dir / 'report.json')}
    fleet_report = json.loads((controller_dir / 'report.json').read_text())
    assert fleet_report['run']['run_id'] == run_id and fleet_report['run']['checkpoint'] == checkpoint_id
    assert sorted(fleet_report['hosts']) == names
    assert fleet_report['run']['outcome'] == 'success' and sorted(fleet_report['run']['succeeded_hosts']) == names
    assert all(fleet_report['hosts'][name]['checkpoint']['id'] == checkpoint_id for name in names)
    assert fleet_report['checksums_verified'] is True and fleet_report['audit_chains_verified'] is True
    assert sorted(set(event['host'] for event in fleet_report['timeline'])) == names
    # The slice that wrote last published the whole fleet's outcome.
    assert max(len(job.artifacts['lastgood_report']['hosts']) for job in jobs) == len(names)
    summary = (controller_dir / 'report.md').read_text()
    assert all('| %s | success |' % name in summary for name in names)


# -- every other template, with its survey defaults, all at once ---------------------------------

def _sweep_variables(key, prepared):
    variables = job_extra_vars(key)
    variables.update(ANSWERS[key](prepared) if key in ANSWERS else {})
    variables.update(_report_dir(prepared['controller_dir'] / key))
    return variables


@pytest.fixture(scope='module')
def sweep(context, prepared):
    """{template: (extra vars, finished job)}: every template not run above, started together on the fleet.

    They do not interfere: the check-mode jobs change nothing (nor take the lock) and the one
    real job only reads.
    """
    running = {}
    for key in SWEPT:
        variables = _sweep_variables(key, prepared)
        running[key] = (variables, start_job(context, key, variables, check=key not in READ_ONLY))
    return dict((key, (variables, job.wait())) for key, (variables, job) in running.items())


@pytest.mark.parametrize('key', SWEPT)
def test_template_runs_with_its_survey_defaults(awx_fleet, sweep, key):
    variables, job = sweep[key]
    spec = survey(job_templates()[key]['survey'])
    required = [q['variable'] for q in spec['spec'] if q['required']]
    assert set(required) <= set(variables), 'a required question has no default and no answer here'
    assert set(survey_defaults(spec)) <= set(variables)
    assert job.returncode == 0, job.explain()
    if key in EVENT_DRIVEN:
        # Launched without a rulebook's event it only says so, on its guard host, and changes nothing.
        assert 'No event: lastgood.rollback.auto_rollback acts on the event' in job.output(), job.explain()
        assert all(job.changed(host) == 0 for host in job.hosts), job.counts
        return
    assert job.hosts == sorted(host.name for host in awx_fleet.hosts)
