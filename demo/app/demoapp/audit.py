"""The application's audit log: JSON lines, one event each (SESSION_START, SESSION_END, ...)."""

import json
import os
import socket
import time
import uuid

from . import layout


def append(root, event_type, **fields):
    """Append one event; a single O_APPEND write per line keeps concurrent writers whole."""
    event = {'ts': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'eventType': event_type,
             'host': socket.gethostname()}
    event.update(fields)
    path = layout.path(root, layout.AUDIT_LOG)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (json.dumps(event, sort_keys=True) + '\n').encode('utf-8'))
        os.fsync(fd)
    finally:
        os.close(fd)
    return event


def events(root):
    try:
        with open(layout.path(root, layout.AUDIT_LOG), encoding='utf-8') as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def active_sessions(root):
    """Session ids that started and have not ended, oldest first."""
    started = []
    ended = set()
    for event in events(root):
        if event.get('eventType') == 'SESSION_START':
            started.append(event['sessionId'])
        elif event.get('eventType') == 'SESSION_END':
            ended.add(event['sessionId'])
    return [sid for sid in started if sid not in ended]


def start_session(root):
    return append(root, 'SESSION_START', sessionId=uuid.uuid4().hex[:12])['sessionId']


def end_sessions(root, reason, session_ids=None):
    """End the given active sessions (all when None) with ``reason``; returns the ids ended."""
    active = active_sessions(root)
    chosen = active if session_ids is None else [sid for sid in session_ids if sid in active]
    for sid in chosen:
        append(root, 'SESSION_END', sessionId=sid, reason=reason)
    return chosen
