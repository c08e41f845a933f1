"""Where the demo application keeps things below its root (default /srv/app)."""

import json
import os

DEFAULT_ROOT = '/srv/app'

CONFIG = 'config.yaml'            # application config incl. feature flags (level 2 restores it)
OVERRIDES = 'app.env'             # environment override file, wins over config.yaml (level 1 writes it)
REGISTRY = 'custom_modes.json'    # the global mode registry
SETTINGS = 'settings.json'        # the app's own settings: bind address, port, known-bad values
CODE = 'code'                     # git repository with tagged releases
RELEASES = 'releases'             # Ansistrano-style releases/<n>
CURRENT = 'current'               # symlink to the running release
AUDIT_LOG = 'logs/audit.jsonl'
SERVER_LOG = 'logs/server.log'
PID_FILE = 'run/appctl.pid'
BAD_RELEASE_MARKER = 'BAD_RELEASE'


def path(root, name):
    return os.path.join(root, name)


def read_settings(root):
    """The app's own settings (written by install); raises ValueError when unreadable."""
    try:
        with open(path(root, SETTINGS)) as handle:
            settings = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError('cannot read %s: %s' % (path(root, SETTINGS), exc))
    if not isinstance(settings, dict):
        raise ValueError('%s is not a JSON object' % path(root, SETTINGS))
    return settings


def active_code_dir(root):
    """The code the app runs: the ``current`` release if there is one, else the git work tree."""
    current = path(root, CURRENT)
    if os.path.lexists(current):
        return current
    return path(root, CODE)
