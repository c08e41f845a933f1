"""Surveys: AWX's format, defaults AWX accepts, and variables the playbooks behind them take.

The mapping survey -> job template -> wrapper playbook -> collection playbook -> roles is read
from the files each time (tests/lib/awx.py), so a renamed variable, a new required role option
or a survey left behind fails here.
"""

import json
import os
import re

import jsonschema
import pytest

from lib.awx import (REPO_ROOT, import_vars, job_templates, load_yaml, playbook_inputs, playbook_own_variables,
                     plays, referenced_lastgood_vars, role_calls, role_entry_points, role_options, survey,
                     survey_answer_errors, survey_names, targets, template_extra_vars, template_key, workflow)

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'awx_survey.schema.json')
TEMPLATES = sorted(job_templates())
BOOL_WORDS = {'true', 'false', 'yes', 'no'}


def _schema():
    with open(SCHEMA_PATH) as handle:
        return json.load(handle)


def _questions(name):
    return survey(name)['spec']


def _all_questions():
    return [(name, question) for name in survey_names() for question in _questions(name)]


def _exactly_one_variable(value):
    match = re.match(r'^\{\{\s*(\w+)\s*\}\}$', value) if isinstance(value, str) else None
    return match.group(1) if match else None


# -- format ------------------------------------------------------------------------------------

def test_survey_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(_schema())


@pytest.mark.parametrize('name', survey_names())
def test_survey_is_in_awx_survey_format(name):
    jsonschema.Draft202012Validator(_schema()).validate(survey(name))


GOOD_QUESTION = {'question_name': 'Hosts', 'variable': 'lastgood_hosts', 'type': 'text', 'required': True}
REFUSED = [
    ('no questions', {'name': 'n', 'description': 'd', 'spec': []}),
    ('no description', {'name': 'n', 'spec': [GOOD_QUESTION]}),
    ('question without a variable', dict(GOOD_QUESTION, variable=None)),
    ('required is not a boolean', dict(GOOD_QUESTION, required='yes')),
    ('unknown question type', dict(GOOD_QUESTION, type='boolean')),
    ('integer default given as text', dict(GOOD_QUESTION, type='integer', default='3')),
    ('text default given as a number', dict(GOOD_QUESTION, default=3)),
    ('choice question without choices', dict(GOOD_QUESTION, type='multiplechoice')),
    ('min that is not an integer', dict(GOOD_QUESTION, min='1')),
    ('variable that is no variable name', dict(GOOD_QUESTION, variable='lastgood-hosts')),
    ('text question with choices', dict(GOOD_QUESTION, choices=['a'])),
    ('unknown key', dict(GOOD_QUESTION, help='x')),
]


@pytest.mark.parametrize('what, bad', REFUSED, ids=[case[0] for case in REFUSED])
def test_survey_schema_refuses_what_awx_refuses(what, bad):
    document = bad if 'spec' in bad else {'name': 'n', 'description': 'd',
                                          'spec': [dict((k, v) for k, v in bad.items() if v is not None)]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_schema()).validate(document)
    assert what


@pytest.mark.parametrize('name', survey_names())
def test_survey_variables_are_unique(name):
    variables = [question['variable'] for question in _questions(name)]
    assert len(variables) == len(set(variables))


@pytest.mark.parametrize('name, question', _all_questions(),
                         ids=['%s-%s' % (name, q['variable']) for name, q in _all_questions()])
def test_every_default_is_an_answer_awx_accepts(name, question):
    # AWX drops a default that fails its own answer check without a word: the variable would
    # silently be missing from the job.
    if 'default' in question:
        assert not survey_answer_errors(question, question['default']), name


def test_answer_check_refuses_what_awx_refuses():
    text = dict(GOOD_QUESTION, min=1, max=3)
    assert survey_answer_errors(text, '') and survey_answer_errors(text, 'four') and survey_answer_errors(text, 1)
    number = dict(GOOD_QUESTION, type='integer', min=0, max=100)
    assert survey_answer_errors(number, 101) and survey_answer_errors(number, True)
    assert not survey_answer_errors(number, 0)
    pick = dict(GOOD_QUESTION, type='multiselect', choices='a\nb')
    assert survey_answer_errors(pick, 'a') and survey_answer_errors(pick, ['c']) and not survey_answer_errors(pick, [])


def test_every_job_template_and_the_workflow_have_a_survey_and_every_survey_is_used():
    used = set(definition['survey'] for definition in job_templates().values()) | {workflow()['survey']}
    assert used == set(survey_names())


# -- survey variables -> playbooks and roles ---------------------------------------------------

def _accepted(path):
    """Every variable a playbook takes: its inputs and the options of the roles it runs."""
    accepted = set(playbook_inputs(path))
    for role, entry_point in role_entry_points(path):
        accepted.update(role_options(role, entry_point) or {})
    return accepted


@pytest.mark.parametrize('key', TEMPLATES)
def test_every_survey_variable_is_taken_by_the_playbook_or_the_template_extra_vars(key):
    # The template's extra vars may build a playbook input from answers (level 4's approvals);
    # the next test checks those extra vars set playbook inputs.
    for path in targets(key):
        taken = _accepted(path) | referenced_lastgood_vars(template_extra_vars(key))
        missing = [question['variable'] for question in _questions(job_templates()[key]['survey'])
                   if question['variable'] not in taken]
        assert not missing, '%s does not take %s' % (path, missing)


@pytest.mark.parametrize('key', TEMPLATES)
def test_no_survey_overrides_what_a_playbook_sets_for_the_playbooks_it_imports(key):
    # The circuit breaker runs Level 1 on the hosts it chose (lastgood_hosts on the import): a
    # survey answer for lastgood_hosts would be an extra variable and win, turning Level 1 on
    # hosts the breaker never chose.
    asked = set(question['variable'] for question in _questions(job_templates()[key]['survey']))
    for path in targets(key):
        assert not asked & import_vars(path), path


@pytest.mark.parametrize('key', TEMPLATES)
def test_template_extra_vars_are_taken_by_the_playbook_the_template_runs(key):
    for path in targets(key):
        assert set(template_extra_vars(key)) <= _accepted(path)


def test_workflow_survey_variables_are_taken_by_a_node_of_the_workflow():
    accepted = set()
    for node in workflow()['nodes']:
        if template_key(node):
            accepted |= referenced_lastgood_vars(template_extra_vars(template_key(node)))
            for path in targets(template_key(node)):
                accepted |= _accepted(path)
    missing = [question['variable'] for question in _questions(workflow()['survey']) if question['variable'] not in accepted]
    assert not missing


@pytest.mark.parametrize('key', TEMPLATES)
def test_every_required_role_option_is_set_from_a_variable_that_is_defaulted_or_surveyed(key):
    surveyed = set(question['variable'] for question in _questions(job_templates()[key]['survey']))
    for path in targets(key):
        defined = playbook_inputs(path) | playbook_own_variables(path) | surveyed | set(template_extra_vars(key))
        problems = []
        for role, entry_point, given in role_calls(path):
            options = role_options(role, entry_point)
            if options is None:
                problems.append('role %s has no meta/argument_specs.yml' % role)
                continue
            for option, spec in options.items():
                if not spec.get('required'):
                    continue
                if option not in given:
                    problems.append('%s:%s requires %s, which the playbook does not set' % (role, entry_point, option))
                undefined = referenced_lastgood_vars(given.get(option)) - defined
                if undefined:
                    problems.append('%s:%s option %s comes from %s, defined nowhere'
                                    % (role, entry_point, option, sorted(undefined)))
        assert not problems, '%s: %s' % (path, problems)


# -- answer types fit what the variables hold --------------------------------------------------

def _choices(question):
    choices = question.get('choices') or []
    return choices.splitlines() if isinstance(choices, str) else list(choices)


# What a question's answer can stand in for: a default value of this Python type ...
VALUE_KINDS = {str: ('text', 'textarea', 'password', 'multiplechoice'), int: ('integer',),
               float: ('float', 'integer'), list: ('multiselect',)}
# ... or a role option of this type (bool: a multiple choice between true/false words).
OPTION_KINDS = {'text': ('str', 'path', 'raw'), 'textarea': ('str', 'raw'), 'password': ('str', 'raw'),
                'integer': ('int', 'float', 'raw'), 'float': ('float', 'raw'),
                'multiplechoice': ('str', 'path', 'raw'), 'multiselect': ('list',)}


def _fits_value(question, value):
    if isinstance(value, bool):
        return question['type'] == 'multiplechoice' and set(_choices(question)) <= BOOL_WORDS
    return question['type'] in VALUE_KINDS.get(type(value), ())


def _fits_option(question, option):
    kinds = OPTION_KINDS[question['type']]
    if question['type'] == 'multiplechoice' and set(_choices(question)) <= BOOL_WORDS:
        kinds += ('bool',)
    if option.get('type', 'str') not in kinds:
        return False
    allowed = option.get('choices')
    return not allowed or question['type'] not in ('multiplechoice', 'multiselect') or set(_choices(question)) <= set(allowed)


def _literal_defaults(path):
    values = {}
    for play in plays(path):
        for vars_file in play.get('vars_files') or []:
            values.update(load_yaml(os.path.join(os.path.dirname(path), vars_file)) or {})
        values.update(play.get('vars') or {})
    return dict((name, value) for name, value in values.items() if '{{' not in json.dumps(value))


def _options_fed_by(path):
    """{playbook variable: [(role, option spec)]} for role options set to exactly that variable."""
    fed = {}
    for role, entry_point, given in role_calls(path):
        options = role_options(role, entry_point) or {}
        for option, value in given.items():
            variable = _exactly_one_variable(value)
            if variable and option in options:
                fed.setdefault(variable, []).append(('%s.%s' % (role, option), options[option]))
    return fed


@pytest.mark.parametrize('key', TEMPLATES)
def test_survey_answer_types_fit_the_defaults_and_role_options_they_replace(key):
    problems = []
    for path in targets(key):
        literals, fed = _literal_defaults(path), _options_fed_by(path)
        for question in _questions(job_templates()[key]['survey']):
            name = question['variable']
            if name in literals and not _fits_value(question, literals[name]):
                problems.append('%s (%s) replaces %r' % (name, question['type'], literals[name]))
            for where, option in fed.get(name, []):
                if not _fits_option(question, option):
                    problems.append('%s (%s) feeds %s (%s, choices %s)'
                                    % (name, question['type'], where, option.get('type', 'str'), option.get('choices')))
    assert not problems


def test_docs_name_every_survey_variable():
    with open(os.path.join(REPO_ROOT, 'docs', 'awx.md')) as handle:
        docs = handle.read()
    missing = sorted(set(pair[1]['variable'] for pair in _all_questions()
                         if '`%s`' % pair[1]['variable'] not in docs))
    assert not missing
