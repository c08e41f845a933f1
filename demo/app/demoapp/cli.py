"""The appctl command: install, run and inspect the demo application (no systemd needed).

  appctl install ROOT [--bind ADDR] [--port N] [--host-name NAME] [--force]
  appctl [--root ROOT] start | stop | restart | status | reload
  appctl [--root ROOT] health          exit 0 healthy, 1 unhealthy, 2 not reachable
  appctl [--root ROOT] flags           effective feature flags, as the server reads them
  appctl [--root ROOT] check           validate the files on disk without the server
  appctl [--root ROOT] selftest        run the running release's smoke test
  appctl [--root ROOT] deploy REF      export a git ref as a new release and make it current
  appctl [--root ROOT] session start | sessions [list] | sessions end [--id ID] --reason WHY
  appctl [--root ROOT] simulate [METRIC=VALUE ...] [--while-enabled FEATURE] [--garbage] [--clear]
                                       change what /metrics reports (demoapp/metrics.py)

ROOT defaults to $DEMO_APP_ROOT, else the root this copy is installed in
(ROOT/bin/appctl), else /srv/app.  Status exit codes follow LSB: 0 running, 3 stopped.
The ``appctl`` shell wrapper next to this package runs ``python3 -m demoapp.cli``.
"""

import argparse
import json
import os
import subprocess
import sys

from . import audit, install, layout, metrics, server, snapshot

EXIT_UNHEALTHY = 1
EXIT_UNREACHABLE = 2
EXIT_STOPPED = 3


def default_root():
    if os.environ.get('DEMO_APP_ROOT'):
        return os.environ['DEMO_APP_ROOT']
    bin_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed_root = os.path.dirname(bin_dir)
    if os.path.basename(bin_dir) == 'bin' and os.path.exists(os.path.join(installed_root, layout.SETTINGS)):
        return installed_root
    return layout.DEFAULT_ROOT


def emit(document):
    print(json.dumps(document, indent=2, sort_keys=True))


def cmd_install(args):
    root = install.install(args.target, bind=args.bind, port=args.port, host_name=args.host_name,
                           force=args.force)
    emit({'installed': root, 'url': server.url(root)})
    return 0


def cmd_start(args):
    pid = server.start(args.root)
    emit({'running': True, 'pid': pid, 'url': server.url(args.root)})
    return 0


def cmd_stop(args):
    emit({'stopped': server.stop(args.root)})
    return 0


def cmd_restart(args):
    server.stop(args.root)
    return cmd_start(args)


def cmd_status(args):
    pid = server.read_pid(args.root)
    emit({'running': bool(pid), 'pid': pid, 'url': server.url(args.root)})
    return 0 if pid else EXIT_STOPPED


def cmd_reload(args):
    emit(server.reload(args.root))
    return 0


def cmd_health(args):
    try:
        status, document = server.query(args.root, '/health')
    except OSError as exc:
        emit({'status': 'unreachable', 'url': server.url(args.root, '/health'), 'error': str(exc)})
        return EXIT_UNREACHABLE
    emit(document)
    return 0 if status == 200 else EXIT_UNHEALTHY


def cmd_flags(args):
    try:
        document = server.query(args.root, '/flags')[1]
    except OSError as exc:
        emit({'error': 'demo app not reachable: %s' % exc})
        return EXIT_UNREACHABLE
    emit(document)
    return 0


def cmd_check(args):
    snap = snapshot.load(args.root)
    emit({'healthy': snap.healthy, 'problems': snap.problems, 'flags': snap.flags})
    return 0 if snap.healthy else EXIT_UNHEALTHY


def cmd_selftest(args):
    script = os.path.join(layout.active_code_dir(args.root), 'tests', 'smoke.sh')
    return subprocess.call([script])


def cmd_deploy(args):
    emit({'release': install.deploy(args.root, args.ref)})
    return 0


def cmd_session(args):
    status, document = server.query(args.root, '/sessions', method='POST')
    emit(document)
    return 0 if status == 201 else EXIT_UNHEALTHY


def cmd_sessions(args):
    if args.action == 'end':
        if not args.reason:
            raise ValueError('sessions end needs --reason')
        ended = audit.end_sessions(args.root, args.reason, [args.id] if args.id else None)
        emit({'ended': ended})
    else:
        emit({'active': audit.active_sessions(args.root)})
    return 0


def cmd_simulate(args):
    document = {} if args.clear else metrics.read_simulation(args.root)
    for assignment in args.values:
        name, value = assignment.partition('=')[::2]
        if name not in metrics.METRICS:
            raise ValueError('unknown metric %s (known: %s)' % (name, ', '.join(sorted(metrics.METRICS))))
        document.setdefault('values', {})[name] = float(value)
    if args.while_enabled is not None:
        document['while_enabled'] = args.while_enabled
    if args.garbage:
        document['garbage'] = True
    metrics.write_simulation(args.root, document)
    emit(document)
    return 0


def parser():
    top = argparse.ArgumentParser(prog='appctl', description='Control the demo application.')
    top.add_argument('--root', default=None, help='app root (default: $DEMO_APP_ROOT, the root this copy is installed in, or /srv/app)')
    sub = top.add_subparsers(dest='command', required=True)
    inst = sub.add_parser('install', help='lay out a new app root')
    inst.add_argument('target')
    inst.add_argument('--bind', default='127.0.0.1')
    inst.add_argument('--port', type=int, default=8080)
    inst.add_argument('--host-name', default=None)
    inst.add_argument('--force', action='store_true')
    inst.set_defaults(func=cmd_install)
    for name, func in (('start', cmd_start), ('stop', cmd_stop), ('restart', cmd_restart),
                       ('status', cmd_status), ('reload', cmd_reload), ('health', cmd_health),
                       ('flags', cmd_flags), ('check', cmd_check), ('selftest', cmd_selftest)):
        sub.add_parser(name).set_defaults(func=func)
    dep = sub.add_parser('deploy', help='make a git ref the current release')
    dep.add_argument('ref')
    dep.set_defaults(func=cmd_deploy)
    ses = sub.add_parser('session', help='start a Party Mode session')
    ses.add_argument('action', choices=['start'])
    ses.set_defaults(func=cmd_session)
    sess = sub.add_parser('sessions', help='list or end active sessions')
    sess.add_argument('action', nargs='?', choices=['list', 'end'], default='list')
    sess.add_argument('--id')
    sess.add_argument('--reason')
    sess.set_defaults(func=cmd_sessions)
    sim = sub.add_parser('simulate', help='change what /metrics reports')
    sim.add_argument('values', nargs='*', metavar='METRIC=VALUE')
    sim.add_argument('--while-enabled', metavar='FEATURE', help='the values hold only while FEATURE is enabled')
    sim.add_argument('--garbage', action='store_true', help='answer /metrics with something that is not metrics')
    sim.add_argument('--clear', action='store_true', help='start from the baseline')
    sim.set_defaults(func=cmd_simulate)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    args.root = os.path.abspath(args.root or default_root())
    try:
        return args.func(args)
    except (install.InstallError, RuntimeError, ValueError, OSError, subprocess.CalledProcessError) as exc:
        print('appctl %s: %s' % (args.command, exc), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
