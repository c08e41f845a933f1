"""docs/modules.md is what ansible-doc says about every module in plugins/modules."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, 'scripts', 'gen_module_docs.py')

pytestmark = pytest.mark.skipif(not os.access(os.path.join(ROOT, '.venv', 'bin', 'ansible-doc'), os.X_OK),
                                reason='run scripts/setup.sh first')


def test_module_reference_matches_ansible_doc_for_every_module():
    run = subprocess.run([sys.executable, SCRIPT, '--check'], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_module_reference_lists_every_module_file():
    with open(os.path.join(ROOT, 'docs', 'modules.md'), encoding='utf-8') as handle:
        text = handle.read()
    modules = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'plugins', 'modules'))
                     if name.endswith('.py') and not name.startswith('_'))
    assert modules
    missing = [name for name in modules if '\n## lastgood.rollback.%s\n' % name not in text]
    assert missing == [], 'run .venv/bin/python scripts/gen_module_docs.py'
