"""What makes backups fast without weakening them: one read pass, batched parallel work, no pointless re-reads.

Behaviour only (which files are read, what a manifest looks like); no timings.
"""

import hashlib
import json
import os
import shutil

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _manifest, _store
from lib import faults, trees

TREE = {
    'conf/app.yml': 'port: 8080\n',
    'bin/run.sh': '#!/bin/sh\nexec app\n',
    'data/blob.bin': bytes(range(256)) * 64,
    'data/more.bin': b'x' * 5000,
    'current': ('symlink', 'conf/app.yml'),
}


class ReadCounter:
    """Observer: counts read() and readv() calls per file, by the path the descriptor points at."""

    def __init__(self):
        self.reads = {}

    def before(self, name, args, kwargs):
        if name in ('read', 'readv'):
            path = os.readlink('/proc/self/fd/%d' % args[0])
            self.reads[path] = self.reads.get(path, 0) + 1

    def after(self, name, args, kwargs, result, token):
        pass


def backup_with_read_counter(store, app, **kwargs):
    counter = ReadCounter()
    with faults.inject([_store, _manifest], faults.FaultPlan(observer=counter)):
        result = store.create([app], **kwargs)
    return result, counter.reads


def test_full_backup_reads_each_source_file_once_and_never_reads_its_copies_back(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    store = _store.Store(str(tmp_path / 'store'), 'app')
    result, reads = backup_with_read_counter(store, app)
    assert result['copied'] == 4
    staged = [path for path in reads if '/store/' in path and '/data/' in path]
    assert staged == [], 'the staged copies were read back: %s' % staged
    for rel in ('conf/app.yml', 'bin/run.sh', 'data/blob.bin', 'data/more.bin'):
        # one read with the data; no read for the end of file (a file that grew shows in its size)
        assert reads[os.path.join(app, rel)] == 1, rel
    assert store.verify(result['id'])['ok']


def staged_reads(reads):
    # the staged names are new links to the previous backup's inodes: reading them reads its files
    return sorted(path.rsplit('/app/', 1)[1] for path in reads if '/.staging-' in path)


def test_incremental_backup_reads_no_file_whose_previous_copy_is_untouched_since_that_backup_was_sealed(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    store = _store.Store(str(tmp_path / 'store'), 'app')
    first = store.create([app])
    result, reads = backup_with_read_counter(store, app, force=True)
    assert result['reused'] == 4 and result['rehashed'] == 0
    assert result['parent'] == first['id']
    assert staged_reads(reads) == [], 'an untouched hardlinked file was re-read'
    assert not [path for path in reads if path.startswith(app + '/')], 'an unchanged source is not read'
    # and the chain goes on: the links made by the second backup happened before it was sealed
    third, reads = backup_with_read_counter(store, app, force=True)
    assert third['parent'] == result['id'] and third['reused'] == 4 and staged_reads(reads) == []
    assert store.verify(third['id'])['ok']


def test_incremental_backup_with_rehash_reads_every_hardlinked_file_again(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    store = _store.Store(str(tmp_path / 'store'), 'app')
    store.create([app])
    result, reads = backup_with_read_counter(store, app, force=True, rehash=True)
    assert result['reused'] == 4 and result['rehashed'] == 4
    assert len(staged_reads(reads)) == 4, 'each hardlinked file is checked against the manifest: %s' % sorted(reads)


def test_incremental_backup_rehashes_a_previous_copy_whose_inode_changed_after_that_backup_was_sealed(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    store = _store.Store(str(tmp_path / 'store'), 'app')
    first = store.create([app])
    touched = os.path.join(store.data_dir(first['id']), app.lstrip('/'), 'bin/run.sh')
    # a change that leaves content, size, mtime and mode as they were still moves the ctime
    mode = os.stat(touched).st_mode
    os.chmod(touched, 0o600)
    os.chmod(touched, mode)
    result, reads = backup_with_read_counter(store, app, force=True)
    assert result['reused'] == 4 and result['rehashed'] == 1
    assert staged_reads(reads) == ['bin/run.sh']


def test_incremental_backup_rehashes_every_file_of_a_store_copied_with_its_times_kept(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    original = _store.Store(str(tmp_path / 'store'), 'app')
    first = original.create([app])
    # cp -a of a backup taken an hour ago: every file's ctime precedes the copied manifest's, which proves nothing
    shutil.copytree(original.backup_root, str(tmp_path / 'copy'), symlinks=True)
    store = _store.Store(str(tmp_path / 'copy'), 'app')
    manifest = store.manifest_path(first['id'])
    hour_ago = os.stat(manifest).st_mtime_ns - 3600 * 10 ** 9
    os.utime(manifest, ns=(hour_ago, hour_ago))
    result, reads = backup_with_read_counter(store, app, force=True)
    assert result['parent'] == first['id'] and result['reused'] == 4 and result['rehashed'] == 4
    assert len(staged_reads(reads)) == 4


def test_incremental_backup_rehashes_what_a_removed_backup_shared_with_the_previous_one(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    store = _store.Store(str(tmp_path / 'store'), 'app')
    store.create([app])
    store.create([app], force=True)
    # removing the oldest backup unlinks names of inodes the newest one shares: their ctime moves
    assert len(store.retention(keep_last=1)) == 1
    result, reads = backup_with_read_counter(store, app, force=True)
    assert result['reused'] == 4 and result['rehashed'] == 4 and len(staged_reads(reads)) == 4


def test_split_batches_keeps_the_order_and_fills_each_batch_up_to_the_limit():
    sizes = [1, 1, 1, 5, 1, 1, 10, 2]
    batches = _manifest.split_batches(sizes, 3, lambda size: size)
    assert [item for batch in batches for item in batch] == sizes
    assert batches == [[1, 1, 1], [5], [1, 1, 10], [2]]
    assert _manifest.split_batches([], 3, lambda size: size) == []


def test_manifest_json_has_one_line_per_entry_and_loads_back_to_the_same_manifest(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    rel = app.lstrip('/')
    entries = _manifest.scan('/', [rel])[0]
    _manifest.hash_entries('/', entries)
    manifest = _manifest.Manifest('an-id', 'app', '2026-11-21T23:15:00Z', 'host', [app], entries)
    text = manifest.to_json()
    lines = text.splitlines()
    entry_lines = [line for line in lines if line.startswith('  {')]
    assert len(entry_lines) == len(entries)
    assert all(json.loads(line.rstrip(',')) == entry.to_dict() for line, entry in zip(entry_lines, entries))
    assert json.loads(text) == manifest.to_dict()
    loaded = _manifest.loads(text)
    assert loaded.to_json() == text


def test_verify_with_hash_only_compares_the_other_files_by_metadata_alone(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    rel = app.lstrip('/')
    entries = _manifest.scan('/', [rel])[0]
    _manifest.hash_entries('/', entries)
    manifest = _manifest.Manifest('an-id', 'app', '2026-11-21T23:15:00Z', 'host', [app], entries)
    for name in ('data/blob.bin', 'data/more.bin'):
        path = os.path.join(app, name)
        st = os.stat(path)
        with open(path, 'r+b') as handle:
            handle.write(b'Z')
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = _manifest.verify(manifest, '/', hash_only={rel + '/data/blob.bin'})
    assert [item['path'] for item in result['changed']] == [rel + '/data/blob.bin']
    assert result['changed'][0]['reasons'] == ['content']
    full = _manifest.verify(manifest, '/')
    assert sorted(item['path'] for item in full['changed']) == [rel + '/data/blob.bin', rel + '/data/more.bin']


def test_a_manifest_loaded_again_unchanged_is_parsed_once_and_a_changed_one_is_checked_again(tmp_path):
    app = str(tmp_path / 'app')
    trees.make_tree(app, TREE)
    store = _store.Store(str(tmp_path / 'store'), 'app')
    backup_id = store.create([app])['id']
    first = store.load_manifest(backup_id)
    assert store.load_manifest(backup_id) is first
    path = store.manifest_path(backup_id)
    st = os.stat(path)
    with open(path, 'r+b') as handle:
        handle.seek(st.st_size // 2)
        byte = handle.read(1)[0]
        handle.seek(st.st_size // 2)
        handle.write(bytes([byte ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(_store.StoreError, match='must not be used'):
        store.load_manifest(backup_id)


class WritebackSpy:
    """Observer: the byte ranges of the staged copies handed to write-back (posix_fadvise DONTNEED)."""

    def __init__(self):
        self.ranges = {}

    def before(self, name, args, kwargs):
        if name == 'posix_fadvise' and args[3] == os.POSIX_FADV_DONTNEED:
            path = os.readlink('/proc/self/fd/%d' % args[0])
            self.ranges.setdefault(path, []).append((args[1], args[2]))

    def after(self, name, args, kwargs, result, token):
        pass


def test_a_large_file_is_handed_to_write_back_while_it_is_copied_and_still_hashed_whole(tmp_path):
    app = str(tmp_path / 'app')
    size = _manifest.WRITEBACK_AFTER + 3 * _manifest.HASH_CHUNK + 12345
    content = bytes(range(251)) * (size // 251) + b'tail' * 7
    trees.make_tree(app, {'big.bin': content, 'small.txt': 'below the threshold\n'})
    store = _store.Store(str(tmp_path / 'store'), 'app')
    spy = WritebackSpy()
    with faults.inject([_store, _manifest], faults.FaultPlan(observer=spy)):
        result = store.create([app])
    assert len(spy.ranges) == 1, spy.ranges
    path, ranges = next(iter(spy.ranges.items()))
    assert path.endswith('/big.bin') and '/.staging-' in path
    # every chunk from the threshold on, in order, up to the end of the file
    assert ranges[0][0] + ranges[0][1] >= _manifest.WRITEBACK_AFTER
    assert all(a[0] + a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert ranges[-1][0] + ranges[-1][1] == len(content)
    entry = store.load_manifest(result['id']).by_path[app.lstrip('/') + '/big.bin']
    assert entry.sha256 == hashlib.sha256(content).hexdigest() and entry.size == len(content)
    assert store.verify(result['id'])['ok']
