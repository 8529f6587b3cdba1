"""Room for the descriptors of a deep overlay2 mount: the soft RLIMIT_NOFILE raised up to the hard one, a
hard limit too low said clearly. Each case runs in a forked child, whose limits are its own."""

import os
import resource

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import fd_limit
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError

from layertools import in_child


def test_a_low_soft_limit_is_raised_up_to_what_is_needed():
    def step():
        held = fd_limit.open_descriptors()
        resource.setrlimit(resource.RLIMIT_NOFILE, (held + 5, held + 1000))
        limit = fd_limit.ensure_free(200, "a test")
        fds = [os.open("/", os.O_RDONLY) for _n in range(195)]
        for fd in fds:
            os.close(fd)
        return limit, resource.getrlimit(resource.RLIMIT_NOFILE), held

    limit, (soft, hard), held = in_child(step)
    assert hard == held + 1000 and soft == limit and held + 200 <= soft < hard


def test_a_soft_limit_with_room_is_left_as_it_is():
    def step():
        held = fd_limit.open_descriptors()
        resource.setrlimit(resource.RLIMIT_NOFILE, (held + 100, held + 200))
        return fd_limit.ensure_free(10, "a test") - held, [n - held for n in resource.getrlimit(resource.RLIMIT_NOFILE)]

    assert in_child(step) == (100, [100, 200])


def test_a_hard_limit_too_low_is_said_with_both_limits():
    def step():
        held = fd_limit.open_descriptors()
        resource.setrlimit(resource.RLIMIT_NOFILE, (held + 5, held + 10))
        try:
            fd_limit.ensure_free(130, "mounting a layer on 128 lower layers")
        except OverlayError as e:
            return str(e), resource.getrlimit(resource.RLIMIT_NOFILE), held
        return None

    message, limits, held = in_child(step)
    assert "mounting a layer on 128 lower layers needs 130 descriptors" in message
    assert "soft %d, hard %d" % (held + 5, held + 10) in message and "ulimit -n" in message
    assert limits == (held + 5, held + 10)  # nothing changed


def test_a_check_says_whether_the_limit_could_be_raised_and_changes_nothing():
    def step():
        held = fd_limit.open_descriptors()
        resource.setrlimit(resource.RLIMIT_NOFILE, (held + 5, held + 500))
        fd_limit.ensure_free(200, "a test", change=False)
        after = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            fd_limit.ensure_free(600, "a test", change=False)
        except OverlayError:
            return after == (held + 5, held + 500), resource.getrlimit(resource.RLIMIT_NOFILE) == after
        return None

    assert in_child(step) == (True, True)
