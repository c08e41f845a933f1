"""The rulebooks as data: valid for ansible-rulebook, thresholds as variables defaulting to the decision matrix."""

import copy
import glob
import json
import os
import re

import pytest
import yaml

from ansible_collections.lastgood.rollback.plugins.module_utils import _decide

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RULEBOOKS = os.path.join(ROOT, 'extensions', 'eda', 'rulebooks')
NAMES = sorted(os.path.basename(path)[:-4] for path in glob.glob(os.path.join(RULEBOOKS, '*.yml')))
LOCAL = [name for name in NAMES if not name.endswith('_controller')]
THRESHOLD = re.compile(r'^\{\{ (\w+) \| default\(([\d.]+)\) \}\}$')


def load(name):
    with open(os.path.join(RULEBOOKS, name + '.yml')) as handle:
        return yaml.safe_load(handle)


def test_every_local_rulebook_has_a_controller_twin():
    assert sorted(name + '_controller' for name in LOCAL) == [name for name in NAMES if name.endswith('_controller')]
    assert LOCAL == ['alertmanager', 'audit_breaker', 'auto_rollback']


@pytest.mark.parametrize('name', NAMES)
def test_the_rulebook_is_valid_for_ansible_rulebook_and_its_conditions_parse(name):
    validators = pytest.importorskip('ansible_rulebook.validators')
    condition_parser = pytest.importorskip('ansible_rulebook.condition_parser')
    validators.Validate.rulebook(load(name))
    for ruleset in load(name):
        for rule in ruleset['rules']:
            assert condition_parser.parse_condition(rule['condition'])


def _thresholds(value, found):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == 'threshold':
                found.append(item)
            else:
                _thresholds(item, found)
    elif isinstance(value, list):
        for item in value:
            _thresholds(item, found)
    return found


@pytest.mark.parametrize('name', NAMES)
def test_every_threshold_is_a_variable_whose_default_is_the_decision_matrix(name):
    matrix = dict((rule['name'], rule) for rule in _decide.DEFAULT_RULES)
    rulebook = load(name)
    for ruleset in rulebook:
        for text in _thresholds(ruleset, []):
            assert THRESHOLD.match(text), '%s: threshold %r is not "{{ variable | default(N) }}"' % (name, text)
    overrides = {}
    for ruleset in rulebook:
        for source in ruleset['sources']:
            for args in source.values():
                if isinstance(args, dict):
                    overrides.update(args.get('rule_overrides') or {})
        for rule in ruleset['rules']:
            action = rule['action'].get('run_playbook') or rule['action'].get('run_job_template') or {}
            extra = action.get('extra_vars') or (action.get('job_args') or {}).get('extra_vars') or {}
            overrides.update(extra.get('lastgood_auto_rule_overrides') or {})
    assert overrides or name.startswith('audit_breaker')
    for rule_name, fields in overrides.items():
        default = float(THRESHOLD.match(fields['threshold']).group(2))
        assert default == matrix[rule_name]['threshold'], (name, rule_name)


def _as_local(ruleset):
    """The ruleset with its job template actions written as the local playbook actions they stand for."""
    ruleset = copy.deepcopy(ruleset)
    ruleset['name'] = ruleset['name'].replace(' (EDA controller)', '')
    for rule in ruleset['rules']:
        action = rule['action'].pop('run_job_template', None)
        if action is not None:
            rule['action']['run_playbook'] = {'name': 'lastgood.rollback.auto_rollback', 'lock': action['lock'],
                                              'extra_vars': action['job_args']['extra_vars']}
    return ruleset


def _without_level_playbooks(ruleset):
    ruleset = copy.deepcopy(ruleset)
    for rule in ruleset['rules']:
        for name in ('lastgood_auto_level1_playbook', 'lastgood_auto_level2_playbook'):
            (rule['action'].get('run_playbook') or {}).get('extra_vars', {}).pop(name, None)
    return ruleset


@pytest.mark.parametrize('name', LOCAL)
def test_the_controller_twin_differs_only_in_launching_the_job_template(name):
    local, controller = load(name), load(name + '_controller')
    assert [json.dumps(_without_level_playbooks(ruleset), sort_keys=True) for ruleset in local] == \
        [json.dumps(_as_local(ruleset), sort_keys=True) for ruleset in controller]
