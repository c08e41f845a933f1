"""Run a module's ``main()`` in-process with given arguments and return its result dict.

The module exits through ``exit_json``/``fail_json``, which print JSON and raise
SystemExit; this captures both.  ``check_mode``/``diff`` set the same private
arguments the controller sends.
"""

import contextlib
import io
import json

from ansible.module_utils.testing import patch_module_args


def run_module(module, args, check_mode=False, diff=False):
    """``(failed, result)`` of running ``module.main()`` with ``args``."""
    params = dict(args)
    params['_ansible_check_mode'] = check_mode
    params['_ansible_diff'] = diff
    out = io.StringIO()
    with patch_module_args(params), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    text = out.getvalue()
    result = json.loads(text[text.index('{'):])
    return bool(result.get('failed')), result
