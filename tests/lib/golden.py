"""Whole-text comparison with a reviewed golden file; LASTGOOD_REGENERATE_GOLDEN=1 rewrites them instead.

A rewritten golden file is a change to review like code: it is what a person reads at 3 a.m.
"""

import os

REGENERATE = os.environ.get('LASTGOOD_REGENERATE_GOLDEN') == '1'


def assert_golden(path, text):
    """``text`` is exactly the content of the golden file ``path`` (rewritten instead when regenerating)."""
    if REGENERATE:
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text)
        return
    with open(path, encoding='utf-8') as handle:
        expected = handle.read()
    assert text == expected, '%s differs; rerun with LASTGOOD_REGENERATE_GOLDEN=1 and review the diff' % path
