# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Results Ansible can read, whatever the names on disk are.

A file name is bytes; Python hands a name that is not UTF-8 to the engine as a str with
lone surrogates (``os.fsdecode``), and ansible-core refuses a module result holding one
("Refusing to deserialize an invalid UTF8 string value") - after the work is done, so a
restore that completed would be reported FAILED.  Every module therefore builds its
``AnsibleModule`` as a :class:`ResultModule`, which writes every string of its result,
failure and warnings in one form (docs/store.md, "Names that are not UTF-8"):

- a string without lone surrogates is reported as it is;
- otherwise each byte that is not UTF-8 becomes ``\\xNN`` (two lowercase hex digits) and
  each backslash ``\\x5c``;
- so that the form reads back unambiguously, a valid string that already looks like it
  (it holds a backslash and every backslash starts ``\\x5c`` or ``\\x80`` to ``\\xff``) is
  written the same way.

The text of a file that a diff shows is left as it is unless it is not UTF-8 itself.
``unescape_names`` turns the form back into the name, for options such as ``paths`` that
an operator fills with a path copied from a result.
"""

from __future__ import annotations

import os
import re
import sys
import traceback

from ansible.module_utils.basic import AnsibleModule

# the bytes the form writes as \xNN: a backslash and what cannot be UTF-8 (lone surrogates)
_ESCAPE = re.compile(r'\\x(5[cC]|[89a-fA-F][0-9a-fA-F])')
_SURROGATE = re.compile('[\ud800-\udfff]')


def _in_escaped_form(text):
    return '\\' in text and '\\' not in _ESCAPE.sub('', text)


def _escape_char(char):
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
        return '\\x%02x' % (code - 0xDC00)
    if 0xD800 <= code <= 0xDFFF:  # any other lone surrogate: its bytes as Python would write them
        return ''.join('\\x%02x' % byte for byte in char.encode('utf-8', 'surrogatepass'))
    return '\\x5c' if char == '\\' else char


def escape_name(text):
    """``text`` as valid UTF-8 that :func:`unescape_name` reads back as ``text``."""
    if not _SURROGATE.search(text) and not _in_escaped_form(text):
        return text
    return ''.join(_escape_char(char) for char in text)


def _unescape_byte(match):
    code = int(match.group(1), 16)
    return '\\' if code == 0x5C else chr(0xDC00 + code)


def unescape_name(text):
    """The name that :func:`escape_name` wrote as ``text``; any other text is the name itself."""
    if not _in_escaped_form(text):
        return text
    raw = _ESCAPE.sub(_unescape_byte, text)
    # \xc3\xa9 read back is the name "é", as os.fsdecode would give it
    return os.fsdecode(os.fsencode(raw))


def unescape_names(texts):
    """:func:`unescape_name` of each of ``texts`` (an option's list, or None)."""
    return None if texts is None else [unescape_name(text) for text in texts]


def escape_result(value):
    """``value`` (a result: dicts, lists, strings, ...) with every string and key through :func:`escape_name`."""
    if isinstance(value, str):
        return escape_name(value)
    if isinstance(value, dict):
        return {escape_result(key): escape_result(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_result(item) for item in value]
    return value


class ResultModule(AnsibleModule):
    """An ``AnsibleModule`` whose results, failures and warnings are always valid UTF-8 (see the module docstring)."""

    def exit_json(self, **kwargs):
        super().exit_json(**self._escaped(kwargs))

    def fail_json(self, msg, **kwargs):
        current = sys.exc_info()[1]
        if 'exception' not in kwargs and current is not None:
            # ansible-core would format the exception itself, names and all, when tracebacks are on
            trace = ''.join(traceback.format_exception(type(current), current, current.__traceback__))
            if escape_name(trace) != trace:
                kwargs['exception'] = trace
        super().fail_json(escape_name(str(msg)), **self._escaped(kwargs))

    def warn(self, warning, **kwargs):
        super().warn(escape_name(warning), **kwargs)

    def _escaped(self, kwargs):
        # the file attributes Ansible adds for a result's path, looked up under the real name
        self.add_path_info(kwargs)
        escaped = {}
        for key, value in kwargs.items():
            if key == 'warnings':
                # ansible-core hands them to warn(), which escapes them: once is enough
                escaped[key] = value
            elif key == 'diff':
                escaped[key] = _escaped_diff(value)
            else:
                escaped[key] = escape_result(value)
        return escaped


def _escaped_diff(diff):
    """A diff's headers like any result; its texts only where they are not UTF-8, so that a file is shown as it is."""
    if isinstance(diff, (list, tuple)):
        return [_escaped_diff(item) for item in diff]
    if not isinstance(diff, dict):
        return escape_result(diff)
    return {key: _diff_text(value) if key in ('before', 'after') else escape_result(value) for key, value in diff.items()}


def _diff_text(value):
    if isinstance(value, str) and not _SURROGATE.search(value):
        return value
    return escape_result(value)


def params_or_defaults(params, argument_spec):
    """``params`` with each null replaced by its option's default: an empty AWX survey answer arrives as null."""
    return dict((name, spec.get('default') if params.get(name) is None else params[name])
                for name, spec in argument_spec.items())
