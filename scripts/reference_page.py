"""What the reference page generators (gen_module_docs.py, gen_role_docs.py) share.

Both ask ``ansible-doc --json`` about every plugin of one type in this checkout, render a
Markdown page, and either write it or, with ``--check``, exit 1 when the committed page is stale.
"""

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = 'lastgood.rollback'


def ansible_doc(plugin_type, names):
    """``ansible-doc --json -t <plugin_type>`` for ``lastgood.rollback.<name>`` of each name, as a dict by FQCN.

    Exits with ansible-doc's output when it fails or leaves a name undocumented.
    """
    tool = os.path.join(ROOT, '.venv', 'bin', 'ansible-doc')
    if not os.access(tool, os.X_OK):
        tool = shutil.which('ansible-doc') or 'ansible-doc'
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    fqcns = ['%s.%s' % (COLLECTION, name) for name in names]
    run = subprocess.run([tool, '--json', '-t', plugin_type] + fqcns,
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit('ansible-doc failed (%d):\n%s%s' % (run.returncode, run.stdout, run.stderr))
    data = json.loads(run.stdout)
    missing = [fqcn for fqcn in fqcns if fqcn not in data]
    if missing:
        sys.exit('ansible-doc returned no documentation for: %s\n%s' % (', '.join(missing), run.stderr))
    return data


def write_or_check(description, script, output, source, generate, summary):
    """Command line of a generator: write ``output`` from ``generate()``, or with --check exit 1 if it is stale.

    ``script`` is the generator's ``__file__`` (named in the stale message), ``source`` what the page is
    generated from (in --help and the diff), ``summary()`` what was written, e.g. ``'12 modules'``.
    Returns the exit status.
    """
    relative = os.path.relpath(output, ROOT)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--check', action='store_true', help='exit 1 if %s differs from %s' % (relative, source))
    args = parser.parse_args()
    text = generate()
    if args.check:
        current = open(output, encoding='utf-8').read() if os.path.exists(output) else ''
        if current != text:
            diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), relative, source)
            sys.stdout.writelines(list(diff)[:200])
            print('\n%s is stale: run .venv/bin/python %s' % (relative, os.path.relpath(os.path.abspath(script), ROOT)))
            return 1
        return 0
    with open(output, 'w', encoding='utf-8') as handle:
        handle.write(text)
    print('wrote %s (%s)' % (relative, summary()))
    return 0
