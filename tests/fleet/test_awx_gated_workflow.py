"""The gated rollback workflow (docs/awx.md, "The fleet gate across slices") on the SSH fleet, as AWX runs it.

No AWX runs here.  The workflow is the one awx/configure.yml creates (lib.awx.gated_workflow_graph);
its nodes run in AWX's order (lib.awx.workflow_run), each job through ansible-runner in a private data
dir laid out as AWX's RunJob lays it out (lib.awx_runner), each node of the sliced template as two
slices started together, succeeding only when both do, with the artifacts AWX hands on
(lib.awx_runner.WorkflowRun).  Three hosts, two slices as AWX slices them: host1 and host3, host2.

First the success path: one run id in every node and slice, the run paused between nodes (run state
running, the lock held, the configuration untouched until act), ended by close with one fleet report.
Then the failure routes: verification fails on host2 only (its configuration edited after act), or the
action does (its known-good backup damaged after the checkpoint node); the other slice passes, and
abort puts the run's checkpoint back on every host - those of that slice too - then fails, so the
workflow ends failed.
"""

import json

import pytest

from lib.awx import gated_survey, gated_workflow_graph, success_chain, survey_defaults, workflow_status
from lib.awx_runner import SSH_ENVVARS, CollectionCache, Launcher, WorkflowRun
from lib.demo_site import KNOWN_GOOD

pytestmark = [pytest.mark.fleet, pytest.mark.root]

AWX_FLEET_SIZE = 3
# AWX's slicing: host i of the inventory goes to slice i modulo the slice count.
SLICES = [['host1', 'host3'], ['host2']]
HOSTS = ('host1', 'host2', 'host3')
TEMPLATE = 'rollback-level2'
CONFIG = '/srv/app/config.yaml'
STORE_SET = '/var/backups/lastgood/app'
STATE_DIR = '/var/lib/lastgood/runs'
KNOWN_GOOD_VARS = {'lastgood_config_paths_literal': [CONFIG, '/srv/app/custom_modes.json', '/srv/app/app.env'],
                   'lastgood_backup_root': '/var/backups/lastgood', 'lastgood_known_good_hosts': 'all'}


@pytest.fixture(scope='module')
def gated(awx_fleet, tmp_path_factory):
    """The fleet with a known-good configuration taken, and a launcher of AWX jobs on it."""
    work = tmp_path_factory.mktemp('awx-gated')
    launcher = Launcher(work, awx_fleet.inventory_path, CollectionCache(work / 'project-update'), SSH_ENVVARS)
    done = launcher.run(None, KNOWN_GOOD_VARS, playbook='known-good.yml', project_files={'known-good.yml': KNOWN_GOOD})
    assert done.returncode == 0, done.explain()
    return {'fleet': awx_fleet, 'launcher': launcher, 'controller_root': work / 'controller',
            'good': read(awx_fleet, 'host1', CONFIG)}


def read(fleet, name, path):
    return fleet.ssh(name, 'cat %s' % path).stdout


def break_config(fleet):
    """The bad change on every host: no agents allowed."""
    for name in HOSTS:
        fleet.ssh(name, "sed -i 's/maxAgents: 4/maxAgents: 0/' %s && %s reload >/dev/null" % (CONFIG, '/srv/app/bin/appctl'))
    return read(fleet, 'host1', CONFIG)


def lock_holder(fleet, name):
    found = fleet.ssh(name, 'cat %s/.lock 2>/dev/null || true' % STORE_SET).stdout.strip()
    return json.loads(found)['run_id'] if found else None


def run_state(fleet, name, run_id):
    return json.loads(read(fleet, name, '%s/%s.json' % (STATE_DIR, run_id)))


def audit_events(fleet, name, run_id):
    lines = read(fleet, name, '/var/log/lastgood/audit.jsonl').splitlines()
    return [event['event'] for event in map(json.loads, lines) if event.get('run_id') == run_id]


def snapshot(fleet, run_id):
    """Where the run stands on each host: its run state's status and phases, the lock's holder, the configuration."""
    return dict((name, {'status': run_state(fleet, name, run_id)['status'],
                        'completed': run_state(fleet, name, run_id)['completed_phases'],
                        'lock': lock_holder(fleet, name), 'config': read(fleet, name, CONFIG)}) for name in HOSTS)


def launch(gated, after_node=None):
    """The gated workflow of the level 2 template, launched with its survey's defaults."""
    workflow_vars = survey_defaults(gated_survey(TEMPLATE))
    # every job writes the fleet report where the others can merge into it (docs/awx.md, slicing)
    workflow_vars['lastgood_controller_root'] = str(gated['controller_root'])
    return WorkflowRun(gated['launcher'], gated_workflow_graph(TEMPLATE), workflow_vars, SLICES, after_node=after_node)


def node_run_ids(workflow):
    return dict((identifier, sorted(set(job.artifacts['lastgood_run']['run_id'] for job in jobs)))
                for identifier, jobs in workflow.jobs.items() if identifier != 'start')


def test_the_success_path_is_one_run_paused_between_nodes_and_ended_by_close(gated):
    fleet = gated['fleet']
    bad = break_config(fleet)
    seen = {}

    def after_node(identifier, jobs):
        if identifier != 'start':
            seen[identifier] = snapshot(fleet, jobs[0].artifacts['lastgood_run']['run_id'])
    workflow = launch(gated, after_node=after_node)

    assert workflow.path() == success_chain(workflow.graph), workflow.explain()
    assert workflow_status(workflow.graph, workflow.ran) == 'successful', workflow.explain()
    run_id = workflow.jobs['start'][0].artifacts['lastgood_workflow_run_id'] + '-run'
    # every node after start ran as two slices, on the slices' hosts, all under one run id
    for identifier in ('checkpoint', 'act', 'verify', 'close'):
        assert sorted(job.hosts for job in workflow.jobs[identifier]) == sorted(SLICES), identifier
    assert node_run_ids(workflow) == dict((identifier, [run_id]) for identifier in ('checkpoint', 'act', 'verify', 'close'))
    outcomes = dict((identifier, sorted(set(job.artifacts['lastgood_run']['outcome'] for job in jobs)))
                    for identifier, jobs in workflow.jobs.items() if identifier != 'start')
    assert outcomes == {'checkpoint': ['paused'], 'act': ['paused'], 'verify': ['paused'], 'close': ['success']}

    # between the nodes the run stays open on every host; the configuration changes in act only
    after_checkpoint, after_act = seen['checkpoint'], seen['act']
    assert all(state == {'status': 'running', 'completed': ['checkpoint'], 'lock': run_id, 'config': bad}
               for state in after_checkpoint.values()), after_checkpoint
    assert all(state['completed'] == ['checkpoint', 'level2_config'] and state['lock'] == run_id
               and state['config'] == gated['good'] for state in after_act.values()), after_act
    assert all(state['status'] == 'running' and state['completed'][-1] == 'verify'
               for state in seen['verify'].values())

    for name in HOSTS:
        assert run_state(fleet, name, run_id)['status'] == 'finished' and lock_holder(fleet, name) is None, name
        assert read(fleet, name, CONFIG) == gated['good'], name
        events = audit_events(fleet, name, run_id)
        assert (events.count('run_start'), events.count('run_resume'), events.count('run_paused'),
                events.count('run_end')) == (1, 3, 3, 1), (name, events)
    # one fleet report of the whole run, with what the earlier nodes did on each host
    report = json.loads((gated['controller_root'] / run_id / 'report.json').read_text())
    assert report['run']['outcome'] == 'success' and sorted(report['run']['succeeded_hosts']) == list(HOSTS)
    assert all(report['hosts'][name]['action'].get('source') == 'store' for name in HOSTS)
    assert report['checksums_verified'] is True and report['audit_chains_verified'] is True


def assert_aborted_everywhere(gated, workflow, failed_node, bad):
    """The workflow went from ``failed_node`` to abort, which put the run's checkpoint back everywhere and failed."""
    fleet = gated['fleet']
    path = success_chain(workflow.graph)
    assert workflow.path() == path[:path.index(failed_node) + 1] + ['abort'], workflow.explain()
    assert workflow_status(workflow.graph, workflow.ran) == 'failed'
    run_id = workflow.jobs['start'][0].artifacts['lastgood_workflow_run_id'] + '-run'
    assert node_run_ids(workflow) == dict((identifier, [run_id]) for identifier in workflow.path()[1:])
    # the failed node: host2's slice failed, the other one passed
    slices = dict((tuple(job.hosts), job.returncode) for job in workflow.jobs[failed_node])
    assert slices == {('host1', 'host3'): 0, ('host2',): 2}, workflow.explain()
    # abort: every host back at the run's checkpoint, the run closed as aborted, the lock released
    for name in HOSTS:
        assert read(fleet, name, CONFIG) == bad, name
        state = run_state(fleet, name, run_id)
        assert state['status'] == 'finished' and state['artifacts']['abort']['verified'] is True, name
        assert lock_holder(fleet, name) is None, name
    # and its jobs fail, saying so, so that AWX ends the workflow failed
    for job in workflow.jobs['abort']:
        assert job.returncode == 2, job.explain()
        for name in job.hosts:
            assert 'Run %s (rollback_level2) aborted on %s. Checkpoint run-%s' % (run_id, name, run_id) in job.output()
    report = json.loads((gated['controller_root'] / run_id / 'report.json').read_text())
    assert report['run']['outcome'] == 'aborted' and sorted(report['run']['aborted_hosts']) == list(HOSTS)
    assert report['run']['reason'].startswith('A node of the gated workflow failed')


def configs(fleet):
    return dict((name, read(fleet, name, CONFIG)) for name in HOSTS)


def test_a_failed_verification_in_one_slice_sends_every_host_back_to_the_runs_checkpoint(gated):
    fleet = gated['fleet']
    bad = break_config(fleet)
    seen = {}

    def after_node(identifier, jobs):
        if identifier == 'act':
            seen['act'] = configs(fleet)
            # someone edits host2's restored configuration: it no longer matches the known good backup
            fleet.ssh('host2', 'echo "# edited by hand" >> %s' % CONFIG)
    workflow = launch(gated, after_node=after_node)

    assert seen['act'] == {'host1': gated['good'], 'host2': gated['good'], 'host3': gated['good']}
    assert_aborted_everywhere(gated, workflow, 'verify', bad)


def test_a_failed_action_in_one_slice_sends_every_host_back_to_the_runs_checkpoint(gated):
    fleet = gated['fleet']
    bad = break_config(fleet)
    seen = {}
    known_good = '%s/$(cat %s/LASTGOOD)/data%s' % (STORE_SET, STORE_SET, CONFIG)

    def after_node(identifier, jobs):
        if identifier == 'checkpoint':
            # host2's known-good configuration is damaged (replaced, so no other backup's link changes):
            # its action fails, host1 and host3's slice acts
            fleet.ssh('host2', 'f=%s && cp -p "$f" "$f.kept" && cp -p "$f" "$f.new" && echo "# damaged" >> "$f.new" '
                               '&& mv "$f.new" "$f"' % known_good)
        if identifier == 'act':
            seen['act'] = configs(fleet)
    try:
        workflow = launch(gated, after_node=after_node)
    finally:
        fleet.ssh('host2', 'f=%s && if [ -e "$f.kept" ]; then mv "$f.kept" "$f"; fi' % known_good)

    assert seen['act'] == {'host1': gated['good'], 'host2': bad, 'host3': gated['good']}
    assert_aborted_everywhere(gated, workflow, 'act', bad)
