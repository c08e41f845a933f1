"""Run a module's ``main()`` in-process with given arguments and return its result dict.

The module exits through ``exit_json``/``fail_json``, which print JSON and raise
SystemExit; this captures both.  ``check_mode``/``diff`` set the same private
arguments the controller sends.

Once anything in the test process has imported controller code (``ansible._internal``,
e.g. a test that loads a playbook), ansible-core treats the process as the controller
and ``module.warn()`` prints instead of adding to the result.  The run therefore
happens as a target would see it: not the controller, no warnings carried over.
"""

import contextlib
import io
import json

from ansible.module_utils import _internal
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args


def run_module(module, args, check_mode=False, diff=False):
    """``(failed, result)`` of running ``module.main()`` with ``args``."""
    params = dict(args)
    params['_ansible_check_mode'] = check_mode
    params['_ansible_diff'] = diff
    out = io.StringIO()
    was_controller = _internal.is_controller
    _internal.is_controller = False
    module_warnings._global_warnings.clear()  # pylint: disable=protected-access
    try:
        with patch_module_args(params), contextlib.redirect_stdout(out):
            try:
                module.main()
            except SystemExit:
                pass
    finally:
        _internal.is_controller = was_controller
    text = out.getvalue()
    result = json.loads(text[text.index('{'):])
    return bool(result.get('failed')), result
