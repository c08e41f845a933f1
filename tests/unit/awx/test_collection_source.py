"""Where AWX and the execution environment get the collection: the release galaxy.yml names."""

import os

from lib.awx import PROJECT_DIR, REPO_ROOT, load_yaml

REQUIREMENTS = os.path.join(PROJECT_DIR, 'collections', 'requirements.yml')


def _collection_entries():
    galaxy = load_yaml(os.path.join(REPO_ROOT, 'galaxy.yml'))
    names = ('%s.%s' % (galaxy['namespace'], galaxy['name']), galaxy['repository'], galaxy['repository'] + '.git')
    entries = [entry for entry in load_yaml(REQUIREMENTS)['collections']
               if (entry['name'] if isinstance(entry, dict) else entry) in names]
    return galaxy, entries


def test_project_requirements_install_the_collection_at_the_version_in_galaxy_yml():
    galaxy, entries = _collection_entries()
    assert len(entries) == 1, 'collections/requirements.yml names lastgood.rollback %d times' % len(entries)
    # A branch (main) would give every project sync and image build whatever was pushed last.
    assert isinstance(entries[0], dict) and str(entries[0].get('version')) == galaxy['version'], entries[0]
