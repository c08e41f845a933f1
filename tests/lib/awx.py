"""What the AWX tests know about awx/: templates, surveys, and the playbooks and roles behind them.

Everything is read from the files (awx/vars/templates.yml, awx/surveys/, the wrapper playbooks in
awx/project/, playbooks/, roles/*/meta/argument_specs.yml), so a test built on it follows the
code instead of a copy of it.  The gated rollback workflows' nodes are rendered as
awx/configure.yml renders them (``gated_workflow``); ``workflow_graph`` gives any workflow's nodes
as identifiers, templates, extra data and edges, for tests that run the nodes in order, and
``workflow_run`` / ``workflow_status`` which nodes AWX runs when some fail, and the workflow's status.

Two functions model what AWX does with variables, from its source (awx/main/models/mixins.py,
SurveyJobTemplateMixin; awx/main/models/workflow.py, WorkflowJobNode.get_job_kwargs):

- ``survey_answer_errors`` -- how AWX checks one answer (or default) against its question;
- ``job_extra_vars`` -- the extra vars a job starts with: the template's extra vars, then the
  survey defaults that pass that check, then the node's prompted extra data, then the artifacts
  of the workflow nodes before it, then the workflow's own extra vars -- or, for a job launched
  on its own, the extra vars given at launch (each wins over the ones before).

and one writes them as AWX hands them to Ansible (awx/main/tasks/jobs.py, RunJob.build_extra_vars_file;
awx/main/utils/safe_yaml.py, safe_dump):

- ``awx_extravars`` -- the ``env/extravars`` file of the job: every string ``!unsafe`` except the
  template's own extra vars, which stay plain;
- ``loaded_job_vars`` -- those variables as Ansible loads that file (under ansible-core 2.19 an
  ``!unsafe ''`` loads as None: ansible/awx#16205).
"""

import copy
import functools
import glob
import json
import os
import re
import tempfile

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AWX_DIR = os.path.join(REPO_ROOT, 'awx')
PROJECT_DIR = os.path.join(AWX_DIR, 'project')
SURVEY_DIR = os.path.join(AWX_DIR, 'surveys')
PLAYBOOK_DIR = os.path.join(REPO_ROOT, 'playbooks')
ROLES_DIR = os.path.join(REPO_ROOT, 'roles')
RUN_DEFAULTS = os.path.join(PLAYBOOK_DIR, 'vars', 'run_defaults.yml')
COLLECTION = 'lastgood.rollback'

# Python types of an answer to each question type (AWX's JobTemplateSurveySpec.ALLOWED_TYPES,
# except that a float question also takes an int answer, as its answer check does).
_TEXT_TYPES = ('text', 'textarea', 'password')


class _Loader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """A safe loader that reads Ansible's !unsafe tag as the plain string it marks."""


_Loader.add_constructor('!unsafe', lambda loader, node: loader.construct_scalar(node))


@functools.lru_cache(maxsize=None)
def _parsed(path):
    with open(path) as handle:
        return yaml.load(handle, Loader=_Loader)  # nosec - a SafeLoader subclass


def load_yaml(path):
    """A YAML file's data (a fresh copy: callers may change it)."""
    return copy.deepcopy(_parsed(os.path.abspath(path)))


# -- awx/ --------------------------------------------------------------------------------------

def templates_data():
    return load_yaml(os.path.join(AWX_DIR, 'vars', 'templates.yml'))


def job_templates():
    """{key: job template definition} from awx/vars/templates.yml."""
    return templates_data()['lastgood_awx_job_templates']


def workflow():
    return templates_data()['lastgood_awx_workflow']


def gated_workflow_definitions():
    """{template key: {name, description, template}} of the gated workflows (unrendered)."""
    return templates_data()['lastgood_awx_gated_workflows']


def run_extra_vars():
    """The extra vars (unrendered) of every job template that starts a run."""
    return templates_data()['lastgood_awx_run_extra_vars']


def awx_settings():
    """The variables awx/configure.yml runs with by default (controller.yml, then templates.yml)."""
    settings = dict(load_yaml(os.path.join(AWX_DIR, 'vars', 'controller.yml')))
    settings.update(templates_data())
    return settings


def template_key(node):
    """The job template a workflow node runs (its key in job_templates()), or None."""
    templar = _settings_templar()
    name = templar.template(trust_as_template(node['unified_job_template'].get('name', '')))
    return _template_keys_by_name().get(name)


def trusted(value):
    """``value`` with every string trusted as a template, as Ansible trusts the values of vars files."""
    # Plain Python strings are not templates to Ansible.
    if isinstance(value, dict):
        return dict((key, trusted(item)) for key, item in value.items())
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return trust_as_template(value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=None)
def _settings_templar():
    return Templar(loader=DataLoader(), variables=trusted(awx_settings()))


@functools.lru_cache(maxsize=None)
def _template_keys_by_name():
    templar = _settings_templar()
    return dict((templar.template(trust_as_template(definition['name'])), key)
                for key, definition in job_templates().items())


def render_settings(value, **variables):
    """``value`` rendered as awx/configure.yml renders it: with its vars files and the task's ``variables``.

    Plain Python data, as the module sends it to AWX (JSON), without Ansible's tags.
    """
    settings = awx_settings()
    settings.update(variables)
    return json.loads(json.dumps(Templar(loader=DataLoader(), variables=trusted(settings)).template(trusted(value))))


# -- the gated workflows ------------------------------------------------------------------------
#
# The run-side interface their node data speaks (the run skeleton, docs/dev/run.md): the values a
# node may give.  lastgood_run_until '' runs to the run's end; the others stop after that phase and
# leave the run paused.  continue goes on with a run that began on the host and never starts one.
# abort puts the run's checkpoint back; with lastgood_abort_missing skip, a host the run never
# reached is reported aborted with nothing to put back instead of failing.

RUN_UNTIL = ('', 'checkpoint', 'action', 'verify')
RUN_ACTIONS = ('resume', 'continue', 'abort')
ABORT_MISSING = ('fail', 'skip')


def gated_workflow(key):
    """The nodes of the gated workflow of template ``key``, rendered as awx/configure.yml sends them."""
    return render_settings(templates_data()['lastgood_awx_gated_nodes'], lastgood_awx_gated_template=key)


def gated_workflows():
    """{template key: its gated workflow's rendered nodes}."""
    return dict((key, gated_workflow(key)) for key in gated_workflow_definitions())


def gated_survey(key):
    """The survey a gated workflow asks: its template's."""
    return survey(job_templates()[gated_workflow_definitions()[key]['template']]['survey'])


def workflow_graph(nodes):
    """The nodes of a workflow as a graph, in the order defined: for each node its identifier, the job
    template it runs (a key of job_templates(), None for an approval), its type, its extra data and limit,
    and the identifiers its success, failure and always edges lead to.
    """
    graph = []
    for node in nodes:
        related = node.get('related') or {}
        graph.append({
            'identifier': node['identifier'],
            'type': node['unified_job_template']['type'],
            'template': template_key(node) if node['unified_job_template']['type'] == 'job_template' else None,
            'extra_data': node_extra_data(node),
            'limit': node.get('limit'),
            'success': [target['identifier'] for target in related.get('success_nodes') or []],
            'failure': [target['identifier'] for target in related.get('failure_nodes') or []],
            'always': [target['identifier'] for target in related.get('always_nodes') or []],
        })
    return graph


def gated_workflow_graph(key):
    """The gated workflow of template ``key`` as a graph (workflow_graph), in the order defined."""
    return workflow_graph(gated_workflow(key))


def workflow_run(graph, failing=(), run=None):
    """[(identifier, status)] of the nodes AWX runs, in order, when the nodes in ``failing`` fail -- or, with
    ``run``, with the status ``run(node)`` gives each node it runs (a job run for real: 'successful' or 'failed').

    AWX's rules (awx/main/scheduler/dag_workflow.py, WorkflowDAG.bfs_nodes_to_run and
    mark_dnr_nodes): the roots run first; a node that succeeded runs the nodes of its success and
    always edges, one that failed those of its failure and always edges; a node reached from
    several parents (not "all parents must converge", AWX's default) runs once, when the first
    edge leads to it.  Every other node is never run.
    """
    nodes = dict((node['identifier'], node) for node in graph)
    reached = set(target for node in graph for kind in ('success', 'failure', 'always') for target in node[kind])
    queue = [node['identifier'] for node in graph if node['identifier'] not in reached]
    ran = []
    while queue:
        identifier = queue.pop(0)
        if identifier in [done for done, _status in ran]:
            continue
        if run is not None:
            status = run(nodes[identifier])
        else:
            status = 'failed' if identifier in failing else 'successful'
        ran.append((identifier, status))
        node = nodes[identifier]
        queue += node['success' if status == 'successful' else 'failure'] + node['always']
    return ran


def workflow_status(graph, ran):
    """The status AWX gives a workflow whose nodes ran as ``ran`` (workflow_run): failed when a node that
    failed has neither a failure nor an always edge (WorkflowDAG.has_workflow_failed), else successful --
    a failure its failure route handled leaves the workflow successful."""
    nodes = dict((node['identifier'], node) for node in graph)
    unhandled = [identifier for identifier, status in ran
                 if status == 'failed' and not nodes[identifier]['failure'] + nodes[identifier]['always']]
    return 'failed' if unhandled else 'successful'


def success_chain(graph):
    """The identifiers from the graph's first node along its success edges (the first edge of each)."""
    nodes = dict((node['identifier'], node) for node in graph)
    chain, node = [], graph[0]
    while node and node['identifier'] not in chain:
        chain.append(node['identifier'])
        node = nodes[node['success'][0]] if node['success'] else None
    return chain


def template_extra_vars(key):
    """The extra vars (unrendered) a job template is created with."""
    definition = job_templates()[key]
    result = dict(run_extra_vars()) if definition['run'] else {}
    result.update(definition.get('extra_vars') or {})
    return result


def survey_names():
    return sorted(os.path.basename(path)[:-len('.json')] for path in glob.glob(os.path.join(SURVEY_DIR, '*.json')))


def survey(name):
    with open(os.path.join(SURVEY_DIR, name + '.json')) as handle:
        return json.load(handle)


def wrapper_path(key):
    return os.path.join(PROJECT_DIR, job_templates()[key]['playbook'])


# -- AWX's rules for survey answers and job variables ------------------------------------------

def _choices(question):
    choices = question.get('choices', [])
    if isinstance(choices, str):
        return [line for line in choices.splitlines() if line.strip()]
    return list(choices)


def _limit(question, key):
    value = question.get(key)
    return None if value in ('', None) else value


def survey_answer_errors(question, value):
    """Why AWX would refuse ``value`` as the answer to ``question`` (an empty list when it accepts it)."""
    kind = question['type']
    name = question['variable']
    low, high = _limit(question, 'min'), _limit(question, 'max')
    if kind in _TEXT_TYPES:
        if not isinstance(value, str):
            return ['%s: %r is not a string' % (name, value)]
        size = len(value)
        return [message for bad, message in (
            (low is not None and size < int(low), '%s: %r is shorter than %s' % (name, value, low)),
            (high is not None and size > int(high), '%s: %r is longer than %s' % (name, value, high)),
        ) if bad]
    if kind in ('integer', 'float'):
        allowed = (int,) if kind == 'integer' else (int, float)
        if type(value) not in allowed:  # pylint: disable=unidiomatic-typecheck  # bool is no answer
            return ['%s: %r is not of type %s' % (name, value, kind)]
        return [message for bad, message in (
            (low is not None and value < low, '%s: %r is below %s' % (name, value, low)),
            (high is not None and value > high, '%s: %r is above %s' % (name, value, high)),
        ) if bad]
    if kind == 'multiselect':
        if not isinstance(value, list):
            return ['%s: %r is not a list' % (name, value)]
        return ['%s: %r is not a choice' % (name, item) for item in value if item not in _choices(question)]
    if kind == 'multiplechoice':
        return [] if value in _choices(question) else ['%s: %r is not a choice' % (name, value)]
    return ['%s: unknown question type %r' % (name, kind)]


def survey_defaults(spec):
    """The extra vars the defaults of a survey give a job: AWX passes a default only if it is a valid answer."""
    return dict((question['variable'], question['default']) for question in spec['spec']
                if question.get('default') is not None and not survey_answer_errors(question, question['default']))


def node_extra_data(node):
    return dict(node.get('extra_data') or {})


def job_extra_vars(key, node=None, artifacts=None, workflow_vars=None, awx_vars=None):
    """The extra vars AWX starts a job of template ``key`` with (see the module docstring)."""
    result = template_extra_vars(key)
    result.update(survey_defaults(survey(job_templates()[key]['survey'])))
    result.update(node_extra_data(node or {}))
    result.update(artifacts or {})
    result.update(workflow_vars or {})
    result.update(awx_vars or {})
    return result


class _UnsafeStringDumper(yaml.SafeDumper):  # pylint: disable=too-many-ancestors
    """AWX's SafeStringDumper (awx/main/utils/safe_yaml.py at ansible/awx@e21dd0a0, lines 8-12): every str is !unsafe."""

    def represent_data(self, data):
        if isinstance(data, str):
            return self.represent_scalar('!unsafe', data)
        return super().represent_data(data)


def awx_extravars(extra_vars, template_vars):
    """The env/extravars file AWX writes for a job with ``extra_vars``, of a template with ``template_vars``.

    AWX's safe_dump (awx/main/utils/safe_yaml.py at ansible/awx@e21dd0a0, lines 28-66) with the
    template's extra vars as its safe_dict (awx/main/tasks/jobs.py, RunJob.build_extra_vars_file,
    lines 1027-1046, under the default ALLOW_JINJA_IN_EXTRA_VARS = 'template',
    awx/settings/defaults.py line 492): one YAML document per top-level key, dumped plain when the
    template has that key with that same value, else with every string -- keys too, at any depth
    -- tagged !unsafe.  Survey answers, workflow node data, artifacts of earlier nodes and
    variables given at launch are all tagged.
    """
    parts = []
    for name, value in extra_vars.items():
        plain = name in template_vars and template_vars[name] == value
        parts.append(yaml.dump_all([{name: value}], None, Dumper=yaml.SafeDumper if plain else _UnsafeStringDumper,
                                   default_flow_style=False))
    return ''.join(parts)


def loaded_job_vars(key, **kwargs):
    """The extra vars of a job (job_extra_vars' arguments) as Ansible loads AWX's extravars file of it.

    ansible-runner passes the file as ``-e @env/extravars``, which Ansible loads trusted as
    templates (ansible.utils.vars.load_extra_vars) -- except what is tagged !unsafe.
    """
    text = awx_extravars(job_extra_vars(key, **kwargs), template_extra_vars(key))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, 'extravars')
        with open(path, 'w') as handle:
            handle.write(text)
        return DataLoader().load_from_file(path, cache='none', trusted_as_template=True) or {}


# -- wrapper playbook -> collection playbook -> roles --------------------------------------------

def imported_playbooks(path):
    """The collection playbooks a wrapper imports, as paths in playbooks/."""
    found = []
    for play in load_yaml(path) or []:
        for target in _imports(play):
            if not target.startswith(COLLECTION + '.'):
                raise AssertionError('%s imports %s, not a %s playbook' % (path, target, COLLECTION))
            found.append(os.path.join(PLAYBOOK_DIR, target[len(COLLECTION) + 1:] + '.yml'))
    return found


def _tasks(tasks):
    for task in tasks or []:
        yield task
        for section in ('block', 'rescue', 'always'):
            yield from _tasks(task.get(section))


_IMPORT_PLAYBOOK = ('import_playbook', 'ansible.builtin.import_playbook')


_DEFAULT_IMPORT = re.compile(r"^\{\{\s*\w+\s*\|\s*default\('([^']+)'\)\s*\}\}$")


def _imports(entry):
    """The playbooks an entry imports; a templated name (a site may pass another playbook) by its default."""
    found = []
    for key in _IMPORT_PLAYBOOK:
        if key in entry:
            match = _DEFAULT_IMPORT.match(entry[key].strip())
            found.append(match.group(1) if match else entry[key])
    return found


def _import_path(path, target):
    """The file an import names: relative to the importing playbook, or a collection playbook by FQCN."""
    if target.startswith(COLLECTION + '.'):
        return os.path.join(PLAYBOOK_DIR, target[len(COLLECTION) + 1:] + '.yml')
    return os.path.join(os.path.dirname(path), target)


def plays(path):
    """The plays of a playbook, with those of the playbooks it imports (in the collection when a collection playbook)."""
    found = []
    for entry in load_yaml(path) or []:
        if 'hosts' in entry:
            found.append(entry)
        for target in _imports(entry):
            if path.startswith(PLAYBOOK_DIR) or not target.startswith(COLLECTION + '.'):
                found += plays(_import_path(path, target))
    return found


def _playbook_files(path):
    files = [path]
    for entry in load_yaml(path) or []:
        for target in _imports(entry):
            if path.startswith(PLAYBOOK_DIR) or not target.startswith(COLLECTION + '.'):
                files += _playbook_files(_import_path(path, target))
    return files


def import_vars(path):
    """Variables a playbook sets on the playbooks it imports (extra vars would override them)."""
    names = set()
    for entry in load_yaml(path) or []:
        if _imports(entry):
            names.update(entry.get('vars') or {})
    return names


def all_tasks(play):
    for section in ('pre_tasks', 'tasks', 'post_tasks', 'handlers'):
        yield from _tasks(play.get(section))


_ROLE_ACTIONS = ('include_role', 'import_role', 'ansible.builtin.include_role', 'ansible.builtin.import_role')


def role_calls(path):
    """(role, entry point, vars) for every role a playbook includes or imports."""
    calls = []
    for play in plays(path):
        # A play's own vars reach every role it runs; a role's or a task's vars take precedence.
        play_vars = play.get('vars') or {}
        for role in play.get('roles') or []:
            name = role if isinstance(role, str) else role.get('role') or role.get('name')
            role_vars = {} if isinstance(role, str) else role.get('vars') or {}
            calls.append((_short_role(name), 'main', dict(play_vars, **role_vars)))
        for task in _with_included_tasks(all_tasks(play), os.path.dirname(path)):
            for action in _ROLE_ACTIONS:
                if action in task:
                    spec = task[action]
                    calls.append((_short_role(_resolve(spec['name'], play_vars)), spec.get('tasks_from', 'main'),
                                  dict(play_vars, **(task.get('vars') or {}))))
    return calls


_TASK_INCLUDES = ('include_tasks', 'import_tasks', 'ansible.builtin.include_tasks', 'ansible.builtin.import_tasks')


def _with_included_tasks(tasks, base):
    """The tasks, and those of the task files they include by a literal relative path (e.g. playbooks/tasks/)."""
    for task in tasks:
        yield task
        for action in _TASK_INCLUDES:
            target = task.get(action)
            if isinstance(target, dict):
                target = target.get('file')
            if isinstance(target, str) and '{{' not in target:
                included = os.path.join(base, target)
                yield from _with_included_tasks(_tasks(load_yaml(included)), os.path.dirname(included))


def _task_files(path):
    """The task files a playbook's plays include or import by a literal relative path (the run skeleton)."""
    found = []

    def walk(tasks, base):
        for task in tasks:
            for action in _TASK_INCLUDES:
                target = task.get(action)
                if isinstance(target, dict):
                    target = target.get('file')
                if isinstance(target, str) and '{{' not in target:
                    included = os.path.join(base, target)
                    if included not in found:
                        found.append(included)
                        walk(_tasks(load_yaml(included)), os.path.dirname(included))

    for source in _playbook_files(path):
        for play in load_yaml(source) or []:
            if 'hosts' in play:
                walk(all_tasks(play), os.path.dirname(source))
    return found


def role_entry_points(path):
    """(role, entry point) for every role a playbook runs."""
    return [call[:2] for call in role_calls(path)]


_PLAY_VAR = re.compile(r'^\{\{\s*(\w+)\s*\}\}$')


def _resolve(name, play_vars):
    """A role name given as one play variable (the run skeleton's lastgood_action_role) resolved from the play's vars."""
    match = _PLAY_VAR.match(name.strip())
    return play_vars.get(match.group(1), name) if match else name


def _short_role(name):
    return name[len(COLLECTION) + 1:] if name.startswith(COLLECTION + '.') else name


def role_options(role, entry_point):
    """{option: spec} of a role's entry point, from its meta/argument_specs.yml ({} when it has none)."""
    path = os.path.join(ROLES_DIR, role, 'meta', 'argument_specs.yml')
    if not os.path.exists(path):
        return None
    specs = load_yaml(path).get('argument_specs') or {}
    return (specs.get(entry_point) or {}).get('options') or {}


def run_defaults():
    return load_yaml(RUN_DEFAULTS) or {}


_READ_WITH_DEFAULT = re.compile(r'\b(lastgood_\w+)\s*\|\s*default\(')
_SET_FACT = ('set_fact', 'ansible.builtin.set_fact')


def playbook_inputs(path):
    """The variables a collection playbook takes from its caller (extra vars, survey answers).

    The run-wide values (playbooks/vars/run_defaults.yml and any other vars_files), the play's own
    vars, and the lastgood_* variables it reads with a default (lastgood_hosts, lastgood_run_id).
    """
    inputs = set()
    for source in _playbook_files(path) + _task_files(path):
        with open(source) as handle:
            inputs.update(_READ_WITH_DEFAULT.findall(handle.read()))
    for play in plays(path):
        inputs.update(play.get('vars') or {})
        for vars_file in play.get('vars_files') or []:
            inputs.update(load_yaml(os.path.join(os.path.dirname(path), vars_file)) or {})
    return inputs


def playbook_own_variables(path):
    """Variables a playbook defines while it runs: set_fact, register, loop variables."""
    names = set()
    for play in plays(path):
        for task in all_tasks(play):
            for action in _SET_FACT:
                if isinstance(task.get(action), dict):
                    names.update(key for key in task[action] if key != 'cacheable')
            if task.get('register'):
                names.add(task['register'])
            if 'loop' in task or any(key.startswith('with_') for key in task):
                names.add((task.get('loop_control') or {}).get('loop_var', 'item'))
    return names


def targets(key):
    """The playbooks a job template runs: those its wrapper imports, or the wrapper itself."""
    path = wrapper_path(key)
    return imported_playbooks(path) or [path]


def referenced_lastgood_vars(value):
    """The lastgood_* variables a (templated) value refers to."""
    return set(re.findall(r'\b(lastgood_\w+)', json.dumps(value)))


# -- set_stats artifacts ---------------------------------------------------------------------------

_SET_STATS = ('set_stats', 'ansible.builtin.set_stats')
# An action plugin publishes as set_stats does: ansible_stats={'data': {'<key>': ...
_ACTION_STATS = re.compile(r"ansible_stats'?[=:] ?\{'data': \{'(\w+)'")


def _tasks_in(path):
    data = load_yaml(path)
    if not isinstance(data, list):
        return []  # not a playbook or a task list (an inventory, a vars file)
    if any('hosts' in entry or 'import_playbook' in entry or 'ansible.builtin.import_playbook' in entry
           for entry in data):
        return [task for play in plays(path) for task in all_tasks(play)]
    return list(all_tasks({'tasks': data}))


def artifact_publishers():
    """{artifact key: [file that publishes it]}: set_stats tasks of roles, playbooks and the AWX project,
    and the action plugins that publish as set_stats does."""
    paths = (glob.glob(os.path.join(ROLES_DIR, '*', 'tasks', '*.yml')) + glob.glob(os.path.join(PLAYBOOK_DIR, '*.yml'))
             + glob.glob(os.path.join(PROJECT_DIR, '*.yml')))
    found = {}
    for path in sorted(paths):
        for task in _tasks_in(path):
            for action in _SET_STATS:
                if action in task:
                    for key in task[action]['data']:
                        found.setdefault(key, []).append(os.path.relpath(path, os.path.dirname(ROLES_DIR)))
    for path in sorted(glob.glob(os.path.join(REPO_ROOT, 'plugins', 'action', '*.py'))
                       + glob.glob(os.path.join(REPO_ROOT, 'plugins', 'plugin_utils', '*.py'))):
        with open(path, encoding='utf-8') as handle:
            for key in _ACTION_STATS.findall(handle.read()):
                found.setdefault(key, []).append(os.path.relpath(path, REPO_ROOT))
    return found
