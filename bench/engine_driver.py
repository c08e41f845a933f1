# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Call the engine directly, without Ansible: what bench/run.py times as "engine".

    python bench/engine_driver.py backup --backup-root R [--set S] [--incremental] PATH...
    python bench/engine_driver.py verify --backup-root R [--set S] ID
    python bench/engine_driver.py restore --backup-root R [--set S] ID

Prints the engine's result as JSON on stdout; exits non-zero when the engine
refuses or fails (a benchmark of a failed run is no benchmark).

``backup`` into an empty store is a full backup.  ``--incremental`` forces a
new backup even when nothing changed (``force=True``), hardlinking every
unchanged file from the latest one: the incremental work itself, not the
"nothing changed" shortcut; ``--rehash`` re-reads every hardlinked file too.  ``restore`` puts the backup's sources back where
they were (the benchmark removes them first: a restore into an empty target).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS = os.path.join(os.path.dirname(HERE), '.collections')
sys.path.insert(0, COLLECTIONS)

# pylint: disable=wrong-import-position
from ansible_collections.lastgood.rollback.plugins.module_utils import _restore, _store  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('action', choices=('backup', 'verify', 'restore'))
    parser.add_argument('--backup-root', required=True)
    parser.add_argument('--set', default='bench')
    parser.add_argument('--incremental', action='store_true', help='backup: hardlink unchanged files from the latest backup')
    parser.add_argument('--rehash', action='store_true', help='backup: re-hash every hardlinked file')
    parser.add_argument('args', nargs='+', help='backup: paths; verify/restore: the backup id')
    args = parser.parse_args(argv)
    store = _store.Store(os.path.abspath(args.backup_root), args.set)
    if args.action == 'backup':
        result = store.create([os.path.abspath(path) for path in args.args], incremental=args.incremental,
                              force=args.incremental, rehash=args.rehash)
        if not result['new_backup']:
            raise SystemExit('no new backup was made: %s' % json.dumps(result))
    elif args.action == 'verify':
        result = store.verify(args.args[0])
        if not result['ok']:
            raise SystemExit('backup %s does not match its manifest: %s' % (args.args[0], result['mismatches'][:5]))
    else:
        result = _restore.restore(store, store.set_dir, ref=args.args[0])
    json.dump(result, sys.stdout, sort_keys=True, default=str)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
