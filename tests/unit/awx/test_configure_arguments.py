"""awx/configure.yml uses only arguments the installed awx.awx modules accept.

There is no AWX here.  The argument specs are read from the awx.awx collection's source (each
module's ``argument_spec`` in ``main()`` plus the shared ``AUTH_ARGSPEC``), and the workflow
nodes, which the module takes as free-form dicts, are checked against the suboptions its
documentation declares.  tests/integration/test_awx_configure.py runs the real modules.
"""

import ast
import importlib.util
import os

import pytest
import yaml

from lib.awx import AWX_DIR, gated_workflows, load_yaml, workflow

CONFIGURE = os.path.join(AWX_DIR, 'configure.yml')
AWX_COLLECTION = os.path.join(
    list(importlib.util.find_spec('ansible_collections.awx.awx').submodule_search_locations)[0], 'plugins')
PREFIX = 'awx.awx.'


def _literal(node):
    """A literal made of dict(...) calls, lists, tuples and constants; None for anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict':
        return dict((keyword.arg, _literal(keyword.value)) for keyword in node.keywords)
    if isinstance(node, ast.Dict):
        return dict((_literal(key), _literal(value)) for key, value in zip(node.keys, node.values))
    return None


def _parse(path):
    with open(path) as handle:
        return ast.parse(handle.read(), path)


def _assigned(tree, name):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
    raise LookupError(name)


def auth_argspec():
    tree = _parse(os.path.join(AWX_COLLECTION, 'module_utils', 'controller_api.py'))
    return _literal(_assigned(tree, 'AUTH_ARGSPEC'))


def module_path(module):
    return os.path.join(AWX_COLLECTION, 'modules', module + '.py')


def module_argspec(module):
    """The module's full argument spec: its own argument_spec and the controller connection options."""
    spec = dict(auth_argspec())
    spec.update(_literal(_assigned(_parse(module_path(module)), 'argument_spec')))
    return spec


def module_documentation(module):
    return yaml.safe_load(_literal(_assigned(_parse(module_path(module)), 'DOCUMENTATION')))


def accepted_names(spec):
    """{name or alias: option spec}."""
    names = {}
    for name, option in spec.items():
        names[name] = option
        for alias in (option or {}).get('aliases') or []:
            names[alias] = option
    return names


def _is_template(value):
    return isinstance(value, str) and '{{' in value


def awx_tasks():
    """(task name, module, arguments) for every awx.awx task of awx/configure.yml."""
    found = []
    for play in load_yaml(CONFIGURE):
        for task in play.get('tasks') or []:
            for key, args in task.items():
                if key.startswith(PREFIX):
                    found.append((task['name'], key[len(PREFIX):], args))
    return found


def argument_errors(spec, args, where):
    """Unknown option names and literal values outside the option's choices."""
    names = accepted_names(spec)
    errors = []
    for key, value in args.items():
        if key not in names:
            errors.append('%s: %s is not an option (the module takes: %s)' % (where, key, ', '.join(sorted(spec))))
            continue
        choices = (names[key] or {}).get('choices')
        if choices and not _is_template(value) and value not in choices:
            errors.append('%s: %s=%r is not one of %s' % (where, key, value, choices))
    return errors


def test_configure_uses_the_awx_awx_modules_it_is_meant_to():
    modules = sorted(set(task[1] for task in awx_tasks()))
    assert modules == ['credential', 'credential_type', 'execution_environment', 'job_template',
                       'notification_template', 'project', 'schedule', 'workflow_job_template',
                       'workflow_job_template_node']


@pytest.mark.parametrize('name, module, args', awx_tasks(), ids=[task[0] for task in awx_tasks()])
def test_every_task_argument_is_an_option_of_the_installed_awx_awx_module(name, module, args):
    assert not argument_errors(module_argspec(module), args, '%s (awx.awx.%s)' % (name, module))


def test_module_defaults_for_the_controller_group_are_connection_options_every_module_takes():
    for play in load_yaml(CONFIGURE):
        defaults = play['module_defaults']['group/awx.awx.controller']
        assert not argument_errors(auth_argspec(), defaults, 'module_defaults')


def _suboption_errors(options, value, where):
    if not isinstance(value, dict):
        return []
    errors = []
    for key, item in value.items():
        if key not in options:
            errors.append('%s: %s is not a documented suboption (%s)' % (where, key, ', '.join(sorted(options))))
            continue
        option = options[key]
        choices = option.get('choices')
        if choices and not _is_template(item) and item not in choices:
            errors.append('%s.%s: %r is not one of %s' % (where, key, item, choices))
        inner = option.get('suboptions')
        if inner:
            items = item if isinstance(item, list) else [item]
            for index, element in enumerate(items):
                errors += _suboption_errors(inner, element, '%s.%s[%d]' % (where, key, index))
    return errors


def test_every_workflow_node_uses_only_suboptions_the_workflow_module_documents():
    options = module_documentation('workflow_job_template')['options']['workflow_nodes']['suboptions']
    errors = []
    for node in workflow()['nodes']:
        errors += _suboption_errors(options, node, node['identifier'])
    # the gated rollback workflows, rendered as the task renders them for each
    for key, nodes in sorted(gated_workflows().items()):
        for node in nodes:
            errors += _suboption_errors(options, node, '%s %s' % (key, node['identifier']))
    assert not errors


def test_argument_check_finds_an_option_the_module_does_not_have():
    spec = module_argspec('job_template')
    assert argument_errors(spec, {'name': 'x', 'ask_credentials_on_launch': True}, 'probe')
    assert argument_errors(spec, {'name': 'x', 'job_type': 'dry-run'}, 'probe')
    assert not argument_errors(spec, {'name': 'x', 'ask_credential': True, 'controller_host': 'h'}, 'probe')
