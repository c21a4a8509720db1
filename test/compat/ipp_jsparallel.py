"""pytest plugin: run ipyparallel's own test suite against another controller.

The command that starts the controller comes from $IPP_TEST_CONTROLLER_CMD (split like a shell
would). ipyparallel starts controllers in three ways, and each is redirected here without
touching its tests:

1. ClusterTestCase modules call ipyparallel.tests.setup(), which reads the module global
   ipcontroller_cmd_argv;
2. ipp.Cluster(...) in this process uses ControllerLauncher.controller_cmd, whose default was
   captured when the class was created;
3. `python -m ipyparallel.cluster start` in a subprocess reads ipcluster_config.py of the
   profile, so a line is appended to it in each module's fresh IPYTHONDIR.
"""
import os
import shlex

import pytest

COMMAND = shlex.split(os.environ["IPP_TEST_CONTROLLER_CMD"])

import ipyparallel.tests as _suite  # noqa: E402

_suite.ipcontroller_cmd_argv = list(COMMAND)

from ipyparallel.cluster.launcher import ControllerLauncher  # noqa: E402

ControllerLauncher.controller_cmd.default_value = list(COMMAND)


@pytest.fixture(autouse=True, scope="module")
def _controller_for_ipcluster(ipython_dir):
    config = os.path.join(ipython_dir, "profile_default", "ipcluster_config.py")
    with open(config, "a") as f:
        f.write(f"\nc.LocalControllerLauncher.controller_cmd = {COMMAND!r}\n")
    yield
