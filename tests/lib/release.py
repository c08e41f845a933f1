"""The release of the collection: its version in galaxy.yml, the changelog and the AWX project's
collections/requirements.yml, and the artifact ``ansible-galaxy collection build`` makes
(docs/dev/release.md)."""

import os
import subprocess

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_GALAXY = os.path.join(REPO_ROOT, '.venv', 'bin', 'ansible-galaxy')
REQUIREMENTS = os.path.join(REPO_ROOT, 'awx', 'project', 'collections', 'requirements.yml')
CHANGELOG = os.path.join(REPO_ROOT, 'changelogs', 'changelog.yaml')
FRAGMENTS = os.path.join(REPO_ROOT, 'changelogs', 'fragments')


def load_yaml(path):
    with open(path, encoding='utf-8') as stream:
        return yaml.safe_load(stream)


def galaxy():
    """galaxy.yml as a dict."""
    return load_yaml(os.path.join(REPO_ROOT, 'galaxy.yml'))


def requirement(requirements=None):
    """The one entry of the AWX project's collections/requirements.yml that installs this collection."""
    meta = galaxy()
    names = ('%s.%s' % (meta['namespace'], meta['name']), meta['repository'], meta['repository'] + '.git')
    data = requirements if requirements is not None else load_yaml(REQUIREMENTS)
    entries = [entry for entry in data['collections']
               if (entry['name'] if isinstance(entry, dict) else entry) in names]
    assert len(entries) == 1, 'collections/requirements.yml names %s.%s %d times' % (
        meta['namespace'], meta['name'], len(entries))
    return entries[0]


def clean_env(**extra):
    """The environment without this checkout's Ansible settings (ANSIBLE_CONFIG, ...): a user's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(('ANSIBLE_', 'GALAXY_'))}
    env.update(extra)
    return env


def build(source, output):
    """Path of the artifact ``ansible-galaxy collection build`` makes from ``source`` in ``output``."""
    meta = load_yaml(os.path.join(source, 'galaxy.yml'))
    completed = subprocess.run([ANSIBLE_GALAXY, 'collection', 'build', '--output-path', str(output), str(source)],
                               cwd=str(output), env=clean_env(), capture_output=True, text=True, timeout=600,
                               check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    path = os.path.join(str(output), '%s-%s-%s.tar.gz' % (meta['namespace'], meta['name'], meta['version']))
    assert os.path.isfile(path), completed.stdout
    return path


def _fragments(root):
    directory = os.path.join(root, 'changelogs', 'fragments')
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory) if name.endswith(('.yml', '.yaml')))


def _tags_at_head(root):
    completed = subprocess.run(['git', 'tag', '--points-at', 'HEAD'], cwd=root, capture_output=True, text=True,
                               check=True)
    return completed.stdout.split()


def version_problems(root=REPO_ROOT):
    """Why galaxy.yml, the changelog, the AWX project's requirements.yml and the tags at HEAD of the
    checkout ``root`` disagree on the version (an empty list: they agree).  docs/dev/release.md:

    - galaxy.yml's version V is a semantic version, and requirements.yml installs the git tag V
      (the tag is the version, no ``v`` prefix);
    - V is either the newest release in changelogs/changelog.yaml, with no fragment waiting (the
      tree is that release), or newer than every release there (the next one, unreleased:
      fragments may wait for it);
    - a tag at HEAD that is a version is V, released.
    """
    import semantic_version  # pylint: disable=import-outside-toplevel

    problems = []
    meta = load_yaml(os.path.join(root, 'galaxy.yml'))
    version = str(meta['version'])
    try:
        parsed = semantic_version.Version(version)
    except ValueError:
        return ['galaxy.yml: version %r is not a semantic version' % version]

    entry = requirement(load_yaml(os.path.join(root, 'awx', 'project', 'collections', 'requirements.yml')))
    if not isinstance(entry, dict) or entry.get('type') != 'git' or str(entry.get('version')) != version:
        problems.append('awx/project/collections/requirements.yml: %r does not install the git tag %s '
                        '(galaxy.yml version)' % (entry, version))

    releases = load_yaml(os.path.join(root, 'changelogs', 'changelog.yaml')).get('releases') or {}
    released = sorted(semantic_version.Version(str(name)) for name in releases)
    newest = released[-1] if released else None
    fragments = _fragments(root)
    if parsed in released:
        if parsed != newest:
            problems.append('galaxy.yml: version %s is older than the newest release in changelogs/changelog.yaml, %s'
                            % (version, newest))
        if fragments:
            problems.append('changelogs/fragments has %d fragments for the next release, but galaxy.yml still names '
                            'the released %s: set galaxy.yml and requirements.yml to the next version (%s, ...)'
                            % (len(fragments), version, ', '.join(fragments[:3])))
    elif newest is not None and parsed < newest:
        problems.append('galaxy.yml: version %s is older than the newest release in changelogs/changelog.yaml, %s'
                        % (version, newest))

    for tag in _tags_at_head(root):
        try:
            tagged = semantic_version.Version(tag.lstrip('v'))
        except ValueError:
            continue
        if tag != version:
            problems.append('tag %s at HEAD, but galaxy.yml names version %s (tags are the bare version)' % (tag, version))
        elif tagged not in released:
            problems.append('tag %s at HEAD, but changelogs/changelog.yaml has no release %s: run '
                            'antsibull-changelog release before tagging' % (tag, version))
    return problems
