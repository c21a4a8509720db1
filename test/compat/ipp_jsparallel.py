"""pytest plugin: run ipyparallel's own test suite against another controller, and show it did.

Redirect. When $IPP_TEST_CONTROLLER_CMD is set (split like a shell would), every controller the suite
starts is that command. ipyparallel starts controllers in three ways, each redirected without touching
its tests:

1. ClusterTestCase modules call ipyparallel.tests.setup(), which reads the module global
   ipcontroller_cmd_argv;
2. ipp.Cluster(...) in this process uses ControllerLauncher.controller_cmd, whose default was
   captured when the class was created;
3. `python -m ipyparallel.cluster start` in a subprocess reads ipcluster_config.py of the
   profile, so a line is appended to it in each module's fresh IPYTHONDIR.

Proof. Assigning those values shows nothing if ipyparallel stopped reading one of them. So every
Client the suite makes in this process is checked once it has connected: the process that listens on
the client's registration port is found through /proc, and its command line decides which controller
the test talked to. The process a Cluster starts as its controller is checked the same way. Each test gets a JUnit property `controller` naming them (`jsparallel`,
`ipyparallel`, or `other: <argv>`), and, when the redirect is on, a test whose client reached any
process but ours fails. (Engines are not checked: only the controller is replaced.)

Timeout. A test (with its setup and teardown) still running after --jsparallel-timeout seconds gets
an exception raised in the main thread (SIGUSR2 to that thread, as SIGALRM is the suite's own
30 s alarm in ClusterTestCase); if it is still running --jsparallel-grace seconds later (default 30),
the tracebacks of all threads are printed and the process exits with status 3, so the run ends
without a JUnit file and fails.
"""
import faulthandler
import os
import shlex
import signal
import threading
import time

import pytest

_command = os.environ.get("IPP_TEST_CONTROLLER_CMD")
COMMAND = shlex.split(_command) if _command else None

if COMMAND:
    import ipyparallel.tests as _suite

    _suite.ipcontroller_cmd_argv = list(COMMAND)

    from ipyparallel.cluster.launcher import ControllerLauncher

    ControllerLauncher.controller_cmd.default_value = list(COMMAND)

    @pytest.fixture(autouse=True, scope="module")
    def _controller_for_ipcluster(request):
        # ipython_dir: the fresh IPYTHONDIR of ipyparallel's conftest, absent from other test modules
        if "ipython_dir" in request.fixturenames:
            profile = os.path.join(request.getfixturevalue("ipython_dir"), "profile_default")
            with open(os.path.join(profile, "ipcluster_config.py"), "a") as f:
                f.write(f"\nc.LocalControllerLauncher.controller_cmd = {COMMAND!r}\n")
        yield


# --- which process a client talked to -------------------------------------------------------------


def _listening_inodes(port):
    """Inodes of the TCP sockets listening on `port` (IPv4 and IPv6)."""
    inodes = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.append(inode)
        except OSError:
            pass
    return inodes


def _owner(inodes):
    """The pid of a process holding one of these socket inodes, or None."""
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fd_dir = f"/proc/{pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                if os.readlink(os.path.join(fd_dir, fd)) in wanted:
                    return int(pid)
        except OSError:
            continue
    return None


def _same_argument(a, b):
    return a == b or (os.path.isabs(a) and os.path.isabs(b) and os.path.realpath(a) == os.path.realpath(b))


def _kind(argv):
    if COMMAND and len(argv) >= len(COMMAND) and all(map(_same_argument, argv, COMMAND)):
        return "jsparallel"
    if any("ipyparallel.controller" in a or os.path.basename(a) == "ipcontroller" for a in argv):
        return "ipyparallel"
    return "other: " + " ".join(argv[:3])


_known = {}  # socket inode -> kind, so a module's shared controller is looked up once


def identify(registration_url):
    """'jsparallel', 'ipyparallel', 'other: ...' or 'nobody listens on ...' for a tcp:// url."""
    port = int(registration_url.rsplit(":", 1)[1])
    inodes = _listening_inodes(port)
    for inode in inodes:
        if inode in _known:
            return _known[inode]
    pid = _owner(inodes) if inodes else None
    if pid is None:
        return f"nobody listens on port {port}"
    kind = identify_process(pid)
    for inode in inodes:
        _known[inode] = kind
    return kind


def _argv(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode("utf8", "replace") for a in f.read().split(b"\0") if a]


def identify_process(pid, exec_ceiling=30.0):
    """Like identify, for a pid. A launcher returns as soon as it has forked: until the child has exec'd,
    its command line is this process's own (or empty, during the exec), so wait for it to change."""
    own = _argv("self")
    deadline = time.monotonic() + exec_ceiling
    while True:
        try:
            argv = _argv(pid)
        except OSError:
            return f"process {pid} is gone"
        if (argv and argv != own) or time.monotonic() > deadline:
            return _kind(argv)
        time.sleep(0.05)


class _Tracker:
    """The controllers the current test's clients reached, and the failures to report."""

    def __init__(self):
        self.item = None
        self.kinds = set()
        self.problems = []

    def saw(self, kind, where):
        if self.item is None:
            return
        self.kinds.add(kind)
        problem = f"{where}: not our controller ({kind})"
        if COMMAND and kind != "jsparallel" and problem not in self.problems:
            self.problems.append(problem)


_tracker = _Tracker()


def _watch_clients():
    from ipyparallel.client.client import Client

    original = Client.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        url = self._config.get("registration")
        if url:
            _tracker.saw(identify(url), f"a Client connected to {url}")

    Client.__init__ = __init__


def _watch_clusters():
    """A Cluster's controller, for the tests that start one and make no Client."""
    from ipyparallel.cluster.cluster import Cluster

    original = Cluster.start_controller

    async def start_controller(self, **kwargs):
        result = await original(self, **kwargs)
        pid = getattr(self.controller, "pid", None)
        if isinstance(pid, int):
            _tracker.saw(identify_process(pid), f"the controller process {pid} of a Cluster")
        return result

    Cluster.start_controller = start_controller


# --- timeout ---------------------------------------------------------------------------------------


# The real stderr: pytest captures fd 2 during tests, and what it captured is lost when the process exits.
# This module is imported while pytest parses its options, before capturing starts.
_STDERR = os.dup(2)


class CompatTimeout(Exception):
    pass


_expired = []


def _on_timeout_signal(signum, frame):
    if _expired:
        raise CompatTimeout(f"{_expired[-1]} still running after its timeout (jsparallel compat plugin)")


def _start_watchdog(nodeid, seconds, grace):
    main = threading.main_thread().ident

    def interrupt():
        _expired.append(nodeid)
        signal.pthread_kill(main, signal.SIGUSR2)

    def give_up():
        os.write(
            _STDERR,
            f"\n\nCOMPAT TIMEOUT: {nodeid} still running {seconds + grace} s after it started; "
            "tracebacks follow, then pytest exits with status 3\n".encode(),
        )
        faulthandler.dump_traceback(file=_STDERR, all_threads=True)
        os._exit(3)

    timers = [threading.Timer(seconds, interrupt), threading.Timer(seconds + grace, give_up)]
    for timer in timers:
        timer.daemon = True
        timer.start()
    return timers


# --- hooks -----------------------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption(
        "--jsparallel-timeout",
        type=float,
        default=180.0,
        help="seconds a test may take, setup and teardown included (default 180)",
    )
    parser.addoption(
        "--jsparallel-grace",
        type=float,
        default=30.0,
        help="seconds after the timeout before pytest itself is ended (default 30)",
    )


def pytest_configure(config):
    signal.signal(signal.SIGUSR2, _on_timeout_signal)
    _watch_clients()
    _watch_clusters()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    _tracker.__init__()
    _tracker.item = item
    _expired.clear()
    options = item.config.option
    timers = _start_watchdog(item.nodeid, options.jsparallel_timeout, options.jsparallel_grace)
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        _expired.clear()
        _tracker.item = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    if call.when == "teardown" and _tracker.kinds:
        item.user_properties.append(("controller", ",".join(sorted(_tracker.kinds))))
    outcome = yield
    report = outcome.get_result()
    if _tracker.problems:
        problems, _tracker.problems = _tracker.problems, []
        report.outcome = "failed"
        report.longrepr = "NOT OUR CONTROLLER: " + "; ".join(problems)
