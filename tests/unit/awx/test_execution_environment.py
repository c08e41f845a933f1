"""The execution environment: the collection declares its dependencies, awx/ builds a context.

No container engine runs here, so the image itself is not built; ansible-builder's own
introspection and context creation are run for real.
"""

import os
import subprocess

import yaml

from lib.awx import AWX_DIR, REPO_ROOT, load_yaml

BUILDER = os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-builder')
COLLECTIONS = os.path.join(REPO_ROOT, '.collections')
EE_FILE = os.path.join(AWX_DIR, 'execution-environment.yml')


def _builder(*args, cwd=REPO_ROOT):
    result = subprocess.run([BUILDER] + list(args), cwd=cwd, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, 'ansible-builder %s failed:\n%s\n%s' % (args[0], result.stdout, result.stderr)
    return result.stdout


def _requirement_lines(path):
    with open(os.path.join(REPO_ROOT, path)) as handle:
        return [line.split('#')[0].strip() for line in handle if line.split('#')[0].strip()]


def test_collection_meta_names_its_python_and_system_requirement_files():
    meta = load_yaml(os.path.join(REPO_ROOT, 'meta', 'execution-environment.yml'))
    assert meta['version'] == 1
    for kind in ('python', 'system'):
        assert _requirement_lines(meta['dependencies'][kind]), '%s requirements are empty' % kind


def test_introspect_lists_the_collections_python_and_system_dependencies():
    output = _builder('introspect', '--sanitize', COLLECTIONS)
    found = yaml.safe_load(output.split('\n', 1)[1])
    from_us = dict((kind, [entry.split('#')[0].strip() for entry in found.get(kind) or []
                           if entry.endswith('from collection lastgood.rollback')])
                   for kind in ('python', 'system'))
    assert from_us['python'] == _requirement_lines('meta/ee-requirements.txt')
    assert from_us['system'] == _requirement_lines('meta/ee-bindep.txt')


def test_create_writes_a_build_context_that_installs_the_collection(tmp_path):
    context = tmp_path / 'context'
    _builder('create', '-f', EE_FILE, '-c', str(context), '--output-filename', 'Containerfile')
    containerfile = (context / 'Containerfile').read_text()
    definition = load_yaml(EE_FILE)
    assert definition['version'] == 3
    assert 'ARG EE_BASE_IMAGE="%s"' % definition['images']['base_image']['name'] in containerfile
    assert 'ansible-galaxy collection install' in containerfile
    assert definition['dependencies']['ansible_core']['package_pip'] in containerfile
    galaxy = load_yaml(str(context / '_build' / 'requirements.yml'))
    names = [entry['name'] if isinstance(entry, dict) else entry for entry in galaxy['collections']]
    assert any('lastgood' in name for name in names), names
    if any(isinstance(entry, dict) and entry.get('type') == 'git' for entry in galaxy['collections']):
        galaxy_stage = containerfile.split('FROM base AS galaxy', 1)[1].split('ansible-galaxy collection install')[0]
        assert 'install -y git' in galaxy_stage, 'a collection comes from git, but the galaxy stage has no git'
