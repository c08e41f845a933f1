"""galaxy.yml, the changelog, the AWX project's collections/requirements.yml and the release tag agree
on the version (docs/dev/release.md).  tests/integration/test_release.py makes a release in a throwaway
clone and sees the same check refuse a tag made before the changelog release."""

from lib.release import version_problems


def test_galaxy_yml_the_changelog_requirements_and_tags_agree_on_the_version():
    problems = version_problems()
    assert not problems, '\n'.join(problems)
