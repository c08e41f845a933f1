# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Change a JSON or YAML file so that it is never left broken.

read -> parse -> apply the change -> validate (parse, required keys, JSON Schema,
a validate command on a temporary copy) -> back up the current file -> atomic
write -> re-read and re-validate.  Nothing is written and no backup is made
until the new document has passed every check.  Any failure after the backup
puts the original bytes back (with their mode, owner and mtime) and says
whether that worked; when it did not, the message names the backup to restore
by hand.

YAML needs PyYAML and schemas need jsonschema; both are imported only when
used and reported as MissingLibrary when absent.  A ``set`` of scalar values on
YAML is applied as an in-place edit of the value's characters when every key
path leads to a one-line scalar, so comments, key order and formatting of the
rest of the file survive; otherwise the document is re-dumped.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import subprocess
import tempfile
import time
import traceback

from ._fsatomic import TMP_PREFIX, atomic_write, fsync_dir, read_bytes, write_all
from ._store import Store, StoreError

MAX_BYTES = 32 * 1024 * 1024
BACKUP_MODES = ('sibling', 'store')
_EXTENSIONS = {'.json': 'json', '.yaml': 'yaml', '.yml': 'yaml'}


class ConfigError(Exception):
    """The update did not happen (or was undone); ``restored``/``backup`` describe the file's state."""

    def __init__(self, message, restored=None, backup=None):
        super().__init__(message)
        self.restored = restored
        self.backup = backup


class MissingLibrary(ConfigError):
    """An optional Python library (PyYAML, jsonschema) is needed and not installed on the target."""

    def __init__(self, library, purpose, trace):
        super().__init__('%s is needed on the target to %s' % (library, purpose))
        self.library = library
        self.trace = trace


def _yaml(purpose):
    try:
        import yaml
    except ImportError:
        raise MissingLibrary('PyYAML', purpose, traceback.format_exc())
    return yaml


def detect_format(path, fmt='auto'):
    if fmt in ('json', 'yaml'):
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in _EXTENSIONS:
        raise ConfigError('cannot tell the format of %s from its extension; set format to json or yaml' % path)
    return _EXTENSIONS[ext]


# ---- key paths ---------------------------------------------------------------------------------

_KEY_TOKEN = re.compile(r'''\[(-?\d+)\]|\["((?:[^"\\]|\\.)*)"\]|\['([^']*)'\]|([^.\[\]]+)''')


def parse_key_path(text):
    """``'a.b[0]["x.y"]'`` -> ``['a', 'b', 0, 'x.y']``; a dotted number is a list index on lists."""
    if not isinstance(text, str) or not text:
        raise ConfigError('a key path must be a non-empty string, got %r' % (text,))
    keys = []
    pos = 0
    while pos < len(text):
        if keys and text[pos] == '.':
            pos += 1
            if pos == len(text) or text[pos] in '.[':
                raise ConfigError('key path %r has an empty segment at character %d' % (text, pos + 1))
        match = _KEY_TOKEN.match(text, pos)
        if not match:
            raise ConfigError('key path %r cannot be read at character %d' % (text, pos + 1))
        index, dquoted, squoted, plain = match.groups()
        if index is not None:
            keys.append(int(index))
        elif dquoted is not None:
            keys.append(json.loads('"%s"' % dquoted))
        elif squoted is not None:
            keys.append(squoted)
        else:
            if keys and text[pos - 1] != '.':
                raise ConfigError('key path %r needs a dot before %r' % (text, plain))
            keys.append(plain)
        pos = match.end()
    return keys


def _show(keys):
    out = ''
    for key in keys:
        if isinstance(key, int):
            out += '[%d]' % key
        else:
            out += ('.' if out else '') + key
    return out


def _index(node, key, keys, depth, allow_append=False):
    if isinstance(key, str):
        if not re.match(r'^-?\d+$', key):
            raise ConfigError('key path %s: %s is a list, %r is not an index' % (_show(keys), _show(keys[:depth]) or 'the document', key))
        key = int(key)
    limit = len(node) + (1 if allow_append else 0)
    if not -len(node) <= key < limit:
        raise ConfigError('key path %s: index %d is out of range (the list has %d items)' % (_show(keys), key, len(node)))
    return key


def lookup(doc, keys):
    """(found, value) of ``keys`` in ``doc``."""
    node = doc
    for depth, key in enumerate(keys):
        if isinstance(node, dict):
            if key not in node:
                return False, None
            node = node[key]
        elif isinstance(node, list):
            try:
                node = node[_index(node, key, keys, depth)]
            except ConfigError:
                return False, None
        else:
            return False, None
    return True, node


def _refuse_index_on_mapping(keys, depth):
    key = keys[depth]
    raise ConfigError('key path %s: %s is a mapping and [%d] is a list index; write .%d for a key named "%d"'
                      % (_show(keys), _show(keys[:depth]) or 'the document', key, key, key))


def set_path(doc, keys, value):
    """Set ``keys`` to ``value`` in ``doc`` (in place), creating missing mappings on the way."""
    node = doc
    for depth, key in enumerate(keys[:-1]):
        if isinstance(node, dict):
            if isinstance(key, int):
                _refuse_index_on_mapping(keys, depth)
            if not isinstance(node.get(key), (dict, list)):
                if node.get(key) is not None:
                    raise ConfigError('key path %s: %s holds a %s, not a mapping or list'
                                      % (_show(keys), _show(keys[:depth + 1]), type(node[key]).__name__))
                node[key] = {}
            node = node[key]
        elif isinstance(node, list):
            node = node[_index(node, key, keys, depth)]
        else:
            raise ConfigError('key path %s: %s is a %s, not a mapping or list'
                              % (_show(keys), _show(keys[:depth]) or 'the document', type(node).__name__))
    last = keys[-1]
    if isinstance(node, dict):
        if isinstance(last, int):
            _refuse_index_on_mapping(keys, len(keys) - 1)
        node[last] = value
    elif isinstance(node, list):
        index = _index(node, last, keys, len(keys) - 1, allow_append=True)
        if index == len(node):
            node.append(value)
        else:
            node[index] = value
    else:
        raise ConfigError('key path %s: %s is a %s, not a mapping or list'
                          % (_show(keys), _show(keys[:-1]) or 'the document', type(node).__name__))


def unset_path(doc, keys):
    """Remove ``keys`` from ``doc`` (in place); a missing key is not an error."""
    found, parent = lookup(doc, keys[:-1])
    if not found:
        return
    last = keys[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list):
        try:
            del parent[_index(parent, last, keys, len(keys) - 1)]
        except ConfigError:
            return


# ---- parse and render --------------------------------------------------------------------------

def _json_pairs(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError('duplicate key %r' % key)
        seen[key] = value
    return seen


def _json_constant(name):
    raise ValueError('%s is not valid JSON' % name)


def parse(text, fmt, what):
    """The document in ``text``; ConfigError naming ``what`` when it is not valid."""
    if fmt == 'json':
        try:
            return json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_json_constant)
        except ValueError as exc:
            raise ConfigError('%s is not valid JSON: %s' % (what, exc))
        except RecursionError:
            raise ConfigError('%s nests too deeply to be a configuration file' % what)
    yaml = _yaml('read YAML (%s)' % what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError('%s is not valid YAML: %s' % (what, str(exc).replace('\n', ' ')))
    except RecursionError:
        raise ConfigError('%s nests too deeply to be a configuration file' % what)


def _json_indent(original):
    if original is None or original.strip() == '':
        return 2
    body = original.strip()
    if '\n' not in body:
        return None
    for line in body.splitlines()[1:]:
        stripped = line.lstrip(' \t')
        if stripped and len(stripped) < len(line):
            lead = line[:len(line) - len(stripped)]
            return '\t' if lead.startswith('\t') else len(lead)
    return 2


def render_json(doc, original):
    text = json.dumps(doc, indent=_json_indent(original), ensure_ascii=False)
    if original is None or original.endswith('\n') or original == '':
        text += '\n'
    return text


def render_yaml(doc, original):
    yaml = _yaml('write YAML')
    start = original is not None and original.lstrip().startswith('---')
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, explicit_start=start)


def _yaml_scalar(yaml, value, style):
    if isinstance(value, str) and '\n' not in value and style == '"':
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and '\n' not in value and style == "'":
        return "'%s'" % value.replace("'", "''")
    if value is not None and not isinstance(value, (bool, int, float, str)):
        return None
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    if text.endswith('\n...\n'):
        text = text[:-5]
    text = text.rstrip('\n')
    return None if '\n' in text else text


def _yaml_child(yaml, node, key):
    if isinstance(node, yaml.MappingNode):
        found = [value for name, value in node.value if isinstance(name, yaml.ScalarNode) and name.value == key]
        return found[0] if len(found) == 1 else None
    if isinstance(node, yaml.SequenceNode):
        if isinstance(key, str) and re.match(r'^-?\d+$', key):
            key = int(key)
        if isinstance(key, int) and -len(node.value) <= key < len(node.value):
            return node.value[key]
    return None


def yaml_line_edit(original, edits, expected):
    """``original`` with each ``(keys, value)`` in ``edits`` written over the old value's characters.

    Returns None when any key path does not lead to an existing one-line scalar or
    the edited text would not parse to ``expected``; the caller then re-dumps.
    """
    yaml = _yaml('edit YAML')
    try:
        root = yaml.compose(original, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    spans = {}
    for keys, value in edits:
        node = root
        for key in keys:
            node = _yaml_child(yaml, node, key) if node is not None else None
        if (not isinstance(node, yaml.ScalarNode) or node.style in ('|', '>')
                or node.start_mark.line != node.end_mark.line):
            return None
        rendered = _yaml_scalar(yaml, value, node.style)
        if rendered is None:
            return None
        spans[(node.start_mark.index, node.end_mark.index)] = rendered
    text = original
    previous_start = None
    for (start, end), rendered in sorted(spans.items(), reverse=True):
        if previous_start is not None and end > previous_start:
            return None
        text = text[:start] + rendered + text[end:]
        previous_start = start
    try:
        if yaml.safe_load(text) != expected:
            return None
    except yaml.YAMLError:
        return None
    return text


# ---- validation ---------------------------------------------------------------------------------

def load_schema(schema, schema_path):
    if schema_path is None:
        return schema
    fmt = 'yaml' if os.path.splitext(schema_path)[1].lower() in ('.yaml', '.yml') else 'json'
    try:
        text = read_bytes(schema_path, limit=MAX_BYTES).decode('utf-8')
    except (OSError, ValueError) as exc:
        raise ConfigError('cannot read the schema %s: %s' % (schema_path, exc))
    loaded = parse(text, fmt, 'the schema %s' % schema_path)
    if not isinstance(loaded, dict):
        raise ConfigError('the schema %s is not a JSON Schema object' % schema_path)
    return loaded


def _schema_errors(doc, schema):
    try:
        import jsonschema
    except ImportError:
        raise MissingLibrary('jsonschema', 'validate against a JSON Schema', traceback.format_exc())
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise ConfigError('the JSON Schema itself is invalid: %s' % exc.message)
    found = []
    for error in sorted(validator_class(schema).iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = _show(list(error.absolute_path)) or '(document)'
        found.append('%s: %s' % (where, error.message))
    return found


def _run_validate_command(command, data, basename, what='the new content'):
    if '%s' not in command:
        raise ConfigError('validate command %r must contain %%s (the temporary file to check)' % command)
    workdir = tempfile.mkdtemp(prefix='lastgood-validate-')
    probe = os.path.join(workdir, basename)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        argv = [arg.replace('%s', probe) for arg in shlex.split(command)]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError('validate command %r could not run: %s' % (command, exc))
        if proc.returncode != 0:
            output = proc.stdout.decode('utf-8', 'replace').strip()[-2000:]
            raise ConfigError('validate command %r rejected %s (exit %d): %s'
                              % (command, what, proc.returncode, output or 'no output'))
    finally:
        for path in (probe, workdir):
            try:
                (os.rmdir if path == workdir else os.unlink)(path)
            except OSError:
                pass


def check_document(doc, required_keys=(), schema=None):
    """Problems of ``doc`` (required keys, schema) as a list of sentences; empty when valid."""
    problems = []
    for text in required_keys or ():
        if not lookup(doc, parse_key_path(text))[0]:
            problems.append('required key %s is missing' % text)
    if schema is not None:
        problems.extend('schema violation at %s' % error for error in _schema_errors(doc, schema))
    return problems


def validate_document(doc, data, basename, what, required_keys=(), schema=None, schema_path=None, validate_cmd=None):
    """Check the parsed ``doc`` (its bytes ``data``, file name ``basename``) and return the schema it was checked
    against; ConfigError naming ``what`` when a required key, the schema or the validate command refuses it."""
    schema = load_schema(schema, schema_path)
    problems = check_document(doc, required_keys, schema)
    if problems:
        raise ConfigError('%s is invalid: %s' % (what, '; '.join(problems)))
    if validate_cmd:
        _run_validate_command(validate_cmd, data, basename, what)
    return schema


def check_bytes(data, path, fmt='auto', required_keys=(), schema=None, schema_path=None, validate_cmd=None,
                what=None):
    """Validate ``data``, the would-be content of the document ``path``, as :func:`update` validates new content:
    UTF-8, parses (JSON or YAML by ``fmt`` or the extension), ``required_keys``, ``schema``/``schema_path``,
    ``validate_cmd`` on a private copy.  Returns the document; raises ConfigError (MissingLibrary) naming ``what``.
    """
    what = what or path
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ConfigError('%s is not UTF-8 text: %s' % (what, exc))
    doc = parse(text, detect_format(path, fmt), what)
    validate_document(doc, data, os.path.basename(path), what, required_keys, schema, schema_path, validate_cmd)
    return doc


# ---- the update ---------------------------------------------------------------------------------

def _free_backup_name(real):
    stamp = time.strftime('%Y%m%d%H%M%S', time.gmtime())
    name = '%s.bak.%s' % (real, stamp)
    counter = 1
    while True:
        try:
            os.lstat(name)
        except FileNotFoundError:
            return name
        counter += 1
        name = '%s.bak.%s-%d' % (real, stamp, counter)


def _sibling_backup(real, original, st):
    name = _free_backup_name(real)
    try:
        atomic_write(name, original, mode=st.st_mode & 0o7777, mtime_ns=st.st_mtime_ns, **_owner(st))
        if not _reads_back(name, original):
            raise OSError('backup %s does not read back identical to %s' % (name, real))
    except BaseException:
        # a backup that is not durable or could not be checked is not one to offer for recovery
        try:
            os.unlink(name)
        except OSError:
            pass
        raise
    return {'path': name, 'id': None, 'file': name}


def _store_backup(real, backup_root, set_name):
    try:
        store = Store(backup_root, set_name)
        # before anything else in the store: settle an interrupted restore's journal, remove leftovers
        store.recover()
        created = store.create(paths=[real], name=None, incremental=True, excludes=(), mark_lastgood=False)
    except StoreError as exc:
        raise ConfigError(str(exc))
    return {'path': created['path'], 'id': created['id'], 'recovered': list(store.recovered),
            'file': os.path.join(store.data_dir(created['id']), real.lstrip('/'))}


def _owner(st):
    if st is None or os.geteuid() != 0:
        return {}
    return {'uid': st.st_uid, 'gid': st.st_gid}


def _reads_back(path, expected):
    """True when ``path`` holds exactly ``expected`` (None: when ``path`` does not exist)."""
    try:
        current = read_bytes(path, limit=MAX_BYTES)
    except FileNotFoundError:
        current = None
    return current == expected


def _restore(real, original, st):
    """Put ``original`` (None: the file did not exist) back at ``real``; True when it reads back exact."""
    try:
        if _reads_back(real, original):
            return True
    except (OSError, ValueError):
        pass
    try:
        if original is None:
            os.unlink(real)
            fsync_dir(os.path.dirname(real))
        else:
            atomic_write(real, original, mode=st.st_mode & 0o7777, mtime_ns=st.st_mtime_ns, **_owner(st))
        return _reads_back(real, original)
    except (OSError, ValueError):
        return False


def _unshared_copy(doc, real):
    """A deep copy in which YAML aliases no longer share one node.

    A value set through an alias then changes that path only, not the anchor and every
    other alias of it (copy.deepcopy would keep them shared).
    """
    def walk(node):
        if isinstance(node, dict):
            return dict((key, walk(value)) for key, value in node.items())
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node
    try:
        return walk(doc)
    except RecursionError:
        raise ConfigError('%s is nested too deeply or refers to itself through an alias' % real)


def _new_text(original, fmt, content, set_values, unset, real):
    """(new text, new document, method) for the requested change."""
    if content is not None:
        if isinstance(content, str):
            return content, parse(content, fmt, 'the new content'), 'content'
        if original is not None:
            try:
                if parse(original, fmt, real) == content:
                    return original, content, 'none'
            except ConfigError:
                pass
        renderer = render_json if fmt == 'json' else render_yaml
        return renderer(content, original), content, 'content'
    current = parse(original, fmt, 'the current file %s' % real) if original and original.strip() else None
    if current is None:
        current = {}
    edits = [(parse_key_path(key), value) for key, value in (set_values or {}).items()]
    removals = [parse_key_path(key) for key in (unset or ())]
    doc = _unshared_copy(current, real)
    for keys, value in edits:
        set_path(doc, keys, value)
    for keys in removals:
        unset_path(doc, keys)
    if doc == current and original is not None:
        return original, doc, 'none'
    if fmt == 'json':
        return render_json(doc, original), doc, 'dump'
    if original and not removals:
        edited = yaml_line_edit(original, edits, doc)
        if edited is not None:
            return edited, doc, 'line_edit'
    return render_yaml(doc, original), doc, 'dump'


def update(path, fmt='auto', content=None, set_values=None, unset=None, schema=None, schema_path=None,
           required_keys=None, validate_cmd=None, backup='sibling', backup_root=None, set_name=None,
           create=False, check=False, keep_backups=None):
    """Apply one change to the JSON/YAML file at ``path``; see the module docs for the contract.

    Returns ``{changed, path, format, method, backup, backup_id, restored, before, after, pruned_backups}``.
    ``keep_backups``: after a successful update (or none needed), remove sibling backups beyond the newest
    ``keep_backups``.  Raises ConfigError (``restored``/``backup`` set when the failure came after the backup).
    """
    if (content is None) == (not set_values and not unset):
        raise ConfigError('give either content, or values and/or unset')
    if backup not in BACKUP_MODES:
        raise ConfigError('backup must be one of %s' % ', '.join(BACKUP_MODES))
    if keep_backups is not None:
        if isinstance(keep_backups, bool) or not isinstance(keep_backups, int) or keep_backups < 1:
            raise ConfigError('keep_backups must be a positive integer, not %r' % (keep_backups,))
        if backup != 'sibling':
            raise ConfigError('keep_backups prunes sibling backups (backup=sibling); backups in the store are '
                              'pruned by the retention of lastgood.rollback.backup (keep_last, keep_days)')
    real = os.path.realpath(os.path.abspath(os.fspath(path)))
    fmt = detect_format(real, fmt)
    try:
        st, original_bytes = _read_current(real, create)
        original = original_bytes.decode('utf-8') if original_bytes is not None else None
        text, doc, method = _new_text(original, fmt, content, set_values, unset, real)
        data = text.encode('utf-8')
        schema = validate_document(doc, data, os.path.basename(real), 'the new content of %s' % real,
                                   required_keys, schema, schema_path, validate_cmd)
    except (OSError, ValueError) as exc:
        raise ConfigError('preparing the update of %s failed: %s; nothing was changed and no backup was made'
                          % (real, exc))
    except MissingLibrary:
        raise
    except ConfigError as exc:
        raise ConfigError('%s; nothing was changed and no backup was made' % exc)

    changed = data != original_bytes
    result = {'changed': changed, 'path': real, 'format': fmt, 'method': method if changed else 'none',
              'backup': None, 'backup_id': None, 'restored': None, 'before': original, 'after': text,
              'pruned_backups': []}
    if check:
        if keep_backups is not None:
            # the update would add one sibling backup before the pruning
            coming = 1 if changed and original_bytes is not None else 0
            result['pruned_backups'] = _surplus_backups(real, keep_backups - coming)
            result['changed'] = changed or bool(result['pruned_backups'])
        return result
    try:
        lock_fd = _lock_writers(real)
    except OSError as exc:
        raise ConfigError('locking %s against other updates failed (%s); nothing was changed'
                          % (os.path.dirname(real), exc))
    try:
        try:
            result['stale_temps_removed'] = _remove_stale_temps(real)
        except OSError as exc:
            raise ConfigError('cleaning up after an earlier interrupted update of %s failed (%s); '
                              'nothing was changed' % (real, exc))
        if changed:
            _write_with_backup(real, data, original_bytes, st, backup, backup_root, set_name,
                               required_keys, schema, fmt, result)
        if keep_backups is not None:
            result['pruned_backups'] = _prune_backups(real, keep_backups)
            result['changed'] = changed or bool(result['pruned_backups'])
    finally:
        _release_writers(lock_fd)
    return result


def _sibling_backups(real):
    """The sibling backups of ``real`` (``<file>.bak.YYYYMMDDHHMMSS[-N]``), oldest first."""
    directory, base = os.path.split(real)
    pattern = re.compile(re.escape(base) + r'\.bak\.([0-9]{14})(?:-([0-9]{1,9}))?\Z')
    found = []
    for name in os.listdir(directory):
        match = pattern.match(name)
        if match and os.path.isfile(os.path.join(directory, name)) and not os.path.islink(os.path.join(directory, name)):
            found.append(((match.group(1), int(match.group(2) or 1)), os.path.join(directory, name)))
    return [path for _key, path in sorted(found)]


def _surplus_backups(real, keep):
    backups = _sibling_backups(real)
    return backups[:max(len(backups) - max(keep, 0), 0)]


def _prune_backups(real, keep):
    """Remove the sibling backups beyond the newest ``keep`` (durably); returns their paths."""
    doomed = _surplus_backups(real, keep)
    removed = []
    try:
        for path in doomed:
            os.unlink(path)
            removed.append(path)
        if removed:
            fsync_dir(os.path.dirname(real))
    except OSError as exc:
        done = ', '.join(removed) or 'none'
        raise ConfigError('the update of %s is done, but pruning its old backups failed (%s); removed: %s. The '
                          'remaining ones are intact; the next run prunes them' % (real, exc, done))
    return removed


def _lock_writers(real):
    """Serialise config_update writers of files in one directory (an flock on the directory).

    Held only around the backup and write, so that temporary files found in the
    directory belong to an interrupted earlier update, never to one in progress.
    Returns the descriptor; closing it releases the lock.
    """
    fd = os.open(os.path.dirname(real), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release_writers(fd):
    try:
        os.close(fd)
    except OSError:
        pass  # a read-only directory descriptor: closing it releases the lock whatever it reports


def _remove_stale_temps(real):
    """Remove temporary files that killed updates of ``real`` (the file or its sibling backups) left."""
    directory, base = os.path.split(real)
    prefixes = (TMP_PREFIX + base[:80] + '.', TMP_PREFIX + (base + '.bak.')[:80])
    removed = []
    for name in os.listdir(directory):
        if not name.startswith(prefixes):
            continue
        token = name.rsplit('.', 1)[-1]
        if len(token) == 8 and all(char in '0123456789abcdef' for char in token):
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    return removed


def _write_with_backup(real, data, original_bytes, st, backup, backup_root, set_name, required_keys, schema, fmt,
                       result):
    saved = None
    if original_bytes is not None:
        try:
            if backup == 'sibling':
                saved = _sibling_backup(real, original_bytes, st)
            else:
                saved = _store_backup(real, backup_root, set_name)
        except (OSError, ValueError, ConfigError) as exc:
            raise ConfigError('backing up %s failed (%s); the file was not changed' % (real, exc))
        result['backup'] = saved['path']
        result['backup_id'] = saved['id']
        if 'recovered' in saved:
            result['store_recovered'] = saved['recovered']
    try:
        atomic_write(real, data, mode=(st.st_mode & 0o7777) if st is not None else 0o600, **_owner(st))
        written = read_bytes(real, limit=MAX_BYTES)
        if written != data:
            raise OSError('%s does not read back as written' % real)
        problems = check_document(parse(written.decode('utf-8'), fmt, real), required_keys, schema)
        if problems:
            raise ConfigError('re-validation after the write failed: %s' % '; '.join(problems))
    except (OSError, ValueError, ConfigError) as exc:
        raise _failed_after_backup(real, exc, original_bytes, st, saved)


def _read_current(real, create):
    """(stat, bytes) of the file to change; (None, None) when it is missing and may be created."""
    try:
        st = os.stat(real)
    except FileNotFoundError:
        if not create:
            raise ConfigError('%s does not exist (set create to make it)' % real)
        return None, None
    if (st.st_mode & 0o170000) != 0o100000:
        raise ConfigError('%s is not a regular file' % real)
    return st, read_bytes(real, limit=MAX_BYTES)


def _failed_after_backup(real, exc, original_bytes, st, saved):
    restored = _restore(real, original_bytes, st)
    backup_file = saved['file'] if saved else None
    if restored:
        message = ('writing %s failed (%s). The original content was put back automatically (restored: yes)'
                   % (real, exc))
        if backup_file:
            message += '; the backup is kept at %s' % backup_file
        else:
            message += '; the file did not exist before and was removed again'
    elif backup_file:
        message = ('writing %s failed (%s) and the automatic restore FAILED too (restored: no): the file may hold '
                   'the new, a partial or the original content. Restore it by hand from the backup: '
                   'cp -p %s %s' % (real, exc, backup_file, real))
    else:
        message = ('writing %s failed (%s) and the automatic restore FAILED too (restored: no): the file did not '
                   'exist before the update; remove %s by hand' % (real, exc, real))
    return ConfigError(message, restored=restored, backup=backup_file)


# The ``documents`` option of the modules that validate documents (verify; restore for what it writes): each
# entry takes config_update's validation options.
DOCUMENT_SPEC = {
    'type': 'list', 'elements': 'dict', 'default': [],
    'options': {
        'path': {'type': 'path', 'required': True},
        'format': {'type': 'str', 'default': 'auto', 'choices': ['auto', 'json', 'yaml']},
        'required_keys': {'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
        'schema': {'type': 'dict'},
        'schema_path': {'type': 'path'},
        'validate': {'type': 'str'},
    },
}
