# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Level-2 rollback over a fleet of real SSH hosts: the collection against the hand-written pattern.

    .venv/bin/python bench/fleet.py [--hosts 1,5,10,20] [--runs 3]

For each fleet size the SSH test fleet (tests/fleet) is started with the demo
application on every host.  Then, interleaved, ``--runs`` times each:

* ``handwritten``: bench/playbooks/handwritten_level2.yml -- push a bad
  config with ``copy`` (``backup: true`` + ``validate``), reload, health
  check, and in ``rescue`` copy the backup back, reload, health check.  It
  includes the push (the pattern cannot be split), so ``push`` is timed too:
  the playbook below alone, for the rollback-only estimate.
* ``level2``: the same bad config pushed (untimed), then
  ``ansible-playbook lastgood.rollback.rollback_level2`` times the rollback
  itself.  Before the first run every host gets a checkpoint of its good
  config, marked last-good, with ``lastgood.rollback.backup``.  Measured only
  when the collection ships that playbook (``playbooks/rollback_level2.yml``);
  otherwise reported as unavailable, never estimated.
* ``level2-mitogen``: the same level 2 run under mitogen's ``mitogen_linear``
  strategy -- only with ``--mitogen`` and when the ``mitogen`` package (PyPI) is
  importable; the collection never needs it.

Every run must end with every host healthy, or the benchmark stops.  Wall time
per run, the per-host overhead ``(T(N) - T(1)) / (N - 1)`` and the ratio
``T(20) / T(1)`` go to the table and to ``bench/results/fleet-<timestamp>.json`` (rewritten
after every fleet size), with the tasks a host went through in the timed run (from the play
recap: ok + failed + skipped + rescued).
Needs root, util-linux ``unshare`` and OpenSSH (the fleet's own requirements).
"""

import argparse
import datetime
import importlib.util
import json
import os
import re
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# pylint: disable=wrong-import-position
from run import BenchError, ansible_bin, ansible_env, machine, run_child  # noqa: E402


def _load_fleet_harness():
    # tests/fleet/fleet.py shares this file's name, so it is loaded by path.
    spec = importlib.util.spec_from_file_location('lastgood_fleet_harness', os.path.join(REPO, 'tests', 'fleet', 'fleet.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fleet_lib = _load_fleet_harness()

HANDWRITTEN = os.path.join(HERE, 'playbooks', 'handwritten_level2.yml')
PUSH_BAD = os.path.join(HERE, 'playbooks', 'push_bad_config.yml')
LEVEL2_PLAYBOOK = os.path.join(REPO, 'playbooks', 'rollback_level2.yml')
# What playbooks/vars/run_defaults.yml backs up as the configuration (lastgood_config_paths, set app).
LEVEL2_CHECKPOINT = {'paths': ['/srv/app/config.yaml', '/srv/app/custom_modes.json', '/srv/app/app.env'],
                     'set': 'app', 'mark_lastgood': True}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def mitogen_env():
    """ansible_env() with mitogen's linear strategy, or None when the mitogen package is not installed."""
    spec = importlib.util.find_spec('ansible_mitogen')
    if spec is None:
        return None
    env = ansible_env()
    env['ANSIBLE_STRATEGY_PLUGINS'] = os.path.join(os.path.dirname(spec.origin), 'plugins', 'strategy')
    env['ANSIBLE_STRATEGY'] = 'mitogen_linear'
    return env


def playbook(inventory, path, forks, extra=None, log_path=None, env=None):
    argv = [ansible_bin('ansible-playbook'), '-i', inventory, '-f', str(forks), path]
    if extra:
        argv += ['-e', json.dumps(extra)]
    return run_child(argv, env=env or ansible_env(), log_path=log_path)[0]


def adhoc(inventory, module, args, forks, log_path=None):
    argv = [ansible_bin('ansible'), 'all', '-i', inventory, '-f', str(forks), '-m', module, '-a', args]
    return run_child(argv, env=ansible_env(), log_path=log_path)[0]


RECAP_LINE = re.compile(r'^(\S+)\s*:\s*ok=(\d+)\s+changed=\d+\s+unreachable=\d+\s+failed=(\d+)\s+'
                        r'skipped=(\d+)\s+rescued=(\d+)', re.M)


def tasks_per_host(log_path):
    """Tasks each host went through (ok + failed + skipped + rescued, from the play recap), the largest."""
    with open(log_path) as handle:
        counts = [sum(int(n) for n in match.groups()[1:]) for match in RECAP_LINE.finditer(handle.read())]
    return max(counts) if counts else None


def level2_available():
    return os.path.exists(LEVEL2_PLAYBOOK)


def bench_size(count, runs, logs, level2_vars, mitogen=False):
    state_dir = tempfile.mkdtemp(prefix='lastgood-bench-fleet-')
    fleet = fleet_lib.Fleet(state_dir)
    forks = max(5, count)
    results = {'hosts': count, 'forks': forks}
    try:
        started = time.perf_counter()
        fleet.up(count, app=True)
        results['fleet_up_s'] = round(time.perf_counter() - started, 2)
        inventory = fleet.inventory_path

        def health(tag):
            adhoc(inventory, 'ansible.builtin.command', '/srv/app/bin/appctl health', forks,
                  os.path.join(logs, '%d-health-%s.out' % (count, tag)))
        health('initial')
        contenders = ['handwritten', 'push']
        if level2_available():
            adhoc(inventory, 'lastgood.rollback.backup', json.dumps(LEVEL2_CHECKPOINT), forks,
                  os.path.join(logs, '%d-checkpoint.out' % count))
            contenders.append('level2')
            if mitogen and mitogen_env():
                contenders.append('level2-mitogen')
        times = {name: [] for name in contenders}
        tasks = {}
        failed = {}
        for number in range(runs + 1):
            for name in contenders[number % len(contenders):] + contenders[:number % len(contenders)]:
                if name in failed:
                    continue
                tag = '%s-%d' % (name, number)
                out = os.path.join(logs, '%d-%s.out' % (count, tag))
                if name == 'handwritten':
                    elapsed = playbook(inventory, HANDWRITTEN, forks, log_path=out)
                elif name == 'push':
                    elapsed = playbook(inventory, PUSH_BAD, forks, log_path=out)
                    playbook(inventory, PUSH_BAD, forks, extra={'restore_good': True}, log_path=out + '.undo')
                else:
                    playbook(inventory, PUSH_BAD, forks, log_path=out + '.push')
                    try:
                        elapsed = playbook(inventory, LEVEL2_PLAYBOOK, forks, extra=level2_vars, log_path=out,
                                           env=mitogen_env() if name == 'level2-mitogen' else None)
                    except BenchError as exc:
                        # A failed rollback is a result to report, not a figure: put the good config back.
                        failed[name] = 'failed (log: %s): %s' % (out, str(exc).splitlines()[0])
                        playbook(inventory, PUSH_BAD, forks, extra={'restore_good': True}, log_path=out + '.undo')
                        health(tag)
                        continue
                health(tag)
                if number:
                    times[name].append(elapsed)
                    tasks[name] = tasks_per_host(out)
            log('  %d hosts: round %d/%d done%s' % (count, number + 1, runs + 1, '' if number else ' (warm-up)'))
        for name, values in times.items():
            if name in failed:
                results[name] = {'unavailable': failed[name]}
            elif values:
                results[name] = {'times_s': [round(v, 3) for v in values], 'median_s': round(statistics.median(values), 3),
                                 'tasks_per_host': tasks.get(name)}
        if 'level2' not in times:
            results['level2'] = {'unavailable': 'playbook lastgood.rollback.rollback_level2 is not in this '
                                                'checkout (%s missing)' % os.path.relpath(LEVEL2_PLAYBOOK, REPO)}
    finally:
        fleet.down()
    return results


def summarise(sizes):
    one = next((s for s in sizes if s['hosts'] == 1), None)
    summary = {}
    # The issue 14 target: level 2 against the hand-written pattern, in the same run, per fleet size.
    for size in sizes:
        for name in ('level2', 'level2-mitogen'):
            if 'median_s' in size.get(name, {}) and 'median_s' in size.get('handwritten', {}):
                summary['%s_over_handwritten_%d' % (name, size['hosts'])] = round(
                    size[name]['median_s'] / size['handwritten']['median_s'], 2)
    for name in ('handwritten', 'level2', 'level2-mitogen'):
        if one is None or 'median_s' not in one.get(name, {}):
            continue
        base = one[name]['median_s']
        for size in sizes:
            if size['hosts'] > 1 and 'median_s' in size.get(name, {}):
                t = size[name]['median_s']
                summary['%s_%d_over_1' % (name, size['hosts'])] = round(t / base, 2)
                summary['%s_per_host_overhead_s_%d' % (name, size['hosts'])] = round((t - base) / (size['hosts'] - 1), 3)
    return summary


def print_table(report):
    print()
    print('%6s %-12s %9s %9s %14s %7s' % ('hosts', 'contender', 'median s', 'x 1 host', 'per-host s', 'tasks'))
    base = {}
    for size in report['sizes']:
        for name in ('handwritten', 'push', 'level2', 'level2-mitogen'):
            if name == 'level2-mitogen' and name not in size:
                continue
            entry = size.get(name, {})
            if 'median_s' not in entry:
                print('%6d %-12s %s' % (size['hosts'], name, entry.get('unavailable', 'not measured')))
                continue
            t = entry['median_s']
            if size['hosts'] == 1:
                base[name] = t
            ratio = t / base[name] if name in base else float('nan')
            per_host = (t - base[name]) / (size['hosts'] - 1) if name in base and size['hosts'] > 1 else float('nan')
            print('%6d %-12s %9.2f %9.2f %14.3f %7s' % (size['hosts'], name, t, ratio, per_host, entry.get('tasks_per_host')))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', default='1,5,10,20', help='fleet sizes, comma-separated (default: %(default)s)')
    parser.add_argument('--runs', type=int, default=3, help='timed runs per contender and size (default: %(default)s)')
    # The stability window (a wait, not work) is off: the hand-written pattern has none to compare with.
    parser.add_argument('--level2-vars', default='{"lastgood_stability_seconds": 0}',
                        help='extra vars (JSON) for the rollback_level2 playbook (default: %(default)s)')
    parser.add_argument('--mitogen', action='store_true',
                        help="also time level 2 under mitogen's mitogen_linear strategy (needs the mitogen package)")
    parser.add_argument('--results-dir', default=os.path.join(HERE, 'results'))
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.hosts.split(',')]
    started = datetime.datetime.now(datetime.timezone.utc)
    logs = tempfile.mkdtemp(prefix='lastgood-bench-fleet-logs-')
    report = {'started': started.isoformat(), 'runs': args.runs, 'machine': machine(), 'logs': logs, 'sizes': []}
    os.makedirs(args.results_dir, exist_ok=True)
    out = os.path.join(args.results_dir, 'fleet-%s.json' % started.strftime('%Y%m%dT%H%M%SZ'))
    for count in sizes:
        log('%d hosts: starting the fleet' % count)
        report['sizes'].append(bench_size(count, args.runs, logs, json.loads(args.level2_vars), mitogen=args.mitogen))
        # Written after every size: an interrupted run keeps what it measured.
        report['summary'] = summarise(report['sizes'])
        with open(out, 'w') as handle:
            json.dump(report, handle, indent=1, sort_keys=True)
            handle.write('\n')
    print_table(report)
    print('\nresults: %s' % out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
