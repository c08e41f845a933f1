import copy
import json
import os
import subprocess

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _manifest
from lib.trees import make_tree

TREE = {
    'app/conf/main.yml': 'port: 8080\n',
    'app/conf/secret.key': b'\x00\x01secret',
    'app/empty': None,
    'app/link': ('symlink', 'conf/main.yml'),
    'app/bin/run': '#!/bin/sh\n',
}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'root'
    make_tree(str(root), TREE)
    os.link(str(root / 'app/conf/main.yml'), str(root / 'app/conf/main-hardlink.yml'))
    return str(root)


def build(root, sources=('app',)):
    entries, skipped = _manifest.scan(root, list(sources))
    _manifest.hash_entries(root, entries)
    assert skipped == []
    return _manifest.Manifest('b1', 'default', '2026-01-01T00:00:00.000000Z', 'host',
                              ['/' + source for source in sources], entries, excludes=['*.tmp'])


def raw_of(manifest):
    return json.loads(manifest.to_json())


def refused(raw):
    with pytest.raises(_manifest.ManifestError) as info:
        _manifest.loads(json.dumps(raw))
    return str(info.value)


def test_manifest_round_trips_through_json(tree):
    manifest = build(tree)
    loaded = _manifest.loads(manifest.to_json())
    assert [entry.to_dict() for entry in loaded.entries] == [entry.to_dict() for entry in manifest.entries]
    assert loaded.excludes == ['*.tmp']
    kinds = {entry.path: entry.type for entry in loaded.entries}
    assert kinds['app/empty'] == 'dir'
    assert kinds['app/link'] == 'symlink'
    contents = sorted(kind for kind in kinds.values() if kind in ('file', 'hardlink'))
    assert contents == ['file', 'file', 'file', 'hardlink']


def test_manifest_without_excludes_key_loads_with_none_excluded(tree):
    raw = raw_of(build(tree))
    del raw['excludes']
    assert _manifest.loads(json.dumps(raw)).excludes == []


@pytest.mark.parametrize('bad_path, why', [
    ('/etc/passwd', 'absolute'),
    ('app/../../x', 'not normalised'),
    ('app/./x', 'not normalised'),
    ('app//x', 'not normalised'),
    ('app/x\x00y', 'NUL'),
])
def test_loader_refuses_unsafe_entry_path(tree, bad_path, why):
    raw = raw_of(build(tree))
    raw['entries'][-1]['path'] = bad_path
    assert why in refused(raw)


def test_loader_refuses_duplicate_path(tree):
    raw = raw_of(build(tree))
    raw['entries'].append(copy.deepcopy(raw['entries'][-1]))
    assert 'duplicate path' in refused(raw)


def test_loader_refuses_entry_below_a_symlinked_parent(tree):
    raw = raw_of(build(tree))
    escape = dict(raw['entries'][0], path='app/link/evil', type='file', size=0, sha256='0' * 64, target=None)
    raw['entries'].append(escape)
    raw['totals']['files'] += 1
    assert 'symlink, not a directory' in refused(raw)


def test_loader_refuses_entry_outside_every_source(tree):
    raw = raw_of(build(tree))
    raw['entries'].append(dict(raw['entries'][0], path='elsewhere'))
    assert 'not under any source' in refused(raw)


def test_loader_refuses_hardlink_to_a_path_outside_the_manifest(tree):
    raw = raw_of(build(tree))
    hardlink = next(item for item in raw['entries'] if item['type'] == 'hardlink')
    hardlink['target'] = 'app/nowhere'
    assert 'not a file in this manifest' in refused(raw)


@pytest.mark.parametrize('version', [0, 3, '1', True, None])
def test_loader_refuses_unknown_version(tree, version):
    raw = raw_of(build(tree))
    raw['version'] = version
    assert 'unknown manifest version' in refused(raw)


def test_loader_refuses_every_truncation(tree):
    text = build(tree).to_json()
    for length in range(len(text) - 1):
        with pytest.raises(_manifest.ManifestError):
            _manifest.loads(text[:length])


def test_loader_refuses_duplicate_json_key(tree):
    text = build(tree).to_json()
    doubled = text.replace('"host": "host"', '"host": "host", "host": "other"', 1)
    assert doubled != text
    with pytest.raises(_manifest.ManifestError, match='duplicate key'):
        _manifest.loads(doubled)


def test_loader_refuses_totals_that_disagree_with_entries(tree):
    raw = raw_of(build(tree))
    raw['totals']['bytes'] += 1
    assert 'totals.bytes' in refused(raw)


def test_loader_refuses_unknown_top_level_key(tree):
    raw = raw_of(build(tree))
    raw['surprise'] = 1
    assert 'unknown keys' in refused(raw)


def test_loader_refuses_exclude_pattern_with_nul(tree):
    raw = raw_of(build(tree))
    raw['excludes'] = ['ok', 'bad\x00']
    assert 'exclude pattern' in refused(raw)


def test_load_refuses_a_manifest_reached_through_a_symlink(tree, tmp_path):
    real = tmp_path / 'MANIFEST.real'
    real.write_text(build(tree).to_json())
    link = tmp_path / 'MANIFEST.json'
    link.symlink_to(real)
    with pytest.raises(OSError):
        _manifest.load(str(link))
    assert _manifest.load(str(real)).id == 'b1'


def test_verify_of_an_untouched_tree_is_clean(tree):
    manifest = build(tree)
    assert _manifest.is_clean(_manifest.verify(manifest, tree, owner=True))


def test_verify_detects_one_flipped_bit_with_size_and_mtime_kept(tree):
    manifest = build(tree)
    path = os.path.join(tree, 'app/conf/secret.key')
    st = os.stat(path)
    data = bytearray(open(path, 'rb').read())
    data[3] ^= 0x10
    with open(path, 'r+b') as handle:
        handle.write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = _manifest.verify(manifest, tree)
    assert result['changed'] == [{'path': 'app/conf/secret.key', 'reasons': ['content']}]
    assert not result['added'] and not result['removed']


def test_verify_detects_mode_change(tree):
    manifest = build(tree)
    os.chmod(os.path.join(tree, 'app/bin/run'), 0o755)
    result = _manifest.verify(manifest, tree)
    assert result['changed'] == [{'path': 'app/bin/run', 'reasons': ['mode']}]


def test_verify_detects_missing_file(tree):
    manifest = build(tree)
    os.unlink(os.path.join(tree, 'app/bin/run'))
    result = _manifest.verify(manifest, tree)
    assert result['removed'] == ['app/bin/run']
    assert {'path': 'app/bin/run', 'problem': 'missing'} in _manifest.mismatch_list(result)


def test_verify_detects_extra_file(tree):
    manifest = build(tree)
    with open(os.path.join(tree, 'app/empty/new'), 'w') as handle:
        handle.write('x')
    result = _manifest.verify(manifest, tree)
    assert result['added'] == ['app/empty/new']


def test_verify_detects_symlink_retargeted(tree):
    manifest = build(tree)
    os.unlink(os.path.join(tree, 'app/link'))
    os.symlink('/etc/shadow', os.path.join(tree, 'app/link'))
    result = _manifest.verify(manifest, tree)
    # a new symlink: its mtime is the time it was made
    assert result['changed'] == [{'path': 'app/link', 'reasons': ['mtime', 'target']}]


def test_scan_prune_skips_only_the_exact_path(tmp_path):
    root = str(tmp_path)
    make_tree(root, {'src/store/x': 'a', 'src/deeper/store/y': 'b'})
    entries, special = _manifest.scan(root, ['src'], prune=['src/store'])
    assert special == []
    paths = [entry.path for entry in entries]
    assert 'src/store' not in paths and 'src/store/x' not in paths
    assert 'src/deeper/store/y' in paths


def test_sha256sum_export_is_accepted_by_coreutils(tree, tmp_path):
    manifest = build(tree)
    sums = tmp_path / 'sums'
    sums.write_text(manifest.sha256sum_text(prefix=''))
    ok = subprocess.run(['sha256sum', '--strict', '-c', str(sums)], cwd=tree, capture_output=True, text=True,
                        check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with open(os.path.join(tree, 'app/bin/run'), 'a') as handle:
        handle.write('tampered')
    bad = subprocess.run(['sha256sum', '-c', str(sums)], cwd=tree, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert 'app/bin/run: FAILED' in bad.stdout


@pytest.mark.parametrize('entry', [
    _manifest.Entry('app/conf/main.yml', 'file', 12, 0o640, 0, 0, 1_700_000_000_123_456_789, 'a' * 64),
    _manifest.Entry('app/caf\u00e9/\u65e5\u672c', 'dir', 0, 0o755, 1000, 1000, 1),
    _manifest.Entry('app/"quoted"\\back\tslash\n\x01', 'symlink', 0, 0o777, 0, 0, 0, None, '../\u2028/\x7f'),
    _manifest.Entry('app/bad-\udcff-byte', 'hardlink', 3, 0o600, 2**32, 7, 5, 'b' * 64, 'app/first'),
    _manifest.Entry('app/flagged', 'file', True, 0o600, 0, 0, 0, 'c' * 64),
    _manifest.Entry('app/odd', 'file', 1, 0o600, 0, 0, 0, 'c' * 64, 7),
], ids=['file', 'unicode-dir', 'escapes-symlink', 'surrogate-hardlink', 'bool-size', 'int-target'])
def test_each_manifest_line_is_exactly_what_json_dumps_writes_for_the_entry(entry):  # pylint: disable=protected-access
    expected = json.dumps(entry.to_dict(), sort_keys=True)
    assert _manifest._entry_json(entry) == expected
    manifest = _manifest.Manifest('b1', 'default', '2026-01-01T00:00:00.000000Z', 'host', ['/app'], [entry])
    assert '  ' + expected in manifest.to_json().splitlines()
