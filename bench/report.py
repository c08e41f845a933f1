# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render bench results (bench/run.py or bench/fleet.py JSON) as the Markdown tables of docs/performance.md.

    python bench/report.py bench/results/<timestamp>.json [bench/results/fleet-<timestamp>.json]
"""

import json
import sys

ENGINES = {'backup': 'engine_full', 'verify': 'engine_verify', 'restore': 'engine_restore'}


def run_tables(report):
    out = []
    m = report['machine']
    out.append('Machine: %s cores (%s), %s GiB RAM, kernel %s, Python %s; store and corpora on %s (%s%s).'
               % (m['nproc'], m['cpu'], m['mem_gib'], m['kernel'], m['python'], report['disk'].get('device'),
                  report['disk'].get('fstype'), ', rotational' if report['disk'].get('rotational') else ''))
    if 'load_before' in report:
        out.append('Load average (1 min) at start / end: %.1f / %.1f.' % (report['load_before'], report['load_after']))
    out.append('')
    out.append('| corpus | group | contender | median s | min–max s | peak RSS MiB | engine ÷ this |')
    out.append('|---|---|---|---:|---:|---:|---:|')
    for corpus, groups in report['groups'].items():
        size = report['corpora'][corpus]
        label = '%s (%d files, %.0f MiB)' % (corpus, size['files'], size['bytes'] / 2**20)
        for group, entry in groups.items():
            ordered = sorted(entry['contenders'].items(), key=lambda item: item[0] != ENGINES[group])
            for name, s in ordered:
                if not s.get('runs'):
                    out.append('| %s | %s | %s | %s | | | |' % (label, group, name, s.get('unavailable', 'not run')))
                    continue
                ratio = entry['ratios'].get('%s/%s' % (ENGINES[group], name))
                out.append('| %s | %s | %s | %.3f | %.3f–%.3f | %.1f | %s |' % (
                    label, group, name, s['median_s'], s['min_s'], s['max_s'], s['peak_rss_kib'] / 1024.0,
                    '—' if name == ENGINES[group] else '%.2f' % ratio))
    out.append('')
    out.append('| target | corpus | reached | |')
    out.append('|---|---|---:|---|')
    for t in report['targets']:
        state = {True: 'met', False: '**missed**', None: 'not measured'}[t['met']]
        value = '?' if t['value'] is None else '%.2f %s' % (t['value'], t['unit'])
        out.append('| %s | %s | %s | %s |' % (t['target'], t['corpus'], value, state))
    return out


def fleet_tables(report):
    out = ['| hosts | contender | median s | × 1 host | per-host overhead s |', '|---:|---|---:|---:|---:|']
    base = {}
    for size in report['sizes']:
        for name in ('handwritten', 'push', 'level2'):
            entry = size.get(name, {})
            if 'median_s' not in entry:
                out.append('| %d | %s | %s | | |' % (size['hosts'], name, entry.get('unavailable', 'not run')))
                continue
            t = entry['median_s']
            base.setdefault(name, t if size['hosts'] == 1 else None)
            ratio = '%.2f' % (t / base[name]) if base.get(name) else ''
            per_host = '%.2f' % ((t - base[name]) / (size['hosts'] - 1)) if base.get(name) and size['hosts'] > 1 else ''
            out.append('| %d | %s | %.1f | %s | %s |' % (size['hosts'], name, t, ratio, per_host))
    return out


def main(argv=None):
    for path in (argv if argv is not None else sys.argv[1:]):
        with open(path) as handle:
            report = json.load(handle)
        lines = fleet_tables(report) if 'sizes' in report else run_tables(report)
        print('\n'.join(lines))
        print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
