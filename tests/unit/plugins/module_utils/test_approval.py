import calendar
import time

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _approval, _decide

NOW = calendar.timegm(time.strptime('2026-12-07T12:00:00Z', '%Y-%m-%dT%H:%M:%SZ'))
RECENT = '2026-12-07T11:00:00Z'


def approval(who, role, when=RECENT, **extra):
    return dict({'who': who, 'role': role, 'when': when}, **extra)


def check(approvals, conditions=('system_compromise_suspected',), **options):
    return _approval.check(_decide.decide(conditions=list(conditions)), approvals, now=NOW, **options)


def test_two_people_for_the_two_roles_approve_level4():
    result = check([approval('ana', 'cto'), approval('bo', 'security_architect')])
    assert result['approved'] is True
    assert result['required'] == ['cto', 'security_architect']
    assert result['approvers'] == ['ana', 'bo']
    assert result['missing'] == [] and result['invalid'] == []
    assert [entry['problems'] for entry in result['valid']] == [[], []]


@pytest.mark.parametrize('when, problem', [
    ('2026-12-06T11:59:59Z', 'older than 24 hours'),
    ('2026-12-07T12:05:01Z', 'when is in the future'),
    ('yesterday', 'when is not YYYY-MM-DDTHH:MM:SSZ (UTC)'),
    ('2026-13-45T00:00:00Z', 'when is not YYYY-MM-DDTHH:MM:SSZ (UTC)'),
])
def test_approval_outside_its_window_or_format_does_not_count(when, problem):
    assert _approval.problems_of(approval('bo', 'security_architect', when), NOW, 24) == [problem]


def test_clock_skew_of_five_minutes_and_any_age_with_zero_are_accepted():
    assert _approval.problems_of(approval('bo', 'cto', '2026-12-07T12:05:00Z'), NOW, 24) == []
    assert _approval.problems_of(approval('bo', 'cto', '2020-01-01T00:00:00Z'), NOW, 0) == []


def test_approval_without_its_fields_names_each_missing_one():
    assert _approval.problems_of({'who': ' ', 'role': None}, NOW, 24) == ['no who', 'no role', 'no when']


def test_same_person_for_two_roles_is_refused_and_the_message_says_so():
    result = check([approval('ana', 'cto'), approval('ana', 'security_architect')])
    assert result['approved'] is False
    message = _approval.refusal(result, ['system_compromise_suspected'])
    assert message.startswith(_approval.REFUSED)
    assert 'recorded in lastgood_approvals (the variable of the rollback_level4 playbook' in message
    assert message.endswith('The same person may not approve for two roles.')
    assert 'Missing' not in message


def test_refusal_lists_the_missing_roles_and_the_approvals_not_counted():
    result = check([approval('ana', 'cto'), approval('bo', 'security_architect', 'yesterday')],
                   extra_authority=['engineering_lead'])
    message = _approval.refusal(result, ['system_compromise_suspected'])
    assert 'Rule system_compromise_suspected requires the approval of cto and security_architect and ' \
           'engineering_lead' in message
    assert 'Missing: security_architect, engineering_lead.' in message
    assert 'Not counted: bo as security_architect (when is not YYYY-MM-DDTHH:MM:SSZ (UTC)).' in message


def test_conditions_that_call_for_another_level_are_refused_whatever_the_approvals():
    result = check([approval('ana', 'cto'), approval('bo', 'security_architect')], ['critical_bug_in_code'])
    assert result['approved'] is False
    message = _approval.refusal(result, ['critical_bug_in_code'])
    assert 'The conditions given (critical_bug_in_code) call for Level 3, not Level 4' in message
    assert 'in lastgood_conditions' in message


def test_only_approvals_for_a_required_role_are_chosen():
    result = check([approval('ana', 'cto'), approval('bo', 'security_architect'), approval('cy', 'intern')])
    assert [entry['who'] for entry in _approval.chosen(result)] == ['ana', 'bo']
    assert result['approvers'] == ['ana', 'bo']


def test_a_time_loaded_as_a_timestamp_counts_as_the_same_utc_time():
    """AWX's !unsafe extra vars load `when: ...Z` as a datetime; the module gets its ISO form, +00:00."""
    now = calendar.timegm(time.strptime('2026-11-22T02:00:00Z', '%Y-%m-%dT%H:%M:%SZ'))
    assert _approval.problems_of({'who': 'ana', 'role': 'cto', 'when': '2026-11-22T01:00:00+00:00'}, now, 24) == []
    assert _approval.problems_of({'who': 'ana', 'role': 'cto', 'when': '2026-11-22T01:00:00+02:00'}, now, 24) == [
        'when is not YYYY-MM-DDTHH:MM:SSZ (UTC)']
