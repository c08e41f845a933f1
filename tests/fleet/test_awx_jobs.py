"""AWX jobs on the SSH fleet: each job template's wrapper playbook, run the way AWX would run it.

There is no AWX here.  A job is its wrapper playbook (awx/project) run with ansible-playbook and
the extra vars AWX would start it with (tests/lib/awx.py: the template's extra vars, the survey's
defaults, the workflow node's data, the artifacts of earlier nodes); set_stats artifacts are
read back from the json callback, as AWX reads them from ansible-runner.

One private fleet of two hosts (one per slice; staging and production) serves the module: a
workflow start and a checkpoint node (marked last known good, as in the "safe change" workflow)
prepare it; then preflight and a level 2 rollback run for real -- level 2 as two slices of one
job, started together as AWX starts them, writing one fleet report -- and then every other
template at once: verify for real, the others in check mode.
"""

import json
import os
import subprocess

import pytest

import fleet as harness
from lib.awx import (PROJECT_DIR, REPO_ROOT, job_extra_vars, job_templates, survey, survey_defaults, workflow,
                     wrapper_path)

pytestmark = [pytest.mark.fleet, pytest.mark.root]

ANSIBLE_PLAYBOOK = os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-playbook')
BACKUP_ROOT = '/var/backups/lastgood/app'
STATE_DIR = '/var/lib/lastgood/runs'
REPORT_DIR = '/var/lib/lastgood/reports'
# host1 is staging, host2 production: enough for staging-first runs and for two slices.
FLEET_SIZE = 2
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
# Templates the tests before the sweep run for real with their survey defaults.
RUN_ABOVE = ('start-workflow', 'preflight', 'rollback-level2')
# Templates an Event-Driven Ansible rulebook launches with its event (docs/automatic.md).
EVENT_DRIVEN = ('auto-rollback',)
# Templates that change nothing, so the sweep runs them for real too; the others in check mode.
READ_ONLY = ('verify', 'list-checkpoints')
SWEPT = sorted(key for key in job_templates() if key not in RUN_ABOVE)


class Job:
    """One finished ansible-playbook run: exit status, output, and the artifacts (set_stats)."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stderr = stderr
        try:
            report = json.loads(stdout)
        except ValueError:
            report = {'raw': stdout}
        self.report = report
        self.artifacts = report.get('global_custom_stats') or {}
        self.stats = report.get('stats') or {}

    def explain(self):
        """What failed, task by task and host by host (the json callback's output is long)."""
        lines = ['exit status %d' % self.returncode, self.stderr[-2000:], self.report.get('raw', '')[-2000:]]
        for play in self.report.get('plays', []):
            for task in play['tasks']:
                for host, result in task['hosts'].items():
                    if result.get('failed') or result.get('unreachable'):
                        lines.append('%s on %s: %s' % (task['task']['name'], host, result.get('msg')))
        return '\n'.join(lines)


class RunningJob:
    """An ansible-playbook run started as AWX would start a job: extra vars from a file, artifacts collected.

    Output goes to files, so that jobs started together never wait on each other's pipes.
    """

    def __init__(self, inventory, playbook, extra_vars, work, *args):
        number = len(list(work.glob('job-*.vars.json')))
        base = work / ('job-%d' % number)
        vars_file = base.with_suffix('.vars.json')
        vars_file.write_text(json.dumps(extra_vars))
        self._out, self._err = base.with_suffix('.out'), base.with_suffix('.err')
        # AWX runs a job in the project directory, with the project's ansible.cfg.  SSH compression
        # only costs CPU on loopback.
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(PROJECT_DIR, 'ansible.cfg'),
                   ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_SHOW_CUSTOM_STATS='true',
                   ANSIBLE_SSH_ARGS='-o ControlMaster=auto -o ControlPersist=120s')
        command = [ANSIBLE_PLAYBOOK, '-i', inventory, playbook, '-e', '@%s' % vars_file] + list(args)
        with open(self._out, 'w') as out, open(self._err, 'w') as err:
            self._process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=out, stderr=err)

    def wait(self):
        try:
            returncode = self._process.wait(timeout=900)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            raise
        return Job(returncode, self._out.read_text(), self._err.read_text())


def run_job(inventory, playbook, extra_vars, work, *args):
    """Run ``playbook`` as one AWX job and wait for it."""
    return RunningJob(inventory, playbook, extra_vars, work, *args).wait()


def _report_dir(path):
    # The fleet report goes to the test's directory instead of ~/.lastgood on this machine.
    return {'lastgood_controller_dir': str(path)}


def _node(identifier):
    return dict((node['identifier'], node) for node in workflow()['nodes'])[identifier]


@pytest.fixture(scope='module')
def awx_fleet(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip('the SSH fleet needs root (mount namespaces, sshd)')
    try:
        harness._require_root_tools()  # pylint: disable=protected-access
    except harness.FleetError as exc:
        pytest.skip(str(exc))
    running = harness.Fleet(str(tmp_path_factory.mktemp('awx-fleet')))
    try:
        running.up(FLEET_SIZE, app=True)
        yield running
    finally:
        running.down()


# What an operator has done before any rollback can run: a release marked known-good (level 3
# goes back to it) and a baseline backup (level 4 restores it).
OPERATOR_SETUP = '''
- name: Give every host a known-good release and a baseline
  hosts: all
  gather_facts: false
  tasks:
    - name: Mark the running release known-good
      ansible.builtin.include_role:
        name: lastgood.rollback.level3_code
        tasks_from: mark_known_good

    - name: Take the baseline backup of the code and the configuration
      lastgood.rollback.backup:
        paths: [/srv/app/code, /srv/app/releases, /srv/app/current, /srv/app/config.yaml, /srv/app/custom_modes.json]
        backup_root: /var/backups/lastgood
        set: app
        name: baseline
'''


@pytest.fixture(scope='module')
def prepared(awx_fleet, tmp_path_factory):
    """The fleet as an operator leaves it, then the workflow's first two job nodes run for real."""
    work = tmp_path_factory.mktemp('awx-jobs')
    controller_dir = work / 'controller'
    setup = work / 'operator-setup.yml'
    setup.write_text(OPERATOR_SETUP)
    # The workflow's start node runs on the controller alone: it may overlap the operator's setup.
    setting_up = RunningJob(awx_fleet.inventory_path, str(setup), {}, work)
    start = run_job(awx_fleet.inventory_path, wrapper_path('start-workflow'),
                    job_extra_vars('start-workflow', node=_node('start'), awx_vars={'awx_job_id': 1}), work)
    done = setting_up.wait()
    assert done.returncode == 0, done.explain()
    assert start.returncode == 0, start.explain()
    checkpoint_vars = job_extra_vars('checkpoint', node=_node('checkpoint'), artifacts=start.artifacts,
                                     awx_vars={'awx_job_id': 2})
    checkpoint_vars.update(_report_dir(controller_dir))
    checkpoint = run_job(awx_fleet.inventory_path, wrapper_path('checkpoint'), checkpoint_vars, work)
    assert checkpoint.returncode == 0, checkpoint.explain()
    now = subprocess.run(['date', '-u', '+%Y-%m-%dT%H:%M:%SZ'], capture_output=True, text=True, check=True)
    return {'work': work, 'controller_dir': controller_dir, 'start': start, 'checkpoint': checkpoint,
            'workflow_id': start.artifacts['lastgood_workflow_run_id'],
            'checkpoint_id': checkpoint.artifacts['lastgood_checkpoint']['id'], 'now': now.stdout.strip()}


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


def test_workflow_start_publishes_one_id_and_the_checkpoint_node_runs_under_it(prepared):
    workflow_id = prepared['workflow_id']
    assert prepared['checkpoint'].artifacts['lastgood_run']['run_id'] == workflow_id + '-checkpoint'
    assert prepared['checkpoint_id'] == 'run-%s-checkpoint' % workflow_id


def test_a_following_play_reads_the_checkpoint_run_and_report_artifacts(awx_fleet, prepared):
    artifacts = dict(prepared['start'].artifacts)
    artifacts.update(prepared['checkpoint'].artifacts)
    assert {'lastgood_workflow_run_id', 'lastgood_checkpoint', 'lastgood_run', 'lastgood_report'} <= set(artifacts)
    playbook = prepared['work'] / 'following.yml'
    playbook.write_text(FOLLOWING_PLAY)
    job = run_job(awx_fleet.inventory_path, str(playbook), artifacts, prepared['work'])
    assert job.returncode == 0, job.explain()
    assert sorted(job.stats) == sorted(host.name for host in awx_fleet.hosts)


def test_checkpoint_node_marked_its_checkpoint_last_known_good_on_every_host(awx_fleet, prepared):
    for host in awx_fleet.hosts:
        marked = awx_fleet.ssh(host.name, 'cat %s/LASTGOOD' % BACKUP_ROOT).stdout.strip()
        assert marked == prepared['checkpoint_id'], host.name


# -- templates run with their survey defaults ----------------------------------------------------

def test_preflight_template_passes_with_its_survey_defaults(awx_fleet, prepared):
    variables = job_extra_vars('preflight', awx_vars={'awx_job_id': 10})
    assert variables['lastgood_preflight_backups'] == ['lastgood']
    job = run_job(awx_fleet.inventory_path, wrapper_path('preflight'), variables, prepared['work'])
    assert job.returncode == 0, job.explain()
    assert sorted(job.artifacts['lastgood_preflight']) == sorted(host.name for host in awx_fleet.hosts)
    assert all(result['ok'] for result in job.artifacts['lastgood_preflight'].values())


def test_level2_template_run_as_two_slices_is_one_run_with_one_checkpoint_and_one_report(awx_fleet, prepared):
    node = _node('rollback-level2')
    slices = [['host1'], ['host2']]
    controller_dir = prepared['controller_dir'] / 'level2'
    running = []
    for number, hosts in enumerate(slices, 1):
        # Each slice is its own AWX job (own job id) in the workflow AWX makes for a sliced job, and
        # AWX starts the slices at the same time.
        variables = job_extra_vars('rollback-level2', node=node, artifacts=prepared['start'].artifacts,
                                   awx_vars={'awx_job_id': 100 + number, 'awx_workflow_job_id': 100})
        variables.update(_report_dir(controller_dir))
        running.append(RunningJob(awx_fleet.inventory_path, wrapper_path('rollback-level2'), variables,
                                  prepared['work'], '--limit', ','.join(hosts)))
    jobs = [job.wait() for job in running]
    for job, hosts in zip(jobs, slices):
        assert job.returncode == 0, job.explain()
        assert sorted(job.stats) == hosts

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

def _sweep_variables(key, prepared, number):
    variables = job_extra_vars(key, awx_vars={'awx_job_id': 200 + number})
    variables.update(ANSWERS[key](prepared) if key in ANSWERS else {})
    variables.update(_report_dir(prepared['controller_dir'] / key))
    return variables


@pytest.fixture(scope='module')
def sweep(awx_fleet, prepared):
    """{template: (extra vars, finished job)}: every template not run above, started together on the fleet.

    They do not interfere: the check-mode jobs change nothing (nor take the lock) and the one
    real job only reads.
    """
    running = {}
    for number, key in enumerate(SWEPT):
        variables = _sweep_variables(key, prepared, number)
        args = [] if key in READ_ONLY else ['--check']
        running[key] = (variables, RunningJob(awx_fleet.inventory_path, wrapper_path(key), variables,
                                              prepared['work'], *args))
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
        assert 'No event: lastgood.rollback.auto_rollback acts on the event' in json.dumps(job.report), job.explain()
        assert all(counts['changed'] == 0 for counts in job.stats.values()), job.stats
        return
    assert sorted(job.stats) == sorted(host.name for host in awx_fleet.hosts)
