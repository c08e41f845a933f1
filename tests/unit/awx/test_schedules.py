"""The periodic checkpoints: the AWX schedules awx/configure.yml creates (awx/vars/templates.yml)."""

import re

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from lib.awx import awx_settings, job_templates, playbook_inputs, targets, templates_data


def schedules():
    return templates_data()['lastgood_awx_schedules']


def rendered(value):
    """A value of awx/vars as awx/configure.yml sends it (the settings it refers to are plain values)."""
    if isinstance(value, dict):
        return dict((key, rendered(item)) for key, item in value.items())
    if not isinstance(value, str):
        return value
    return Templar(loader=DataLoader(), variables=awx_settings()).template(trust_as_template(value))


def minutes_between_runs(rrule):
    """The interval of an iCalendar rule as AWX stores it (DTSTART:... RRULE:FREQ=...;INTERVAL=n)."""
    match = re.match(r'^DTSTART:(\d{8}T\d{6}Z) RRULE:FREQ=(MINUTELY|HOURLY);INTERVAL=(\d+)$', rrule)
    assert match, rrule
    return int(match.group(3)) * (60 if match.group(2) == 'HOURLY' else 1)


def test_checkpoints_every_2_hours_and_the_critical_state_every_15_minutes():
    every = sorted(minutes_between_runs(rendered(schedule['rrule'])) for schedule in schedules().values())
    assert every == [15, 120]
    assert all(schedule['template'] == 'checkpoint' for schedule in schedules().values())
    assert all(rendered(schedule['enabled']) in (True, 'True', 'true') for schedule in schedules().values())


@pytest.mark.parametrize('key', sorted(schedules()))
def test_extra_data_is_taken_by_the_playbook_of_the_template(key):
    schedule = schedules()[key]
    assert schedule['template'] in job_templates()
    for path in targets(schedule['template']):
        assert set(schedule['extra_data']) <= set(playbook_inputs(path)), path


def test_each_schedule_has_its_own_set_and_run_states_and_keeps_a_day():
    data = [rendered(schedule['extra_data']) for schedule in schedules().values()]
    assert len(set(item['lastgood_set'] for item in data)) == len(data)
    assert 'app' not in set(item['lastgood_set'] for item in data)
    assert len(set(item['lastgood_state_dir'] for item in data)) == len(data)
    for schedule in schedules().values():
        per_day = 24 * 60 // minutes_between_runs(rendered(schedule['rrule']))
        assert rendered(schedule['extra_data'])['lastgood_keep_runs'] == per_day
    for item in data:
        assert item['lastgood_checkpoint_paths'] and all(path.startswith('/') for path in item['lastgood_checkpoint_paths'])


def test_schedule_names_are_unique_and_prefixed():
    names = [rendered(schedule['name']) for schedule in schedules().values()]
    assert len(set(names)) == len(names)
    assert all(name.startswith(awx_settings()['lastgood_awx_name_prefix']) for name in names)
