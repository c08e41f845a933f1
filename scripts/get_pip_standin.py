"""Stand-in for the ``get-pip.py`` bootstrap script that ansible-test downloads.

``--install`` copies this file to ``~/.ansible/test/cache/get_pip_<version>.py`` for
the pip version the installed ansible-test asks for.  Run by ansible-test (with
the new virtualenv's interpreter), it installs pip with ``ensurepip`` and then
``pip install`` of the requested packages with the caller's environment, so the
machine's pip configuration (index, find-links) applies.
"""

import os
import shutil
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ('--no-setuptools', '--no-wheel')


def install_standin():
    from ansible_test._internal.python_requirements import get_venv_packages  # pylint: disable=import-error
    from ansible_test._internal.host_configs import NativePythonConfig  # pylint: disable=import-error

    python = NativePythonConfig(version='%d.%d' % sys.version_info[:2], path=sys.executable)
    version = get_venv_packages(python)['pip']
    cache = os.path.expanduser('~/.ansible/test/cache')
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, 'get_pip_%s.py' % version.replace('.', '_'))
    shutil.copyfile(os.path.abspath(__file__), target)
    print('setup: ansible-test pip bootstrap stand-in at %s' % target)


def bootstrap(args):
    env = dict(os.environ)
    # ensurepip points PIP_CONFIG_FILE at os.devnull for its own run; keep the caller's.
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], env=env)
    packages = [arg for arg in args if arg not in GET_PIP_ONLY_OPTIONS]
    if packages:
        subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + packages, env=env)


if __name__ == '__main__':
    if sys.argv[1:] == ['--install']:
        install_standin()
    else:
        bootstrap(sys.argv[1:])
