import json
import os
import types

import pytest
from hypothesis import given, strategies as st
from ansible.module_utils._internal import _traceback

from ansible_collections.lastgood.rollback.plugins.module_utils._result import (
    ResultModule,
    escape_name,
    escape_result,
    unescape_name,
    unescape_names,
)
from lib.module_runner import run_module

NOT_UTF8 = os.fsdecode(b'/srv/app/\xff\xfe.conf')


def valid_for_ansible(value):
    """What ansible-core checks on a module result: every string encodes as UTF-8."""
    json.dumps(value, ensure_ascii=False).encode('utf-8')
    return True


@pytest.mark.parametrize('name, shown', [
    (NOT_UTF8, '/srv/app/\\xff\\xfe.conf'),
    (os.fsdecode(b'caf\xe9 \xc3\xa9'), 'caf\\xe9 \u00e9'),  # Latin-1 byte escaped, valid UTF-8 kept
    (os.fsdecode(b'a\\b\xff'), 'a\\x5cb\\xff'),  # the backslash of a name that needs the form
    ('caf\u00e9.conf', 'caf\u00e9.conf'),
    ('C:\\temp\\new', 'C:\\temp\\new'),
    ('dev-disk-by\\x2duuid.mount', 'dev-disk-by\\x2duuid.mount'),  # systemd's escapes are below \x80
    ('a\\xffb', 'a\\x5cxffb'),  # valid, but would read back as the byte 0xff
    ('a\\x5Cb', 'a\\x5cx5Cb'),
    ('\ud800', '\\xed\\xa0\\x80'),  # a lone surrogate no file name gives: still valid
])
def test_escape_name_writes_bytes_that_are_not_utf8_and_backslashes_of_such_names_as_hex(name, shown):
    assert escape_name(name) == shown
    assert valid_for_ansible(shown)


@given(st.binary(max_size=40))
def test_every_file_name_reads_back_from_its_escaped_form(raw):
    name = os.fsdecode(raw)
    shown = escape_name(name)
    assert valid_for_ansible(shown)
    assert unescape_name(shown) == name


@given(st.text(alphabet=st.sampled_from('ab\\x5cfF8\u00e9'), max_size=20))
def test_every_valid_text_reads_back_from_its_escaped_form(text):
    assert unescape_name(escape_name(text)) == text


def test_unescape_takes_upper_case_hex_and_gives_the_name_os_fsdecode_would():
    assert unescape_name('/srv/\\xFF\\xfe.conf') == os.fsdecode(b'/srv/\xff\xfe.conf')
    assert unescape_name('caf\\xc3\\xa9') == 'caf\u00e9'
    assert unescape_names(None) is None
    assert unescape_names(['/etc/app', '/srv/\\xff']) == ['/etc/app', os.fsdecode(b'/srv/\xff')]


def test_escape_result_walks_keys_values_lists_and_tuples_and_keeps_other_types():
    result = {'changed': True, 'files': 3, 'parent': None, 'plan': [{'path': NOT_UTF8, 'reasons': ('content',)}],
              NOT_UTF8: {'size': 1.5}}
    assert escape_result(result) == {
        'changed': True, 'files': 3, 'parent': None, 'plan': [{'path': '/srv/app/\\xff\\xfe.conf', 'reasons': ['content']}],
        '/srv/app/\\xff\\xfe.conf': {'size': 1.5}}


def module_that(action):
    def main():
        action(ResultModule(argument_spec={}, supports_check_mode=True))
    return types.SimpleNamespace(main=main)


def test_results_and_warnings_naming_a_non_utf8_file_are_valid():
    def action(module):
        module.warn('%s is a socket; not backed up' % NOT_UTF8)
        module.exit_json(changed=True, special_files=[NOT_UTF8], msg='backed up %s' % NOT_UTF8)
    failed, result = run_module(module_that(action), {})
    assert not failed and valid_for_ansible(result)
    assert result['special_files'] == ['/srv/app/\\xff\\xfe.conf'] and result['msg'] == 'backed up /srv/app/\\xff\\xfe.conf'
    assert [warning['event']['msg'] for warning in result['warnings']] == ['/srv/app/\\xff\\xfe.conf is a socket; not backed up']


def test_a_warnings_list_in_the_result_is_escaped_once():
    def action(module):
        module.exit_json(changed=False, warnings=['kept %s' % NOT_UTF8])
    failed, result = run_module(module_that(action), {})
    assert not failed and valid_for_ansible(result)
    assert 'kept /srv/app/\\xff\\xfe.conf' in [warning['event']['msg'] for warning in result['warnings']]


def test_a_failure_naming_a_non_utf8_file_is_valid():
    def action(module):
        module.fail_json(msg='cannot restore %s' % NOT_UTF8, paths=[{'path': NOT_UTF8, 'state': 'untouched'}])
    failed, result = run_module(module_that(action), {})
    assert failed and valid_for_ansible(result)
    assert result['msg'] == 'cannot restore /srv/app/\\xff\\xfe.conf'
    assert result['paths'] == [{'path': '/srv/app/\\xff\\xfe.conf', 'state': 'untouched'}]


def test_a_failure_while_handling_an_error_naming_a_non_utf8_file_keeps_its_traceback_valid(monkeypatch):
    monkeypatch.setattr(_traceback, '_is_traceback_enabled', lambda event: True)

    def action(module):
        try:
            raise ValueError('cannot read %s' % NOT_UTF8)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    failed, result = run_module(module_that(action), {})
    assert failed and valid_for_ansible(result)
    assert 'ValueError: cannot read /srv/app/\\xff\\xfe.conf' in result['exception'] and 'Traceback' in result['exception']


def test_the_file_attributes_of_a_returned_non_utf8_path_are_those_of_the_real_file(tmp_path):
    directory = os.path.join(os.fsdecode(tmp_path), os.fsdecode(b'\xff'))
    os.mkdir(directory, 0o750)

    def action(module):
        module.exit_json(changed=False, path=directory)
    failed, result = run_module(module_that(action), {})
    assert not failed and result['path'] == str(tmp_path) + '/\\xff'
    assert result['state'] == 'directory' and result['mode'] == '0750'


def test_a_diff_shows_file_text_as_it_is_and_names_its_non_utf8_file_escaped():
    text = 'separator: "\\x80"\n'  # valid YAML whose only backslash looks like the form

    def action(module):
        module.exit_json(changed=True, diff=[{'before_header': NOT_UTF8, 'after_header': NOT_UTF8,
                                              'before': text, 'after': 'bad: %s\n' % NOT_UTF8}])
    failed, result = run_module(module_that(action), {})
    assert not failed and valid_for_ansible(result)
    assert result['diff'] == [{'before_header': '/srv/app/\\xff\\xfe.conf', 'after_header': '/srv/app/\\xff\\xfe.conf',
                               'before': text, 'after': 'bad: /srv/app/\\xff\\xfe.conf\n'}]
