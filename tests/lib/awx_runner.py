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
import json
import os
import shutil
import subprocess

import ansible_runner
import yaml

from lib.awx import PROJECT_DIR, REPO_ROOT, awx_extravars

VENV_BIN = os.path.join(REPO_ROOT, '.venv', 'bin')
DEFAULT_COLLECTIONS = '~/.ansible/collections:/usr/share/ansible/collections'
JOB_TIMEOUT = 900


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

    def wait(self):
        self._thread.join(JOB_TIMEOUT + 60)
        if self._thread.is_alive():
            self._runner.canceled = True
            self._thread.join()
            raise AssertionError('job %s did not finish' % self.private_data_dir)
        return Job(self._runner, self.private_data_dir)


def _ansible_cfg_value(path, name):
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser.get('defaults', name, fallback=None)
