"""docs/roles.md is what the argument specs of every role in roles/ say (through ansible-doc)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, 'scripts', 'gen_role_docs.py')

pytestmark = pytest.mark.skipif(not os.access(os.path.join(ROOT, '.venv', 'bin', 'ansible-doc'), os.X_OK),
                                reason='run scripts/setup.sh first')


def roles_with_specs():
    directory = os.path.join(ROOT, 'roles')
    return sorted(name for name in os.listdir(directory)
                  if os.path.isfile(os.path.join(directory, name, 'meta', 'argument_specs.yml')))


def test_role_reference_matches_the_argument_specs_of_every_role():
    run = subprocess.run([sys.executable, SCRIPT, '--check'], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_role_reference_has_a_section_for_every_role_and_entry_point():
    with open(os.path.join(ROOT, 'docs', 'roles.md'), encoding='utf-8') as handle:
        text = handle.read()
    roles = roles_with_specs()
    assert 'checkpoint_restore' in roles and 'level2_config' in roles
    missing = [name for name in roles if '\n## lastgood.rollback.%s\n' % name not in text]
    assert missing == [], 'run .venv/bin/python scripts/gen_role_docs.py'
    # Roles with more than one entry point document each (level 4 approves before the run).
    assert '### Entry point `approve`' in text


def test_every_role_directory_has_argument_specs():
    directory = os.path.join(ROOT, 'roles')
    without = [name for name in sorted(os.listdir(directory))
               if os.path.isdir(os.path.join(directory, name)) and name not in roles_with_specs()]
    assert without == []
