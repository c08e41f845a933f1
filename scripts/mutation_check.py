"""Remove each fsync and each rename from the engine in turn; every removal must make a test fail.

For every call in plugins/module_utils/*.py to ``os.fsync``, ``os.fdatasync``,
``fsync_fd``, ``fsync_dir``, ``os.rename``, ``os.replace``, ``exchange`` or
``_exchange_syscall``, a mutant is made on a temporary copy of the checkout with
that one call removed (a statement becomes ``pass``, a call inside an
expression becomes ``None``; line numbers stay).  The mutant is killed when a
test fails:

  stage 1  the quick durability and ordering tests (tests/reliability/test_durability.py)
  stage 2  the default reliability suite and the mutated file's own unit tests

A mutant that survives both means the suite cannot tell that fsync or rename
from its absence: fix the tests (or the engine, if the call is redundant).

Usage (from the repository root; takes a few minutes, not part of the default CI run):

    .venv/bin/python scripts/mutation_check.py [--only _fsatomic.py] [--list] [--jobs 2]

Writes tests/output/mutation-check.json (the reliability summary table reads it;
a run with --only updates the entries of those files) and exits non-zero when
any mutant survives.
"""

import argparse
import ast
import concurrent.futures
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join('plugins', 'module_utils')
OUTPUT = os.path.join(ROOT, 'tests', 'output', 'mutation-check.json')
FSYNCS = frozenset(('fsync', 'fdatasync', 'fsync_fd', 'fsync_dir'))
RENAMES = frozenset(('rename', 'replace', 'exchange', '_exchange_syscall'))
OS_ONLY = frozenset(('fsync', 'fdatasync', 'rename', 'replace'))
UNIT_TESTS = os.path.join('tests', 'unit', 'plugins', 'module_utils')
STAGES = ('durability', 'suite')


def stage_paths(stage, engine_file=None):
    """Tests of a stage: the quick durability tests; then the reliability suite and the mutated
    file's own unit tests (all engine unit tests when ``engine_file`` is None, for the baseline)."""
    if stage == 'durability':
        return ['tests/reliability/test_durability.py']
    names = [engine_file] if engine_file else sorted(os.listdir(os.path.join(ROOT, ENGINE)))
    units = [os.path.join(UNIT_TESTS, 'test_%s' % name.lstrip('_')) for name in names if name.endswith('.py')]
    return ['tests/reliability'] + [path for path in units if os.path.exists(os.path.join(ROOT, path))]


def call_name(node):
    """``'fsync'`` for ``os.fsync(...)``, ``'fsync_dir'`` for ``fsync_dir(...)``/``_fsatomic.fsync_dir(...)``."""
    func = node.func
    if isinstance(func, ast.Attribute):
        if func.attr in OS_ONLY and not (isinstance(func.value, ast.Name) and func.value.id == 'os'):
            return None
        return func.attr if func.attr in FSYNCS | RENAMES else None
    if isinstance(func, ast.Name) and func.id in FSYNCS | RENAMES and func.id not in OS_ONLY:
        return func.id
    return None


def find_sites(path):
    """[(line, col, end_line, end_col, kind, name, as_statement)] of the calls to remove."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    statements = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = call_name(node)
            if name is None:
                continue
            kind = 'fsync' if name in FSYNCS else 'rename'
            sites.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, kind, name,
                          id(node) in statements))
    return sorted(sites)


def mutate(source, site):
    """``source`` with the call at ``site`` removed, line numbers unchanged."""
    line, col, end_line, end_col, _kind, _name, as_statement = site
    lines = source.splitlines(True)
    start = sum(len(text) for text in lines[:line - 1]) + col
    end = sum(len(text) for text in lines[:end_line - 1]) + end_col
    # a multi-line call becomes one line plus blank lines, so every later line keeps its number
    replacement = ('pass' if as_statement else 'None') + '\n' * (end_line - line)
    mutated = source[:start] + replacement + source[end:]
    compile(mutated, '<mutant>', 'exec')
    return mutated


def run_stage(copy, paths, timeout, deselect=(), stop_first=True):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    cmd = [os.path.join(ROOT, '.venv', 'bin', 'python'), '-m', 'pytest', '-q', '-rfE', '-p', 'no:cacheprovider',
           '--no-header'] + (['-x'] if stop_first else []) + paths
    for nodeid in deselect:
        cmd.extend(['--deselect', nodeid])
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 'timeout', ''
    lines = proc.stdout.decode('utf-8', 'replace').strip().splitlines()
    failed = [line for line in lines if line.startswith(('FAILED', 'ERROR'))]
    return ('failed' if proc.returncode not in (0, 5) else 'passed'), (failed or lines[-1:] or [''])[0]


def checkout_files():
    """The files of the checkout (tracked, and untracked but not ignored): what a test run needs."""
    out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                         stdout=subprocess.PIPE, check=True).stdout
    return [name for name in out.decode('utf-8', 'surrogateescape').split('\0') if name]


def copy_checkout(copy, files):
    for rel in files:
        source = os.path.join(ROOT, rel)
        if not os.path.lexists(source):
            continue  # deleted in the working tree
        dest = os.path.join(copy, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), dest)
        elif os.path.isfile(source):
            shutil.copy2(source, dest)


def baseline(snapshot, timeout):
    """Tests that already fail on the unmutated checkout, per stage (others' work in progress):
    they are deselected, so that only a failure the mutant causes counts as a kill."""
    work = tempfile.mkdtemp(prefix='lastgood-mutant-')
    copy = os.path.join(work, 'checkout')
    failing = {}
    try:
        shutil.copytree(snapshot, copy, symlinks=True)
        for stage in STAGES:
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
            cmd = [os.path.join(ROOT, '.venv', 'bin', 'python'), '-m', 'pytest', '-q', '-rfE', '-p',
                   'no:cacheprovider', '--no-header'] + stage_paths(stage)
            proc = subprocess.run(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False)
            lines = proc.stdout.decode('utf-8', 'replace').splitlines()
            failing[stage] = sorted({line.split(' ')[1] for line in lines if line.startswith(('FAILED ', 'ERROR '))})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failing


def check_mutant(job):
    rel, site, timeout, snapshot, failing = job
    work = tempfile.mkdtemp(prefix='lastgood-mutant-')
    copy = os.path.join(work, 'checkout')
    try:
        shutil.copytree(snapshot, copy, symlinks=True)
        target = os.path.join(copy, rel)
        with open(target) as handle:
            source = handle.read()
        with open(target, 'w') as handle:
            handle.write(mutate(source, site))
        tail = ''
        for stage in STAGES:
            paths = stage_paths(stage, os.path.basename(rel))
            deselect = [nodeid for nodeid in failing.get(stage, ()) if nodeid.split('::')[0] in paths
                        or nodeid.startswith(tuple(path + '/' for path in paths))]
            outcome, tail = run_stage(copy, paths, timeout, deselect=deselect)
            if outcome == 'timeout':
                return {'killed': False, 'by': None,
                        'detail': 'stage %s timed out after %d s: undecided, rerun with a longer --timeout'
                                  % (stage, timeout)}
            if outcome != 'passed':
                return {'killed': True, 'by': stage, 'detail': tail}
        return {'killed': False, 'by': None, 'detail': tail}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--only', action='append', help='engine file name(s) to mutate, e.g. _fsatomic.py')
    parser.add_argument('--list', action='store_true', help='list the mutants and exit')
    parser.add_argument('--jobs', type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument('--timeout', type=int, default=1800, help='seconds per test stage')
    args = parser.parse_args()
    # one snapshot of the checkout for the whole run: others may change the engine meanwhile
    snapshot = tempfile.mkdtemp(prefix='lastgood-mutant-snapshot-')
    try:
        copy_checkout(snapshot, checkout_files())
        return check_all(args, snapshot)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


def check_all(args, snapshot):
    sites = []
    engine_dir = os.path.join(snapshot, ENGINE)
    for name in sorted(os.listdir(engine_dir)):
        if not name.endswith('.py') or (args.only and name not in args.only):
            continue
        rel = os.path.join(ENGINE, name)
        sites.extend((rel, site) for site in find_sites(os.path.join(snapshot, rel)))
    if args.list:
        for rel, site in sites:
            print('%s:%d  remove %s()' % (rel, site[0], site[5]))
        print('%d mutants' % len(sites))
        return 0
    failing = baseline(snapshot, args.timeout)
    if failing.get(STAGES[0]):
        print('the quick stage fails without any mutation; fix that first: %s' % failing[STAGES[0]])
        return 2
    for stage, nodeids in failing.items():
        if nodeids:
            print('already failing before any mutation, deselected in stage %s: %s' % (stage, ', '.join(nodeids)))
    jobs = [(rel, site, args.timeout, snapshot, failing) for rel, site in sites]
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for (rel, site, *_rest), outcome in zip(jobs, pool.map(check_mutant, jobs)):
            label = '%s:%d remove %s()' % (rel, site[0], site[5])
            verdict = ('killed by %s: %s' % (outcome['by'], outcome['detail'][:90]) if outcome['killed']
                       else 'SURVIVED %s' % outcome['detail'][:90])
            print('%-60s %s' % (label, verdict), flush=True)
            results.append(dict(outcome, file=rel, line=site[0], call=site[5], kind=site[4]))
    if args.only and os.path.exists(OUTPUT):
        # a partial run replaces the results of the files it mutated in the last full run
        with open(OUTPUT) as handle:
            previous = json.load(handle).get('mutants', [])
        redone = {result['file'] for result in results}
        results = [result for result in previous if result['file'] not in redone] + results
    killed = sum(1 for result in results if result['killed'])
    summary = {
        'total': len(results), 'killed': killed,
        'fsync': {'total': sum(1 for r in results if r['kind'] == 'fsync'),
                  'killed': sum(1 for r in results if r['kind'] == 'fsync' and r['killed'])},
        'rename': {'total': sum(1 for r in results if r['kind'] == 'rename'),
                   'killed': sum(1 for r in results if r['kind'] == 'rename' and r['killed'])},
        'when': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'survivors': ['%s:%d %s()' % (r['file'], r['line'], r['call']) for r in results if not r['killed']],
        'mutants': results,
    }
    if not args.only or os.path.exists(OUTPUT):
        os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
        with open(OUTPUT, 'w') as handle:
            json.dump(summary, handle, indent=2)
    print('mutations killed: %d of %d (fsync %d/%d, rename %d/%d)'
          % (killed, len(results), summary['fsync']['killed'], summary['fsync']['total'],
             summary['rename']['killed'], summary['rename']['total']))
    return 0 if killed == len(results) else 1


if __name__ == '__main__':
    sys.exit(main())
