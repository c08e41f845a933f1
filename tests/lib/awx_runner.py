"""AWX jobs run through ansible-runner, in a private data dir laid out as AWX's RunJob lays it out.

No AWX runs here; what a job of it is made of is (ansible/awx@e21dd0a0, awx/main/tasks/jobs.py):

- ``project/``: a copy of the project (awx/project), as RunProjectUpdate.make_local_copy copies
  the project checkout (lines 1367-1387), with ``requirements_collections/`` next to it: the
  collections the project sync installed from collections/requirements.yml -- here the
  collection installed from the tarball ``ansible-galaxy collection build`` makes of this
  checkout (``CollectionCache``), once, then copied into each job as AWX copies its cache;
- ``inventory/hosts``: the inventory as the executable script BaseTask.write_inventory_file
  writes (lines 317-324), from ``ansible-inventory --list --export`` of the fleet's inventory;
- ``env/extravars``: the job's extra vars as RunJob.build_extra_vars_file writes them
  (tests/lib/awx.py, awx_extravars: every string !unsafe but the template's own extra vars);
- ``env/envvars``: RunJob.build_env (lines 884-945): JOB_ID, retry files off, an SSH control
  path dir per job, and ``requirements_collections`` first on ANSIBLE_COLLECTIONS_PATH(S),
  before the project's ansible.cfg collections_path and Ansible's defaults;
- ``env/cmdline``: RunJob.build_args (lines 947-1020): ``-u root``, ``--check`` for a check job,
  ``-l`` for a limit (a slice: its hosts);
- ``env/settings``: the runner settings of BaseTask.run (lines 587-596).

``ansible_runner.run_async`` then runs the playbook with the ident of the job id, as BaseTask.run
does (lines 546-554); the artifacts are the ``artifact_data`` of the ``playbook_on_stats`` event
(what set_stats published), which is what AWX keeps (awx/main/tasks/callback.py lines 173-174)
and passes on to the following workflow nodes.
"""

import configparser
import itertools
import json
import os
import shutil
import subprocess
import time

import ansible_runner
import yaml

from lib.awx import (PROJECT_DIR, REPO_ROOT, awx_extravars, job_extra_vars, job_templates, template_extra_vars,
                     workflow_run)

VENV_BIN = os.path.join(REPO_ROOT, '.venv', 'bin')
DEFAULT_COLLECTIONS = '~/.ansible/collections:/usr/share/ansible/collections'
JOB_TIMEOUT = 900
# For Launcher's envvars on the SSH test fleet: compression and new connections only cost CPU on loopback
# (AWX passes its ANSIBLE_* settings in env/envvars the same way).
SSH_ENVVARS = {'ANSIBLE_SSH_ARGS': '-o ControlMaster=auto -o ControlPersist=120s'}


class CollectionCache:
    """The project sync's requirements_collections: the collection built from this checkout and installed."""

    def __init__(self, work):
        self.work = str(work)
        self.path = os.path.join(self.work, 'requirements_collections')
        build_dir = os.path.join(self.work, 'build')
        os.makedirs(build_dir, exist_ok=True)
        subprocess.run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'build', REPO_ROOT,
                        '--output-path', build_dir, '--force'], check=True, capture_output=True, text=True)
        tarballs = [name for name in os.listdir(build_dir) if name.endswith('.tar.gz')]
        assert len(tarballs) == 1, tarballs
        self.tarball = os.path.join(build_dir, tarballs[0])
        # --no-deps: the project's requirements name this collection alone, and there is no
        # Galaxy server here.
        subprocess.run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'install', self.tarball,
                        '-p', self.path, '--no-deps', '--force'], check=True, capture_output=True, text=True)

    def installed(self):
        return os.path.join(self.path, 'ansible_collections', 'lastgood', 'rollback')


def inventory_script(inventory_path):
    """The inventory script AWX writes (write_inventory_file) for the inventory ``inventory_path`` holds."""
    listed = subprocess.run([os.path.join(VENV_BIN, 'ansible-inventory'), '-i', inventory_path, '--list', '--export'],
                            check=True, capture_output=True, text=True, cwd=PROJECT_DIR)
    script_data = json.loads(listed.stdout)
    return '#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n' % json.dumps(script_data)


class Job:
    """One finished job: ansible-runner's status and return code, its events, stats and artifacts."""

    def __init__(self, runner, private_data_dir):
        self.private_data_dir = private_data_dir
        self.status = runner.status
        self.returncode = runner.rc
        self.events = list(runner.events)
        stats = [event for event in self.events if event.get('event') == 'playbook_on_stats']
        data = stats[-1]['event_data'] if stats else {}
        self.artifacts = data.get('artifact_data') or {}
        kinds = ('ok', 'changed', 'failures', 'dark', 'skipped', 'processed')
        self.counts = dict((kind, data.get(kind) or {}) for kind in kinds)

    @property
    def hosts(self):
        """The hosts the job ran on (every host in the play recap)."""
        return sorted(self.counts['processed'])

    def changed(self, host):
        return self.counts['changed'].get(host, 0)

    def output(self):
        """Everything the events say, as one string."""
        return json.dumps(self.events, default=str)

    def explain(self):
        """What failed, task by task and host by host."""
        lines = ['status %s, return code %s (%s)' % (self.status, self.returncode, self.private_data_dir)]
        for event in self.events:
            if event.get('event') in ('runner_on_failed', 'runner_on_unreachable', 'runner_item_on_failed'):
                data = event['event_data']
                if data.get('ignore_errors'):
                    continue
                result = data.get('res') or {}
                lines.append('%s on %s: %s' % (data.get('task'), data.get('host'),
                                               result.get('msg') or result.get('stderr') or result))
            elif event.get('event') == 'error' or (event.get('event') == 'verbose' and 'ERROR' in event.get('stdout', '')):
                lines.append(event.get('stdout', ''))
        return '\n'.join(lines)


class RunningJob:
    """A job started as AWX starts it: its private data dir laid out, ansible-runner started on it.

    ``extra_vars`` are the job's extra vars, ``template_vars`` its template's own extra vars (plain
    in env/extravars); ``check`` makes it a check job; ``limit`` is the job's limit.
    """

    def __init__(self, *, work, job_id, playbook, extra_vars, template_vars, inventory_path, collections,
                 check=False, limit=None, envvars=None, project_files=None):
        self.private_data_dir = pdd = os.path.join(str(work), 'job-%d' % job_id)
        os.makedirs(pdd, mode=0o700)
        shutil.copytree(PROJECT_DIR, os.path.join(pdd, 'project'), symlinks=True)
        for name, text in (project_files or {}).items():
            with open(os.path.join(pdd, 'project', name), 'w') as handle:
                handle.write(text)
        shutil.copytree(collections.path, os.path.join(pdd, 'requirements_collections'), symlinks=True)
        os.mkdir(os.path.join(pdd, 'cp'), 0o700)
        self._write(os.path.join('inventory', 'hosts'), inventory_script(inventory_path), 0o700)
        self._write(os.path.join('env', 'extravars'), awx_extravars(extra_vars, template_vars))
        self._write(os.path.join('env', 'envvars'), yaml.safe_dump(self.envvars(job_id, envvars)))
        args = (['--check'] if check else []) + ['-u', 'root'] + (['-l', limit] if limit else [])
        self._write(os.path.join('env', 'cmdline'), ' '.join(args))
        self._write(os.path.join('env', 'settings'), json.dumps({
            'job_timeout': JOB_TIMEOUT, 'suppress_ansible_output': True, 'suppress_output_file': False}))
        self._thread, self._runner = ansible_runner.run_async(
            private_data_dir=pdd, ident=str(job_id), playbook=playbook,
            inventory=os.path.join(pdd, 'inventory', 'hosts'), quiet=True)

    def envvars(self, job_id, extra):
        pdd = self.private_data_dir
        collections = os.path.join(pdd, 'requirements_collections')
        # The project's ansible.cfg collections_path comes after requirements_collections, as
        # build_env puts it (read_ansible_config of project/ansible.cfg).
        configured = _ansible_cfg_value(os.path.join(pdd, 'project', 'ansible.cfg'), 'collections_path')
        paths = DEFAULT_COLLECTIONS.split(':')
        if configured:
            paths = [configured] + paths
        env = {
            'JOB_ID': str(job_id),
            'ANSIBLE_RETRY_FILES_ENABLED': 'False',
            'AWX_PRIVATE_DATA_DIR': pdd,
            'ANSIBLE_SSH_CONTROL_PATH_DIR': os.path.join(pdd, 'cp'),
            'ANSIBLE_COLLECTIONS_PATH': os.pathsep.join([collections] + paths),
            # ansible-runner runs this process's ansible-playbook: the pinned one in .venv.
            'PATH': VENV_BIN + os.pathsep + os.environ.get('PATH', ''),
        }
        env.update(extra or {})
        return env

    def _write(self, relative, text, mode=0o600):
        path = os.path.join(self.private_data_dir, relative)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(text)
        os.chmod(path, mode)

    def alive(self):
        return self._thread.is_alive()

    def wait(self):
        self._thread.join(JOB_TIMEOUT + 60)
        if self._thread.is_alive():
            self._runner.canceled = True
            self._thread.join()
            raise AssertionError('job %s did not finish' % self.private_data_dir)
        return Job(self._runner, self.private_data_dir)


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


class Launcher:
    """Starts jobs on one inventory as AWX starts them: a new job id each, the project sync's collections.

    ``envvars`` are more ANSIBLE_* settings for every job (AWX passes its own in env/envvars the same way).
    """

    def __init__(self, work, inventory_path, collections, envvars=None):
        self.work = work
        self.inventory_path = inventory_path
        self.collections = collections
        self.envvars = dict(envvars or {})
        self._ids = itertools.count(1)

    def start(self, key, extra_vars, check=False, limit=None, project_files=None, playbook=None):
        """Start a job of template ``key`` (or of ``playbook`` in the project, with no template)."""
        job_id = next(self._ids)
        extra_vars = dict(extra_vars)
        extra_vars.setdefault('awx_job_id', job_id)
        return RunningJob(work=self.work, job_id=job_id, playbook=playbook or job_templates()[key]['playbook'],
                          extra_vars=extra_vars, template_vars=template_extra_vars(key) if key else {},
                          inventory_path=self.inventory_path, collections=self.collections, check=check,
                          limit=limit, envvars=self.envvars, project_files=project_files)

    def run(self, key, extra_vars, **kwargs):
        """Run one job and wait for it."""
        return self.start(key, extra_vars, **kwargs).wait()


def wait_all(running, poll=0.2):
    """Wait for every job of ``running``; the finished jobs in the order they finished."""
    pending, finished = list(running), []
    while pending:
        for job in [job for job in pending if not job.alive()]:
            pending.remove(job)
            finished.append(job.wait())
        if pending:
            time.sleep(poll)
    return finished


class WorkflowRun:
    """A workflow run as AWX runs it, every job through ansible-runner.

    ``graph`` is the workflow (lib.awx.workflow_graph); ``workflow_vars`` its own extra vars (the survey's
    answers), which win over node data (WorkflowJobNode.get_job_kwargs); ``slices`` the host lists of
    each slice of a sliced template's job.  The nodes run in AWX's order (lib.awx.workflow_run): a node
    of a sliceable template runs as one job per slice, all started together, and succeeds only when
    every slice succeeds (the slice workflow of a sliced job, awx/main/models/workflow.py); each node's
    jobs get the artifacts of every node before it, a sliced node's those of its slices merged in the
    order they finished (WorkflowJob.get_effective_artifacts).
    """

    def __init__(self, launcher, graph, workflow_vars, slices, after_node=None, first_awx_id=1000):
        self.launcher = launcher
        self.graph = graph
        self.workflow_vars = dict(workflow_vars)
        self.slices = [list(hosts) for hosts in slices]
        self.artifacts = {}
        self.jobs = {}
        # after_node(identifier, jobs): called once a node's jobs finished, before the next node starts
        self._after_node = after_node or (lambda identifier, jobs: None)
        self._awx_ids = itertools.count(first_awx_id)
        self.ran = workflow_run(graph, run=self._run_node)

    def _run_node(self, node):
        key = node['template']
        sliced = job_templates()[key]['sliceable']
        # AWX's workflow job of a sliced job: its id is the awx_workflow_job_id of every slice
        slice_workflow = next(self._awx_ids)
        running = []
        for hosts in (self.slices if sliced else [None]):
            variables = job_extra_vars(key, node={'extra_data': node['extra_data']}, artifacts=self.artifacts,
                                       workflow_vars=self.workflow_vars,
                                       awx_vars={'awx_workflow_job_id': slice_workflow} if sliced else None)
            running.append(self.launcher.start(key, variables, limit=','.join(hosts) if hosts else node['limit']))
        jobs = wait_all(running)
        self.jobs[node['identifier']] = jobs
        self._after_node(node['identifier'], jobs)
        for job in jobs:
            self.artifacts.update(job.artifacts)
        return 'successful' if all(job.returncode == 0 for job in jobs) else 'failed'

    def path(self):
        return [identifier for identifier, _status in self.ran]

    def explain(self):
        return '\n'.join('%s %s:\n%s' % (identifier, status, '\n'.join(job.explain() for job in self.jobs[identifier]))
                         for identifier, status in self.ran)


def _ansible_cfg_value(path, name):
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser.get('defaults', name, fallback=None)
