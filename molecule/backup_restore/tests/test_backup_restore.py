"""After converge restored the checkpoint, every host holds exactly what it held at the checkpoint."""

import pytest

import lastgood_testinfra as checks

testinfra_hosts = ['all']

SET = 'molecule'
CHECKPOINT = 'before-break'
GOLDEN = '/var/lib/lastgood/molecule/golden'
PATHS = ['/srv/app/config.yaml', '/srv/app/custom_modes.json', '/srv/app/releases']


@pytest.mark.parametrize('path', PATHS)
def test_restored_path_matches_the_copy_taken_before_the_checkpoint(host, path):
    copy = '%s/%s' % (GOLDEN, path.rsplit('/', 1)[1])
    assert checks.live_against_copy(host, path, copy) == []


def test_live_paths_match_the_checkpoint_manifest_in_content_and_mode(host):
    manifest = checks.manifest(host, SET, CHECKPOINT)
    assert sorted(manifest['sources']) == sorted(PATHS)
    assert checks.live_against_manifest(host, manifest) == []


def test_the_registry_kept_its_owner_only_mode(host):
    assert host.file('/srv/app/custom_modes.json').mode == 0o600


def test_the_checkpoint_verifies_with_plain_sha256sum(host):
    result = checks.sha256sum_check(host, SET, CHECKPOINT)
    assert result.rc == 0, result.stdout + result.stderr


def test_the_checkpoint_is_marked_last_known_good(host):
    assert host.file('%s/%s/LASTGOOD' % (checks.BACKUP_ROOT, SET)).content_string.strip() == CHECKPOINT


def test_no_unfinished_operation_is_left_behind(host):
    assert checks.leftovers(host, '/srv/app') == []


def test_the_demo_app_config_reads_healthy_again(host):
    check = host.run('/srv/app/bin/appctl check')
    assert check.rc == 0, check.stdout
