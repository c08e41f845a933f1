"""Hostile input: Hypothesis throws malformed and malicious data at the parsers that drive writes.

* the manifest loader: every input is either refused with ManifestError or yields
  a manifest whose every path is safe, unique, under a source and below a
  directory entry (and the definitely-bad mutations are always refused);
* the restore planner, end to end: a backup whose manifest and data a hostile
  hand wrote (consistently, so the store's digest checks pass) is restored into a
  sandbox whose live tree has symlinked parents; a sentinel outside the target
  never changes, and a restore that succeeds produces exactly the backup;
* config_update: hostile key paths, values, documents and file contents; only
  ConfigError escapes, a failed update leaves the file as it was, a successful
  one leaves valid JSON holding the values set.

Only the engine's documented error types may escape.  The default run tries a
few hundred inputs; ``-m slow`` tries more than 10,000.
"""

import hashlib
import json
import os
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lib import faults, scenarios, trees

DEFAULT = {'loader': 150, 'planner': 60, 'config': 120, 'keys': 150}
SLOW = {'loader': 4000, 'planner': 1500, 'config': 2500, 'keys': 2500}


def fuzz_settings(count):
    return settings(max_examples=count, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def engine_or_skip(name):
    try:
        return scenarios.engine(name)
    except scenarios.Unavailable as exc:
        pytest.skip(str(exc))


# -- manifests ------------------------------------------------------------------------------

NAMES = st.sampled_from([
    'a', 'b', 'A', 'etc', '\u00e9', 'e\u0301', '\u00c9', '\u00df', 'SS', 'ss', '.hidden', 'with space', '-rf', '*',
    '\\', 'line\nbreak', 'tab\tname', '\U0001f642', 'x' * 200, 'con', '...', '\u212b', '\u00c5',
]) | st.text(alphabet=st.characters(blacklist_categories=('Cs',), blacklist_characters='/\0'), min_size=1,
             max_size=6)
HOSTILE_SEGMENTS = st.sampled_from(['..', '.', '', '\0', 'a\0b', '/'])
SYMLINK_TARGETS = st.sampled_from([
    'a', '../../../../outside/sentinel', '/', '..', '.', 'a/../../..', '../' * 40 + 'etc/passwd',
    'sentinel', '\u00e9', 'link-loop', '/tmp',
]) | NAMES
CONTENTS = st.binary(max_size=64) | st.sampled_from([b'', b'same content\n'])


@st.composite
def trees_spec(draw, max_entries=8):
    """A consistent tree: [(parts, kind, payload)] with every parent a directory."""
    entries = []
    dirs = [()]
    files = []
    for _attempt in range(draw(st.integers(0, max_entries))):
        parent = draw(st.sampled_from(dirs))
        name = draw(NAMES)
        parts = parent + (name,)
        if any(existing[0] == parts for existing in entries):
            continue
        kind = draw(st.sampled_from(['file', 'file', 'dir', 'symlink', 'hardlink']))
        if kind == 'hardlink' and not files:
            kind = 'file'
        if kind == 'file':
            entries.append((parts, 'file', draw(CONTENTS)))
            files.append(parts)
        elif kind == 'dir':
            entries.append((parts, 'dir', None))
            dirs.append(parts)
        elif kind == 'symlink':
            entries.append((parts, 'symlink', draw(SYMLINK_TARGETS)))
        else:
            entries.append((parts, 'hardlink', draw(st.sampled_from(files))))
    return entries


MUTATIONS = ('none', 'dotdot', 'absolute', 'nul', 'empty_segment', 'duplicate', 'parent_not_dir', 'missing_parent',
             'hardlink_outside', 'wrong_type', 'negative', 'bad_version', 'extra_key', 'mode_bits', 'size_vs_hash',
             'nfc_nfd_twin', 'case_twin', 'bool_for_int', 'bad_sha', 'not_under_source', 'deep', 'xattrs', 'bad_xattr',
             'xattrs_in_v1')
REFUSED = frozenset(('dotdot', 'absolute', 'nul', 'empty_segment', 'duplicate', 'parent_not_dir', 'missing_parent',
                     'hardlink_outside', 'wrong_type', 'negative', 'bad_version', 'extra_key', 'mode_bits',
                     'bool_for_int', 'bad_sha', 'not_under_source', 'bad_xattr', 'xattrs_in_v1'))
# xattrs values a loader must refuse: not base64, not canonical, a name without namespace, with NUL, empty, too long
BAD_XATTRS = ({'user.a': 'not base64!'}, {'user.a': 'YQ'}, {'noprefix': 'YQ=='}, {'user.a\0b': 'YQ=='}, {'': 'YQ=='},
              {'user.' + 'x' * 251: 'YQ=='}, {}, {'user.a': 7}, ['user.a'])


def entry_dict(path, kind, payload, contents):
    data = contents.get(path)
    if kind == 'file':
        return {'path': path, 'type': 'file', 'size': len(data), 'mode': 0o640, 'uid': 0, 'gid': 0,
                'mtime_ns': scenarios.MTIME, 'sha256': hashlib.sha256(data).hexdigest(), 'target': None}
    if kind == 'hardlink':
        return {'path': path, 'type': 'hardlink', 'size': len(data), 'mode': 0o640, 'uid': 0, 'gid': 0,
                'mtime_ns': scenarios.MTIME, 'sha256': hashlib.sha256(data).hexdigest(), 'target': payload}
    if kind == 'symlink':
        return {'path': path, 'type': 'symlink', 'size': 0, 'mode': 0o777, 'uid': 0, 'gid': 0,
                'mtime_ns': scenarios.MTIME, 'sha256': None, 'target': payload}
    return {'path': path, 'type': 'dir', 'size': 0, 'mode': 0o750, 'uid': 0, 'gid': 0,
            'mtime_ns': scenarios.MTIME, 'sha256': None, 'target': None}


@st.composite
def manifests(draw, source_rel='srv/app'):
    """(manifest dict, contents by path, mutation): a manifest, possibly made hostile one way."""
    spec = draw(trees_spec())
    contents = {}
    entries = [entry_dict(source_rel, 'dir', None, contents)]
    for parts, kind, payload in spec:
        path = source_rel + '/' + '/'.join(parts)
        if kind == 'file':
            contents[path] = payload
        if kind == 'hardlink':
            payload = source_rel + '/' + '/'.join(payload)
            contents[path] = contents[payload]
        entries.append(entry_dict(path, kind, payload, contents))
    mutation = draw(st.sampled_from(MUTATIONS))
    version = draw(st.sampled_from([1, 2]))
    last = entries[-1]
    if mutation == 'dotdot':
        entries.append(dict(last, path=source_rel + '/' + draw(st.sampled_from(['..', 'a/..', '../x', 'a/../../b']))))
    elif mutation == 'absolute':
        entries.append(dict(last, path='/' + source_rel + '/abs'))
    elif mutation == 'nul':
        entries.append(dict(last, path=source_rel + '/n\0ul'))
    elif mutation == 'empty_segment':
        entries.append(dict(last, path=source_rel + draw(st.sampled_from(['//x', '/x/', '/./x']))))
    elif mutation == 'duplicate':
        entries.append(dict(last))
    elif mutation == 'parent_not_dir':
        blocker = draw(st.sampled_from(['file', 'symlink']))
        entries.append(entry_dict(source_rel + '/blk', blocker, 'x' if blocker == 'symlink' else None,
                                  dict(contents, **{source_rel + '/blk': b'x'})))
        entries.append(entry_dict(source_rel + '/blk/child', 'dir', None, contents))
    elif mutation == 'missing_parent':
        entries.append(entry_dict(source_rel + '/no/such/parent', 'dir', None, contents))
    elif mutation == 'hardlink_outside':
        contents[source_rel + '/hl'] = b''
        entries.append(dict(entry_dict(source_rel + '/hl', 'hardlink', 'etc/shadow', contents)))
    elif mutation == 'wrong_type':
        key = draw(st.sampled_from(['path', 'type', 'size', 'mode', 'target', 'sha256']))
        entries.append(dict(last, **{key: draw(st.sampled_from([None, 7, [], {}, 'str', 1.5]))}))
        if key in ('target', 'sha256'):
            # a value of the wrong kind for the entry's type: a dir carrying either, a
            # symlink without a target, a file without a digest
            if entries[-1][key] is not None:
                entries[-1]['type'] = 'dir'
            else:
                entries[-1]['type'] = 'symlink' if key == 'target' else 'file'
            entries[-1]['path'] = source_rel + '/wrong'
    elif mutation == 'negative':
        entries.append(dict(last, path=source_rel + '/neg', size=-1))
    elif mutation == 'bool_for_int':
        entries.append(dict(last, path=source_rel + '/boolean', mode=True))
    elif mutation == 'bad_version':
        version = draw(st.sampled_from([0, 3, 99]))
    elif mutation in ('xattrs', 'xattrs_in_v1'):
        entries.append(dict(entry_dict(source_rel + '/tagged', 'dir', None, contents),
                            xattrs={'user.fuzz': 'dGFnZ2Vk', 'trusted.fuzz': 'AP8='}))
        version = 2 if mutation == 'xattrs' else 1
    elif mutation == 'bad_xattr':
        entries.append(dict(entry_dict(source_rel + '/badx', 'dir', None, contents),
                            xattrs=draw(st.sampled_from(BAD_XATTRS))))
        version = 2
    elif mutation == 'extra_key':
        entries.append(dict(last, path=source_rel + '/extra', owner='root'))
    elif mutation == 'mode_bits':
        entries.append(dict(last, path=source_rel + '/modebits', mode=0o170644))
    elif mutation == 'bad_sha':
        contents[source_rel + '/badsha'] = b'x'
        entries.append(dict(entry_dict(source_rel + '/badsha', 'file', None, contents), sha256='Z' * 64))
    elif mutation == 'not_under_source':
        entries.append(entry_dict('srv/other', 'dir', None, contents))
    elif mutation == 'size_vs_hash':
        files = [entry for entry in entries if entry['type'] == 'file']
        if files:
            victim = draw(st.sampled_from(files))
            victim['size'] += draw(st.integers(1, 10))
        else:
            mutation = 'none'
    elif mutation in ('nfc_nfd_twin', 'case_twin'):
        base = 'Caf\u00e9' if mutation == 'nfc_nfd_twin' else 'Readme'
        twin = unicodedata.normalize('NFD', base) if mutation == 'nfc_nfd_twin' else base.lower()
        for name, data in ((base, b'first\n'), (twin, b'second\n')):
            contents[source_rel + '/' + name] = data
            entries.append(entry_dict(source_rel + '/' + name, 'file', None, contents))
    elif mutation == 'deep':
        path = source_rel
        for depth in range(draw(st.integers(20, 60))):
            path += '/d%d' % depth
            entries.append(entry_dict(path, 'dir', None, contents))
    files = [e for e in entries if isinstance(e.get('type'), str) and e['type'] in ('file', 'hardlink')]
    totals = {'files': len(files), 'dirs': sum(1 for e in entries if e.get('type') == 'dir'),
              'symlinks': sum(1 for e in entries if e.get('type') == 'symlink'),
              'bytes': sum(e['size'] for e in files if e['type'] == 'file' and isinstance(e.get('size'), int))}
    manifest = {'version': version, 'id': 'hostile', 'set': 'app',
                'created': '2026-11-21T23:15:00.000000Z', 'host': 'fuzz', 'sources': ['/' + source_rel],
                'entries': entries, 'totals': totals, 'parent': None}
    return manifest, contents, mutation


def check_accepted(loaded):
    """Properties every manifest the loader accepts must have."""
    _manifest = scenarios.engine('_manifest')
    paths = [entry.path for entry in loaded.entries]
    assert len(paths) == len(set(paths)), 'duplicate paths accepted'
    sources = loaded.rel_sources
    by_path = loaded.by_path
    for entry in loaded.entries:
        _manifest.check_rel_path(entry.path)
        assert any(entry.path == s or entry.path.startswith(s + '/') for s in sources), entry.path
        parent = entry.path.rsplit('/', 1)[0] if '/' in entry.path else None
        if entry.path not in sources and parent is not None:
            assert by_path[parent].type == 'dir', 'parent of %r is not a directory' % entry.path
        if entry.type == 'hardlink':
            assert by_path[entry.target].type == 'file'


def run_loader(data):
    _manifest = engine_or_skip('_manifest')
    faults.record('inputs_fuzzed')
    try:
        loaded = _manifest.loads(data, source='fuzzed manifest')
    except _manifest.ManifestError as exc:
        assert str(exc), 'a refusal must say why'
        return None
    check_accepted(loaded)
    return loaded


def loader_property(case):
    manifest, _contents, mutation = case
    loaded = run_loader(json.dumps(manifest).encode('utf-8'))
    if mutation in REFUSED:
        assert loaded is None, 'the loader accepted a manifest with %s' % mutation


@fuzz_settings(DEFAULT['loader'])
@given(manifests())
@example((None, None, 'deep-json'))
def test_manifest_loader_refuses_or_accepts_only_safe_manifests(case):
    if case[2] == 'deep-json':
        assert run_loader(b'{"entries": ' + b'[' * 100000 + b']' * 100000 + b'}') is None
        return
    loader_property(case)


@fuzz_settings(DEFAULT['loader'])
@given(manifests(), st.integers(0, 10 ** 6), st.binary(min_size=1, max_size=4))
def test_manifest_loader_survives_corrupted_bytes(case, position, garbage):
    data = json.dumps(case[0]).encode('utf-8')
    position %= len(data)
    run_loader(data[:position] + garbage + data[position + len(garbage):])


@pytest.mark.slow
@fuzz_settings(SLOW['loader'])
@given(manifests())
def test_manifest_loader_many_inputs(case):
    loader_property(case)


# -- the restore planner, end to end --------------------------------------------------------

def materialize(data_root, entries, contents):
    """Write the backup data a manifest describes (only for paths the loader would accept)."""
    made = {}
    for entry in entries:
        path = os.path.join(data_root, entry['path'])
        if entry['type'] == 'dir':
            os.makedirs(path, exist_ok=True)
        elif entry['type'] == 'file':
            with open(path, 'wb') as handle:
                handle.write(contents[entry['path']])
            made[entry['path']] = path
        elif entry['type'] == 'hardlink':
            os.link(made[entry['target']], path)
        elif entry['type'] == 'symlink':
            os.symlink(entry['target'], path)
    for entry in reversed(entries):
        path = os.path.join(data_root, entry['path'])
        if entry['type'] != 'symlink':
            os.chmod(path, entry['mode'])
        os.utime(path, ns=(entry['mtime_ns'], entry['mtime_ns']), follow_symlinks=False)


def write_backup(store, manifest, contents):
    """Put a hand-made backup into the store, with digests that pass the store's own checks."""
    _manifest = scenarios.engine('_manifest')
    _store = scenarios.engine('_store')
    directory = os.path.join(store.set_dir, manifest['id'])
    os.makedirs(os.path.join(directory, 'data'))
    json_bytes = (json.dumps(manifest, indent=1, sort_keys=True) + '\n').encode('utf-8')
    try:
        loaded = _manifest.loads(json_bytes)
    except _manifest.ManifestError:
        loaded = None
    if loaded is not None:
        materialize(os.path.join(directory, 'data'), manifest['entries'], contents)
        if hasattr(_store, 'sums_bytes'):
            sums = _store.sums_bytes(loaded, json_bytes)
        else:
            sums = _store.sums_text(loaded, json_bytes).encode('utf-8')
    else:
        sums = b'%s  MANIFEST.json\n' % hashlib.sha256(json_bytes).hexdigest().encode()
    with open(os.path.join(directory, 'MANIFEST.json'), 'wb') as handle:
        handle.write(json_bytes)
    with open(os.path.join(directory, 'MANIFEST.sha256'), 'wb') as handle:
        handle.write(sums)
    with open(os.path.join(store.set_dir, 'LASTGOOD'), 'w') as handle:
        handle.write(manifest['id'] + '\n')
    return loaded


def sandbox_live_tree(target, outside):
    """A live target whose entries include symlinks leading out of it (symlinked parents)."""
    os.makedirs(target)
    os.symlink(outside, os.path.join(target, 'a'))
    os.symlink(os.path.relpath(outside, target), os.path.join(target, '\u00e9'))
    with open(os.path.join(target, 'b'), 'w') as handle:
        handle.write('live\n')
    os.link(os.path.join(outside, 'sentinel'), os.path.join(target, 'etc'))


def restore_property(case, base):
    _store = engine_or_skip('_store')
    _restore = engine_or_skip('_restore')
    faults.record('inputs_fuzzed')
    manifest, contents, mutation = case
    scenarios.remove_tree(base)
    outside = os.path.join(base, 'outside')
    os.makedirs(outside)
    with open(os.path.join(outside, 'sentinel'), 'w') as handle:
        handle.write('must never change\n')
    target = os.path.join(base, 'root', 'srv', 'app')
    source_rel = target.lstrip('/')
    manifest = json.loads(json.dumps(manifest).replace('"srv/app', '"' + source_rel).replace(
        '"/srv/app', '"/' + source_rel))
    contents = {path.replace('srv/app', source_rel, 1): data for path, data in contents.items()}
    sandbox_live_tree(target, outside)
    before_outside = trees.tree_digest(outside)
    store = _store.Store(os.path.join(base, 'store'), 'app')
    os.makedirs(store.set_dir, mode=0o700)
    loaded = write_backup(store, manifest, contents)
    allowed = scenarios.engine_errors()
    error = None
    try:
        _restore.restore(store, store.set_dir, ref='hostile')
    except allowed as exc:
        error = exc
    assert trees.tree_digest(outside) == before_outside, 'the sentinel outside the target changed (%s)' % mutation
    assert os.listdir(os.path.dirname(target)) == ['app'], 'left beside the target: %s' % os.listdir(
        os.path.dirname(target))
    if error is not None:
        assert not isinstance(error, OSError) or error.errno is not None, 'an OSError without errno escaped'
        assert str(error)
        return
    assert loaded is not None and mutation not in REFUSED | {'size_vs_hash'}, (
        'restore accepted a backup with %s' % mutation)
    want = os.path.join(store.set_dir, 'hostile', 'data', source_rel)
    assert trees.tree_digest(target) == trees.tree_digest(want), 'the restored tree differs from the backup'


@fuzz_settings(DEFAULT['planner'])
@given(case=manifests())
def test_restore_of_a_hostile_backup_never_touches_anything_outside_the_target(case, fast_dir):
    restore_property(case, str(fast_dir / 'sandbox'))


@pytest.mark.slow
@fuzz_settings(SLOW['planner'])
@given(case=manifests())
def test_restore_of_many_hostile_backups(case, fast_dir):
    restore_property(case, str(fast_dir / 'sandbox'))


# -- config_update ------------------------------------------------------------------------------

KEY_SEGMENTS = st.sampled_from(['a', 'b', 'partyMode', 'enabled', '0', '-1', '[0]', '["x.y"]', "['q']", '..', '',
                                '[', ']', '"', '\\', '\u00e9', '__proto__', 'constructor', '99999999999'])
KEY_PATHS = st.lists(KEY_SEGMENTS, min_size=1, max_size=5).map('.'.join) | st.text(max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)
FILE_CONTENTS = st.sampled_from([
    b'{"partyMode": {"enabled": true}, "modes": [1, 2, 3]}\n', b'{}', b'[]', b'null', b'{"a": {"a": {"a": 1}}}',
    b'{"a": 1, "a": 2}', b'{"a": NaN}', b'\xff\xfe{"a": 1}', b'{"a": "\xc3\x28"}', b'', b'   ', b'{',
    b'[' * 50000 + b']' * 50000, b'{"x": ' * 3000 + b'1' + b'}' * 3000, b'\xef\xbb\xbf{"bom": true}',
]) | JSON_VALUES.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=40)


def config_property(fast_dir, original, set_values, unset, content):
    """config_update on a fresh custom_modes.json, a sentinel beside its directory: refused, or exactly what was asked."""
    _config = engine_or_skip('_config')
    faults.record('inputs_fuzzed')
    directory = fast_dir / 'cfg'
    scenarios.remove_tree(str(directory))
    directory.mkdir()
    (fast_dir / 'outside').mkdir(exist_ok=True)
    (fast_dir / 'outside' / 'sentinel').write_text('keep\n')
    outside = str(fast_dir / 'outside')
    path = str(directory / 'custom_modes.json')
    with open(path, 'wb') as handle:
        handle.write(original)
    before_dir = sorted(os.listdir(os.path.dirname(path)))
    before_outside = trees.tree_digest(outside)
    kwargs = {'content': content} if content is not None else {'set_values': set_values, 'unset': unset}
    error = result = None
    try:
        result = _config.update(path, fmt='json', **kwargs)
    except _config.ConfigError as exc:
        error = exc
    assert trees.tree_digest(outside) == before_outside
    after_dir = sorted(os.listdir(os.path.dirname(path)))
    with open(path, 'rb') as handle:
        now = handle.read()
    if error is not None:
        assert str(error)
        assert now == original, 'a failed update changed the file'
        if error.backup is None:
            assert after_dir == before_dir, 'a refused update left files behind: %s' % after_dir
        return
    assert not [name for name in after_dir if name.startswith('.lastgood-tmp-')]
    if not result['changed']:
        assert now == original and after_dir == before_dir, 'an update that changed nothing touched files'
        return
    document = json.loads(now.decode('utf-8'))
    if content is None:
        for key, value in (set_values or {}).items():
            if key in (unset or ()):
                continue
            found, got = _config.lookup(document, _config.parse_key_path(key))
            if not any(other != key and (other.startswith(key) or key.startswith(other))
                       for other in list(set_values or {}) + list(unset or ())):
                assert found and got == value, 'key %r does not hold the value set' % key


@fuzz_settings(DEFAULT['config'])
@given(FILE_CONTENTS, st.dictionaries(KEY_PATHS, JSON_VALUES, max_size=3), st.lists(KEY_PATHS, max_size=2),
       st.none() | JSON_VALUES | st.text(max_size=30))
def test_config_update_with_hostile_input_changes_nothing_or_exactly_what_was_asked(
        fast_dir, original, set_values, unset, content):
    if content is None and not set_values and not unset:
        set_values = {'partyMode.enabled': False}
    config_property(fast_dir, original, set_values, unset, content)


@fuzz_settings(DEFAULT['keys'])
@given(KEY_PATHS | st.text(max_size=40))
def test_key_path_parser_returns_keys_or_a_config_error(text):
    _config = engine_or_skip('_config')
    faults.record('inputs_fuzzed')
    try:
        keys = _config.parse_key_path(text)
    except _config.ConfigError as exc:
        assert str(exc)
        return
    assert keys and all(isinstance(key, (str, int)) and not isinstance(key, bool) for key in keys)


@pytest.mark.slow
@fuzz_settings(SLOW['config'])
@given(FILE_CONTENTS, st.dictionaries(KEY_PATHS, JSON_VALUES, max_size=3), st.lists(KEY_PATHS, max_size=2),
       st.none() | JSON_VALUES)
def test_config_update_many_hostile_inputs(fast_dir, original, set_values, unset, content):
    if content is None and not set_values and not unset:
        set_values = {'a': 1}
    config_property(fast_dir, original, set_values, unset, content)


@pytest.mark.slow
@fuzz_settings(SLOW['keys'])
@given(st.text(max_size=60))
def test_key_path_parser_many_inputs(text):
    _config = engine_or_skip('_config')
    faults.record('inputs_fuzzed')
    try:
        _config.parse_key_path(text)
    except _config.ConfigError:
        pass
