"""What the running application has loaded, and whether that makes it healthy.

A Snapshot is taken at start, on reload (SIGHUP) and, with ``autoReload`` in
settings.json, on every request.  It holds the effective feature flags
(config.yaml, overridden by app.env) and every problem found:

- config.yaml missing, unparsable, or missing required fields;
- app.env lines that are not ``NAME=value`` or flag values that are not booleans;
- custom_modes.json missing, not JSON, or entries without a unique slug and a name;
- an effective value listed as known-bad in settings.json (``knownBad``);
- the running code missing, without a VERSION, or carrying a BAD_RELEASE marker.

Any problem makes the app unhealthy (HTTP 503 on /health).
"""

import copy
import json
import os
import re
import socket
import time

from . import layout, yamlsubset

try:
    import yaml
except ImportError:  # the fixture works without PyYAML
    yaml = None

REQUIRED_PARTY_MODE = (('enabled', bool), ('maxAgents', int), ('maxRounds', int))
_ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_SLUG = re.compile(r'^[a-z0-9][a-z0-9-]*$')
_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')


def parse_yaml(text):
    """Parse YAML with PyYAML when installed, else the documented subset reader."""
    if yaml is not None:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(str(exc).replace('\n', ' '))
    return yamlsubset.loads(text)


def override_name(feature):
    """The app.env variable for a feature: partyMode -> PARTY_MODE_ENABLED."""
    return re.sub(r'(?<=[a-z0-9])([A-Z])', r'_\1', feature).upper() + '_ENABLED'


class Snapshot:
    def __init__(self, root, generation=0):
        self.root = root
        self.generation = generation
        self.loaded_at = time.time()
        self.problems = []
        self.settings = {}
        self.config = None
        self.overrides = {}
        self.flags = {}
        self.sources = {}
        self.registry = None
        self.version = None
        self.release = None

    @property
    def healthy(self):
        return not self.problems

    def problem(self, check, message):
        self.problems.append({'check': check, 'message': message})

    def health_document(self):
        return {
            'status': 'healthy' if self.healthy else 'unhealthy',
            'host': self.settings.get('hostName') or socket.gethostname(),
            'version': self.version,
            'release': self.release,
            'generation': self.generation,
            'loadedAt': self.loaded_at,
            'problems': self.problems,
            'flags': self.flags,
        }

    def flags_document(self):
        return {'flags': self.flags, 'sources': self.sources, 'overrides': self.overrides,
                'generation': self.generation}


def load(root, generation=0):
    """Read everything the app depends on below ``root`` into a Snapshot."""
    snap = Snapshot(root, generation)
    try:
        snap.settings = layout.read_settings(root)
    except ValueError as exc:
        snap.problem('settings', str(exc))
    _load_config(snap)
    _load_overrides(snap)
    _apply_flags(snap)
    _load_registry(snap)
    _check_known_bad(snap)
    _load_code(snap)
    return snap


def _read(root, name):
    with open(layout.path(root, name), 'rb') as handle:
        return handle.read().decode('utf-8')


def _load_config(snap):
    name = layout.CONFIG
    try:
        config = parse_yaml(_read(snap.root, name))
    except FileNotFoundError:
        snap.problem('config', '%s is missing' % layout.path(snap.root, name))
        return
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        snap.problem('config', '%s is not valid YAML: %s' % (name, exc))
        return
    if not isinstance(config, dict):
        snap.problem('config', '%s must be a mapping at the top level' % name)
        return
    snap.config = config
    party = config.get('partyMode')
    if not isinstance(party, dict):
        snap.problem('config', '%s: required section partyMode is missing' % name)
    else:
        for field, kind in REQUIRED_PARTY_MODE:
            value = party.get(field)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                snap.problem('config', '%s: partyMode.%s must be %s, found %r'
                             % (name, field, 'a boolean' if kind is bool else 'an integer', value))
            elif kind is int and value < 1:
                snap.problem('config', '%s: partyMode.%s must be at least 1, found %d' % (name, field, value))
        rate = party.get('rateLimit', {})
        limit = rate.get('sessionsPerMinute', 1) if isinstance(rate, dict) else None
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            snap.problem('config', '%s: partyMode.rateLimit.sessionsPerMinute must be a positive integer'
                         % name)
    for feature, section in sorted(config.items()):
        if isinstance(section, dict) and 'enabled' in section and not isinstance(section['enabled'], bool):
            snap.problem('config', '%s: %s.enabled must be a boolean, found %r' % (name, feature, section['enabled']))


def _load_overrides(snap):
    try:
        text = _read(snap.root, layout.OVERRIDES)
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        snap.problem('overrides', 'cannot read %s: %s' % (layout.OVERRIDES, exc))
        return
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('export '):
            line = line[len('export '):].strip()
        name, sep, value = line.partition('=')
        name = name.strip()
        if not sep or not _ENV_NAME.match(name):
            snap.problem('overrides', '%s line %d is not NAME=value: %r' % (layout.OVERRIDES, number, raw))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
            value = value[1:-1]
        snap.overrides[name] = value


def _apply_flags(snap):
    config = snap.config or {}
    for feature, section in sorted(config.items()):
        if not isinstance(section, dict) or 'enabled' not in section:
            continue
        key = feature + '.enabled'
        snap.flags[key] = section['enabled']
        snap.sources[key] = layout.CONFIG
        name = override_name(feature)
        if name in snap.overrides:
            raw = snap.overrides[name].lower()
            if raw in _TRUE or raw in _FALSE:
                snap.flags[key] = raw in _TRUE
                snap.sources[key] = '%s:%s' % (layout.OVERRIDES, name)
            else:
                snap.problem('overrides', '%s=%s in %s is not a boolean'
                             % (name, snap.overrides[name], layout.OVERRIDES))


def effective_config(snap):
    """config.yaml with the overridden flags applied: what the app acts on."""
    config = copy.deepcopy(snap.config or {})
    for key, value in snap.flags.items():
        feature = key.split('.', 1)[0]
        config.setdefault(feature, {})['enabled'] = value
    return config


def _lookup(tree, dotted):
    node = tree
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check_known_bad(snap):
    rules = snap.settings.get('knownBad') or []
    config = effective_config(snap)
    for rule in rules:
        found, value = _lookup(config, rule.get('key', ''))
        if found and value == rule.get('equals') and type(value) is type(rule.get('equals')):
            snap.problem('known_bad', '%s=%s is a known-bad value: %s'
                         % (rule['key'], json.dumps(value), rule.get('reason', 'no reason given')))


def _load_registry(snap):
    name = layout.REGISTRY
    try:
        registry = json.loads(_read(snap.root, name))
    except FileNotFoundError:
        snap.problem('registry', '%s is missing' % layout.path(snap.root, name))
        return
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        snap.problem('registry', '%s is not valid JSON: %s' % (name, exc))
        return
    modes = registry.get('customModes') if isinstance(registry, dict) else None
    if not isinstance(modes, list):
        snap.problem('registry', '%s must be an object with a customModes list' % name)
        return
    seen = set()
    for position, mode in enumerate(modes):
        slug = mode.get('slug') if isinstance(mode, dict) else None
        if not isinstance(slug, str) or not _SLUG.match(slug):
            snap.problem('registry', '%s: customModes[%d] has no valid slug' % (name, position))
        elif slug in seen:
            snap.problem('registry', '%s: slug %r appears twice' % (name, slug))
        else:
            seen.add(slug)
        if not isinstance(mode, dict) or not isinstance(mode.get('name'), str) or not mode.get('name'):
            snap.problem('registry', '%s: customModes[%d] has no name' % (name, position))
    snap.registry = registry


def _load_code(snap):
    code = layout.active_code_dir(snap.root)
    resolved = os.path.realpath(code)
    snap.release = os.path.relpath(resolved, snap.root)
    if not os.path.isdir(resolved):
        snap.problem('code', 'the running code %s -> %s does not exist' % (code, resolved))
        return
    try:
        snap.version = _read(resolved, 'VERSION').strip() or None
    except (OSError, UnicodeDecodeError):
        pass
    if not snap.version:
        snap.problem('code', '%s has no VERSION' % resolved)
    marker = os.path.join(resolved, layout.BAD_RELEASE_MARKER)
    if os.path.exists(marker):
        try:
            reason = _read(resolved, layout.BAD_RELEASE_MARKER).strip()
        except (OSError, UnicodeDecodeError):
            reason = ''
        snap.problem('code', 'release %s is marked bad: %s' % (snap.version, reason or 'no reason given'))
