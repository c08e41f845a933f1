"""The health endpoint: a small HTTP server, run as a daemon with a pid file under run/.

Endpoints (JSON):
  GET  /health    200 when healthy, 503 with the problems otherwise
  GET  /flags     the effective feature flags and where each value came from
  GET  /metrics   the application's numbers in the Prometheus text format (see metrics.py)
  POST /sessions  start a Party Mode session (403 while partyMode.enabled is false)

The server answers from the Snapshot taken at start or at the last reload
(SIGHUP), so a changed config.yaml takes effect only when applied with
``appctl reload`` -- unless settings.json sets ``autoReload``, in which case
every request reads the files again.
"""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import audit, layout, metrics, snapshot

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class AppServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root, settings):
        self.root = root
        self.auto_reload = bool(settings.get('autoReload'))
        self.snapshot = snapshot.load(root, generation=1)
        ThreadingHTTPServer.__init__(self, (settings['bind'], int(settings['port'])), Handler)

    def reload(self):
        self.snapshot = snapshot.load(self.root, generation=self.snapshot.generation + 1)
        audit.append(self.root, 'CONFIG_RELOAD', generation=self.snapshot.generation,
                     healthy=self.snapshot.healthy)

    def current(self):
        if self.auto_reload:
            self.snapshot = snapshot.load(self.root, generation=self.snapshot.generation + 1)
        return self.snapshot


class Handler(BaseHTTPRequestHandler):
    server_version = 'demo-app/1'

    def do_GET(self):
        snap = self.server.current()
        if self.path == '/health':
            self._reply(200 if snap.healthy else 503, snap.health_document())
        elif self.path == '/flags':
            self._reply(200, snap.flags_document())
        elif self.path == '/metrics':
            content_type, body = metrics.render(snap, metrics.read_simulation(self.server.root))
            self._send(200, content_type, body.encode('utf-8'))
        else:
            self._reply(404, {'error': 'unknown path %s; try /health, /flags or /metrics' % self.path})

    def do_POST(self):
        snap = self.server.current()
        if self.path != '/sessions':
            self._reply(404, {'error': 'unknown path %s' % self.path})
        elif not snap.flags.get('partyMode.enabled'):
            self._reply(403, {'error': 'Party Mode is disabled'})
        else:
            self._reply(201, {'sessionId': audit.start_session(self.server.root)})

    def _reply(self, status, document):
        self._send(status, 'application/json', (json.dumps(document, sort_keys=True) + '\n').encode('utf-8'))

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write('%s %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), format % args))


# -- daemon control --------------------------------------------------------------


def read_pid(root):
    """The server's pid if its pid file names a live demo-app server, else None."""
    try:
        with open(layout.path(root, layout.PID_FILE)) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    try:
        with open('/proc/%d/stat' % pid) as handle:
            if handle.read().rsplit(')', 1)[1].split()[0] == 'Z':
                return None
        if os.path.realpath('/proc/%d/cwd' % pid) != os.path.realpath(root):
            return None
    except OSError:
        return None
    return pid


def start(root):
    """Start the server in the background; returns its pid once it listens.

    Raises RuntimeError with the server's own error (bad bind address, port in
    use, unreadable settings) when it could not start.
    """
    running = read_pid(root)
    if running:
        return running
    settings = layout.read_settings(root)
    for name in ('run', 'logs'):
        os.makedirs(layout.path(root, name), exist_ok=True)
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:
        os.close(read_end)
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            _serve(root, settings, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(first, 0)
    with os.fdopen(read_end, 'rb') as pipe:
        message = pipe.read().decode('utf-8', 'replace').strip()
    if not message.startswith('ok '):
        raise RuntimeError('demo app did not start: %s (log: %s)'
                           % (message or 'no answer', layout.path(root, layout.SERVER_LOG)))
    return int(message.split()[1])


def _serve(root, settings, ready_fd):
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(layout.path(root, layout.SERVER_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    # Nothing of the caller's (an SSH session's pipes, say) may stay open, or it would never end.
    os.closerange(3, ready_fd)
    os.closerange(ready_fd + 1, 65536)
    os.chdir(root)
    try:
        server = AppServer(root, settings)
    except Exception as exc:  # pylint: disable=broad-except
        os.write(ready_fd, ('error: %s' % exc).encode('utf-8'))
        os.close(ready_fd)
        return
    pid_file = layout.path(root, layout.PID_FILE)
    with open(pid_file + '.tmp', 'w') as handle:
        handle.write('%d\n' % os.getpid())
    os.replace(pid_file + '.tmp', pid_file)
    signal.signal(signal.SIGHUP, lambda *_: server.reload())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    audit.append(root, 'APP_START', pid=os.getpid(), version=server.snapshot.version,
                 healthy=server.snapshot.healthy)
    os.write(ready_fd, ('ok %d' % os.getpid()).encode('utf-8'))
    os.close(ready_fd)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        audit.append(root, 'APP_STOP', pid=os.getpid())
        if read_pid(root) == os.getpid():
            os.unlink(pid_file)


def stop(root):
    """Stop the server; returns True if one was running."""
    pid = read_pid(root)
    if not pid:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and read_pid(root) == pid:
        time.sleep(0.05)
    if read_pid(root) == pid:
        os.kill(pid, signal.SIGKILL)
        os.unlink(layout.path(root, layout.PID_FILE))
    return True


def reload(root):
    """Make the server re-read its files; returns the new health document once it has."""
    pid = read_pid(root)
    if not pid:
        raise RuntimeError('demo app is not running (no live pid in %s)' % layout.path(root, layout.PID_FILE))
    before = query(root, '/health')[1]['generation']
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        document = query(root, '/health')[1]
        if document['generation'] > before:
            return document
        time.sleep(0.05)
    raise RuntimeError('demo app (pid %d) did not reload within %.0fs' % (pid, START_TIMEOUT))


def url(root, path=''):
    settings = layout.read_settings(root)
    return 'http://%s:%d%s' % (settings['bind'], int(settings['port']), path)


def query(root, path, method='GET'):
    """(HTTP status, JSON document) from the running server; raises OSError when unreachable."""
    request = urllib.request.Request(url(root, path), method=method, data=b'' if method == 'POST' else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read().decode('utf-8'))
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode('utf-8'))
