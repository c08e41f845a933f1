# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark the engine against the tools people use instead.

    .venv/bin/python bench/run.py [--corpus NAME ...] [--group NAME ...] [--runs N] [--quick]

For every corpus and every comparison group the contenders run interleaved
(round r starts at contender r mod n, so none always goes first), one warm-up
round and then ``--runs`` timed rounds, on the same data in the same run.  Each
run is a child process: wall time is measured around it and its peak memory
is the ``ru_maxrss`` that ``wait4`` reports (the largest process of the tree).

Caches: the page cache cannot be dropped reliably (not as a non-root user, not
inside a VM whose host caches too), so all runs are warm-cache.  The sources
are read before the timed rounds (warm-up) and every run starts from the same
state: set-up and clean-up are untimed, and clean-up ends with sync(2) so no
contender pays for another's write-back.  Contenders that do not fsync (rsync,
cp, ansible copy) return with their data still in the page cache; the engine
returns with it on disk.

Results: a table on stdout (medians, ratio engine/peer, peak memory, targets)
and JSON in ``bench/results/<UTC timestamp>.json``.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import corpora  # noqa: E402  (bench/ is not a package)

DRIVER = os.path.join(HERE, 'engine_driver.py')
TIME_BIN = '/usr/bin/time'
SET_NAME = 'bench'
GROUPS = ('backup', 'verify', 'restore')

# (group, corpus, numerator, denominator or None for throughput, comparison, bound, text)
TARGETS = (
    ('backup', 'large', 'engine_full', 'rsync', '<=', 1.0, 'full backup with manifest <= 1.0 x rsync -a'),
    ('backup', 'small', 'engine_full', 'rsync', '<=', 1.0, 'full backup with manifest <= 1.0 x rsync -a'),
    ('verify', 'large', 'engine_verify', None, '>=', 1.5, 'verify >= 1.5 GB/s'),
    ('backup', 'small', 'engine_incremental', 'engine_full', '<=', 0.25, 'incremental of unchanged tree <= 0.25 x full'),
    ('restore', 'large', 'engine_restore', 'rsync', '<=', 1.2, 'restore <= 1.2 x rsync -a into an empty target'),
    ('restore', 'small', 'engine_restore', 'rsync', '<=', 1.2, 'restore <= 1.2 x rsync -a into an empty target'),
    ('restore', 'mixed', 'engine_restore', 'rsync', '<=', 1.2, 'restore <= 1.2 x rsync -a into an empty target'),
)


class BenchError(RuntimeError):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def run_child(argv, cwd=REPO, env=None, log_path=None):
    """Run ``argv``; return (seconds, peak RSS in KiB, stdout bytes).  Raises BenchError on failure.

    The peak RSS comes from ``wait4``.  A child forked from this Python process
    inherits its high-water mark through exec, so when GNU time is installed the
    child is started through it: time is small, forks the command and reports
    the command's own ``ru_maxrss`` (from its ``wait4``).
    """
    out_path = log_path or os.devnull
    err_path = log_path + '.err' if log_path else os.devnull
    rss_path = (log_path or os.path.join(REPO, '.bench-rss')) + '.rss'
    command = [TIME_BIN, '-f', '%M', '-o', rss_path, '--'] + list(argv) if os.access(TIME_BIN, os.X_OK) else argv
    with open(out_path, 'wb') as out, open(err_path, 'wb') as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        status, usage = os.wait4(proc.pid, 0)[1:]
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss
    if command is not argv:
        with open(rss_path) as handle:
            lines = handle.read().split()
        os.unlink(rss_path)
        if lines and lines[-1].isdigit():
            rss = int(lines[-1])
    output = b''
    if log_path:
        with open(log_path, 'rb') as handle:
            output = handle.read()
    if proc.returncode != 0:
        detail = ''
        if log_path:
            with open(err_path, 'rb') as handle:
                detail = (output[-2000:] + handle.read()[-2000:]).decode('utf-8', 'replace')
        raise BenchError('%s exited with %d\n%s' % (' '.join(argv), proc.returncode, detail))
    return elapsed, rss, output


class Contender:
    """One way of doing the group's job: untimed ``setup``, timed ``argv``, untimed ``cleanup``."""

    def __init__(self, name, argv, setup=None, cleanup=None, once=False, tool=None, env=None, note=''):
        self.name = name
        self.argv = argv
        self.setup = setup or (lambda: None)
        self.cleanup = cleanup or (lambda state: None)
        self.once = once
        self.tool = tool
        self.env = env
        self.note = note
        self.times = []
        self.rss_kib = []

    def available(self):
        return self.tool is None or shutil.which(self.tool) is not None

    def run(self, log_path, timed):
        state = self.setup()
        try:
            elapsed, rss = run_child(self.argv(state), env=self.env, log_path=log_path)[:2]
        finally:
            self.cleanup(state)
            os.sync()
        if timed:
            self.times.append(elapsed)
            self.rss_kib.append(rss)

    def summary(self):
        if not self.times:
            return {'runs': 0}
        return {
            'runs': len(self.times), 'times_s': [round(t, 4) for t in self.times],
            'median_s': round(statistics.median(self.times), 4),
            'min_s': round(min(self.times), 4), 'max_s': round(max(self.times), 4),
            'peak_rss_kib': max(self.rss_kib), 'note': self.note,
        }


class Workspace:
    """Paths and prepared state for one corpus."""

    def __init__(self, corpus_name, source, work_dir, python):
        self.corpus = corpus_name
        self.source = source
        self.dir = os.path.join(work_dir, corpus_name)
        self.python = python
        self.logs = os.path.join(self.dir, 'logs')
        remove(self.dir)
        os.makedirs(self.logs)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def driver(self, *args):
        return [self.python, DRIVER] + list(args)

    def engine_backup(self, store, source=None):
        argv = self.driver('backup', '--backup-root', store, '--set', SET_NAME, source or self.source)
        return json.loads(run_child(argv, log_path=self.path('logs', 'prepare.out'))[2])


def ansible_bin(name):
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else (shutil.which(name) or name)


def ansible_env():
    env = dict(os.environ)
    env['ANSIBLE_CONFIG'] = os.path.join(REPO, 'ansible.cfg')
    env.setdefault('ANSIBLE_LOCALHOST_WARNING', 'False')
    env.setdefault('ANSIBLE_INVENTORY_UNPARSED_WARNING', 'False')
    return env


def set_entries(store):
    directory = os.path.join(store, SET_NAME)
    return set(os.listdir(directory)) if os.path.isdir(directory) else set()


def durable_rsync(src, target):
    """``rsync -a`` and then sync(1) -f on the target: the peer's copy on disk, as the engine leaves its own.

    Every run starts after a sync(2) (Contender.run), so the syncfs flushes only
    what this rsync wrote.
    """
    return ['sh', '-c', 'rsync -a "$1/" "$2/" && sync -f "$2"', 'sh', src, target]


def backup_group(ws):
    src = ws.source
    restic_env = dict(os.environ, RESTIC_PASSWORD_FILE=ws.path('restic.pw'), RESTIC_CACHE_DIR=ws.path('restic-cache'))
    with open(ws.path('restic.pw'), 'w') as handle:
        handle.write('benchmark-only password\n')
    incr_store = ws.path('store-incr')
    ws.engine_backup(incr_store)

    def new_store():
        return ws.path('store-full')

    def incremental(*extra):
        return lambda _: ws.driver('backup', '--backup-root', incr_store, '--set', SET_NAME, '--incremental',
                                   *(extra + (src,)))

    def restic_setup():
        repo = ws.path('restic-repo')
        run_child(['restic', '-r', repo, 'init'], env=restic_env)
        return repo

    def restic_cleanup(repo):
        remove(repo)
        remove(ws.path('restic-cache'))

    target = ws.path('target')
    sums = ws.path('target.sha256')

    def cp_cleanup(state):  # pylint: disable=unused-argument
        remove(target)
        remove(sums)

    return [
        Contender('engine_full', lambda store: ws.driver('backup', '--backup-root', store, '--set', SET_NAME, src),
                  setup=new_store, cleanup=remove, note='engine in a subprocess: full backup, SHA-256 manifest, fsynced'),
        # Each incremental backup is kept, so the next one is based on it, as consecutive scheduled runs are:
        # removing it would change the ctime of every inode it shares and make the next run re-hash them all.
        Contender('engine_incremental', incremental(),
                  note='engine: incremental backup of the unchanged tree onto the previous one'),
        Contender('engine_incremental_rehash', incremental('--rehash'),
                  note='engine: the same, re-hashing every hardlinked file (rehash: true; also the first run after '
                       'retention removed a backup sharing its inodes)'),
        Contender('rsync', lambda _: ['rsync', '-a', src + '/', target + '/'], cleanup=lambda _: remove(target),
                  tool='rsync', note='rsync -a, no manifest, no fsync'),
        Contender('rsync_durable', lambda _: durable_rsync(src, target), cleanup=lambda _: remove(target), tool='rsync',
                  note='rsync -a, then syncfs of the target (sync -f): the same copy made durable'),
        Contender('cp_sha256sum',
                  lambda _: ['sh', '-c', 'cp -a "$1" "$2" && cd "$2" && find . -type f -print0 | xargs -0 sha256sum > "$3"',
                             'sh', src, target, sums],
                  cleanup=cp_cleanup, tool='sha256sum', note='cp -a, then sha256sum of every file; no fsync'),
        Contender('ansible_copy',
                  lambda _: [ansible_bin('ansible'), 'localhost', '-m', 'ansible.builtin.copy',
                             '-a', 'src=%s/ dest=%s/ remote_src=true' % (src, target)],
                  cleanup=lambda _: remove(target), env=ansible_env(),
                  note='ansible.builtin.copy remote_src (one ansible run)'),
        Contender('restic', lambda repo: ['restic', '-r', repo, 'backup', '--quiet', src],
                  setup=restic_setup, cleanup=restic_cleanup, tool='restic', env=restic_env,
                  note='restic backup into a fresh repository (init untimed)'),
        Contender('module_backup',
                  lambda store: [ansible_bin('ansible'), 'localhost', '-m', 'lastgood.rollback.backup',
                                 '-a', 'paths=%s backup_root=%s set=%s' % (src, store, SET_NAME)],
                  setup=new_store, cleanup=remove, once=True, env=ansible_env(),
                  note='the backup module through ansible (run once: overhead over engine_full)'),
    ]


def verify_group(ws):
    store = ws.path('store-verify')
    result = ws.engine_backup(store)
    backup_dir = os.path.join(store, SET_NAME, result['id'])
    return [
        Contender('engine_verify', lambda _: ws.driver('verify', '--backup-root', store, '--set', SET_NAME, result['id']),
                  note='engine: content + metadata against MANIFEST.json'),
        Contender('sha256sum_c', lambda _: ['sh', '-c', 'cd "$1" && sha256sum -c --quiet MANIFEST.sha256', 'sh', backup_dir],
                  tool='sha256sum', note='sha256sum -c MANIFEST.sha256 (content only)'),
    ]


def restore_group(ws):
    """The engine restores a backup's source path in place, so the source here is a copy the runs may remove."""
    live = ws.path('live')
    run_child(['cp', '-a', ws.source, live])
    store = ws.path('store-restore')
    backup_id = ws.engine_backup(store, live)['id']
    remove(live)
    data = os.path.join(store, SET_NAME, backup_id, 'data', live.lstrip('/'))
    target = ws.path('restored')
    return [
        Contender('engine_restore', lambda _: ws.driver('restore', '--backup-root', store, '--set', SET_NAME, backup_id),
                  cleanup=lambda _: remove(live),
                  note='engine: verify the backup, stage, swap in, verify the target (target absent before)'),
        Contender('rsync', lambda _: ['rsync', '-a', data + '/', target + '/'], cleanup=lambda _: remove(target),
                  tool='rsync', note='rsync -a from the backup into an empty target, no fsync'),
        Contender('rsync_durable', lambda _: durable_rsync(data, target), cleanup=lambda _: remove(target),
                  tool='rsync', note='rsync -a into an empty target, then syncfs of the target (sync -f)'),
    ]


BUILDERS = {'backup': backup_group, 'verify': verify_group, 'restore': restore_group}
ENGINE_OF = {'backup': 'engine_full', 'verify': 'engine_verify', 'restore': 'engine_restore'}


def run_group(group, ws, rounds, warmup, only=None):
    contenders = [c for c in BUILDERS[group](ws) if not only or c.name in only]
    active = [c for c in contenders if c.available()]
    missing = {c.name: 'unavailable: %s not installed (run bench/setup.sh)' % c.tool for c in contenders if not c.available()}
    for number in range(warmup + rounds):
        timed = number >= warmup
        shift = number % len(active)
        for contender in active[shift:] + active[:shift]:
            if contender.once and number > warmup:
                continue
            log_path = os.path.join(ws.logs, '%s-%s-%d.out' % (group, contender.name, number))
            contender.run(log_path, timed)
        log('  %s/%s round %d/%d done%s' % (ws.corpus, group, number + 1, warmup + rounds, '' if timed else ' (warm-up)'))
    results = {c.name: c.summary() for c in active}
    for name, reason in missing.items():
        results[name] = {'runs': 0, 'unavailable': reason}
    return results


def ratios(group, results):
    engine = results.get(ENGINE_OF[group], {}).get('median_s')
    out = {}
    for name, summary in results.items():
        if name == ENGINE_OF[group] or not summary.get('median_s') or not engine:
            continue
        out['%s/%s' % (ENGINE_OF[group], name)] = round(engine / summary['median_s'], 3)
    return out


def check_targets(report):
    checked = []
    for group, corpus, num, den, op, bound, text in TARGETS:
        entry = report['groups'].get(corpus, {}).get(group)
        if not entry:
            continue
        res = entry['contenders']
        a = res.get(num, {}).get('median_s')
        if den is None:
            value = report['corpora'][corpus]['bytes'] / a / 1e9 if a else None
            unit = 'GB/s'
        else:
            b = res.get(den, {}).get('median_s')
            value = a / b if a and b else None
            unit = 'x'
        met = None if value is None else (value <= bound if op == '<=' else value >= bound)
        checked.append({'corpus': corpus, 'target': text, 'value': None if value is None else round(value, 3),
                        'unit': unit, 'bound': bound, 'met': met})
    return checked


def machine():
    model = ''
    try:
        with open('/proc/cpuinfo') as handle:
            for line in handle:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return {'nproc': os.cpu_count(), 'cpu': model, 'kernel': platform.release(), 'python': platform.python_version(),
            'mem_gib': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1)}


def disk_of(path):
    """Filesystem type and device holding ``path`` (from /proc/mounts: the longest matching mount point)."""
    best = ('', '', '')
    real = os.path.realpath(path)
    try:
        with open('/proc/mounts') as handle:
            for line in handle:
                dev, point, fstype = line.split()[:3]
                if (real == point or real.startswith(point.rstrip('/') + '/')) and len(point) >= len(best[1]):
                    best = (dev, point, fstype)
    except OSError:
        pass
    info = {'device': best[0], 'mount': best[1], 'fstype': best[2]}
    name = os.path.basename(best[0])
    rotational = '/sys/block/%s/queue/rotational' % name
    if os.path.exists(rotational):
        with open(rotational) as handle:
            info['rotational'] = handle.read().strip() == '1'
    return info


def tool_versions():
    versions = {}
    for tool, argv in (('rsync', ['rsync', '--version']), ('restic', ['restic', 'version']),
                       ('coreutils', ['sha256sum', '--version']), ('ansible-core', [ansible_bin('ansible'), '--version'])):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            versions[tool] = out.splitlines()[0].strip() if out else 'unknown'
        except OSError:
            versions[tool] = 'not installed'
    return versions


def print_table(report):
    print()
    print('%-7s %-8s %-20s %9s %9s %9s %10s %12s' % ('corpus', 'group', 'contender', 'median s', 'min s', 'max s', 'peak MiB', 'engine/this'))
    for corpus, groups in report['groups'].items():
        for group, entry in groups.items():
            engine = ENGINE_OF[group]
            for name, s in entry['contenders'].items():
                if not s.get('runs'):
                    print('%-7s %-8s %-20s %s' % (corpus, group, name, s.get('unavailable', 'no runs')))
                    continue
                ratio = entry['ratios'].get('%s/%s' % (engine, name))
                print('%-7s %-8s %-20s %9.3f %9.3f %9.3f %10.1f %12s' % (
                    corpus, group, name, s['median_s'], s['min_s'], s['max_s'], s['peak_rss_kib'] / 1024.0,
                    '-' if name == engine else ('%.2f' % ratio if ratio is not None else '?')))
    print()
    for t in report['targets']:
        state = {True: 'met', False: 'MISSED', None: 'not measured'}[t['met']]
        value = '?' if t['value'] is None else '%.3f %s' % (t['value'], t['unit'])
        print('target %-7s %-50s %-14s %s' % (t['corpus'], t['target'], value, state))


def write_report(report, out, started):
    """(Re)write the JSON results: after every group, so an interrupted run keeps what it measured."""
    report['targets'] = check_targets(report)
    report['load_after'] = round(os.getloadavg()[0], 2)
    report['seconds'] = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1)
    with open(out + '.tmp', 'w') as handle:
        json.dump(report, handle, indent=1, sort_keys=True)
        handle.write('\n')
    os.replace(out + '.tmp', out)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--corpus', action='append', choices=sorted(corpora.SPECS),
                        help='corpus to run (repeatable; default: all)')
    parser.add_argument('--group', action='append', choices=GROUPS, help='comparison to run (repeatable; default: all)')
    parser.add_argument('--contender', action='append',
                        help='run only this contender (repeatable; default: all); a shorter run on a busy machine')
    parser.add_argument('--runs', type=int, help='timed rounds after the warm-up (default: 5; 2 with --quick)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first (default: %(default)s)')
    parser.add_argument('--quick', action='store_true', help='tiny corpora: a smoke test of the harness, not a benchmark')
    parser.add_argument('--corpora-dir', default=corpora.DEFAULT_DIR)
    parser.add_argument('--work-dir', default=os.path.join(corpora.DEFAULT_DIR, '_work'),
                        help='scratch space on the same filesystem as the corpora (default: %(default)s)')
    parser.add_argument('--results-dir', default=os.path.join(HERE, 'results'))
    parser.add_argument('--python', default=sys.executable, help='interpreter that runs the engine (default: this one)')
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    if args.runs < 1:
        parser.error('--runs must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    names = args.corpus or ['large', 'small', 'mixed']
    groups = args.group or list(GROUPS)
    started = datetime.datetime.now(datetime.timezone.utc)
    report = {
        'started': started.isoformat(),
        'peak_rss_source': ('GNU time (wait4 of the command)' if os.access(TIME_BIN, os.X_OK) else
                            'wait4 of the child (includes the harness own high-water mark, inherited through exec)'),
        'quick': args.quick, 'runs': args.runs, 'warmup': args.warmup, 'machine': machine(),
        'load_before': round(os.getloadavg()[0], 2),
        'tools': tool_versions(), 'cache': 'warm (sources read in the warm-up; sync(2) after every run)',
        'corpora': {}, 'groups': {}, 'complete': False,
    }
    os.makedirs(args.work_dir, exist_ok=True)
    report['disk'] = disk_of(args.work_dir)
    os.makedirs(args.results_dir, exist_ok=True)
    out = os.path.join(args.results_dir, started.strftime('%Y%m%dT%H%M%SZ') + ('-quick' if args.quick else '') + '.json')
    for name in names:
        source = corpora.ensure(name, args.quick, args.corpora_dir, log=log)
        report['corpora'][name] = dict(corpora.describe(source), path=source)
        ws = Workspace(name, source, args.work_dir, args.python)
        report['groups'][name] = {}
        for group in groups:
            log('%s/%s: %d warm-up + %d timed rounds' % (name, group, args.warmup, args.runs))
            results = run_group(group, ws, args.runs, args.warmup, args.contender)
            report['groups'][name][group] = {'engine': ENGINE_OF[group], 'contenders': results,
                                             'ratios': ratios(group, results)}
            write_report(report, out, started)
        remove(ws.dir)
    report['complete'] = True
    write_report(report, out, started)
    print_table(report)
    print('\nresults: %s (%.0f s)' % (out, report['seconds']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
