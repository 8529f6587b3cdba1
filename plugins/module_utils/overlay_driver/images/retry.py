# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a registry's failure is passing, and how long to wait before asking again.

A registry behind a load balancer answers 429 (rate limited), 502, 503 or
504 while it scales or restarts, and a connection can be reset mid-way; one
such answer should not fail a task that Docker would have finished. These
are retried, a bounded number of times (`retries`), each after a wait: the
one the registry asks for in `Retry-After` (seconds or an HTTP-date), else a
backoff doubling from one second, and never longer than `retry_max_delay`. A
registry asking for a longer wait, or a wait that would pass the blob's or
the image's deadline, ends the retries at once with that reason: waiting
without a chance to finish only hides the failure.

There is no random jitter: one host pulls one image, so there is no herd to
spread, and the waits stay predictable (and testable: `sleep` is looked up
here at each wait, so a test replaces it and sees the waits).
"""

import email.utils
import time

RETRY_STATUSES = (429, 502, 503, 504)
DEFAULT_RETRIES = 5           # Docker's max-download-attempts is 5 too
DEFAULT_RETRY_MAX_DELAY = 60  # seconds: the longest wait between two attempts
FIRST_DELAY = 1.0
MAX_DELTA_DIGITS = 12         # Retry-After delta-seconds longer than this (over 31 000 years) are not read

sleep = time.sleep


def retry_after(value, now=None):
    """The seconds a Retry-After header value asks for (delta-seconds or an HTTP-date, RFC 9110 10.2.3);
    None when there is none or it cannot be read (then the backoff decides).

    The header is the registry's to write: only ASCII digits are delta-seconds (str.isdigit alone also
    takes a superscript or another script's digits, which int() refuses), and their number is bounded
    (a long run would overflow float or pass int's digit limit); any of these counts as no value.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        if len(value) > MAX_DELTA_DIGITS:
            return None
        try:
            return float(int(value))
        except (ValueError, OverflowError):
            return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class RetryPolicy:
    """How many times a passing failure is retried and how long each wait may be (seconds)."""

    def __init__(self, retries=DEFAULT_RETRIES, max_delay=DEFAULT_RETRY_MAX_DELAY):
        for name, value in (("retries", retries), ("retry_max_delay", max_delay)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError("%s must be a number of %s, 0 or more, not %r"
                                 % (name, "attempts" if name == "retries" else "seconds", value))
        self.retries = retries
        self.max_delay = max_delay

    def backoff(self, attempt):
        """The wait before retry number `attempt` (1 for the first) when the registry asks for none."""
        return min(float(self.max_delay), FIRST_DELAY * (2 ** min(attempt - 1, 30)))

    def next_wait(self, attempt, asked, deadline=None):
        """(seconds to wait before retry `attempt`, None) or (None, why there is no retry).

        asked: the registry's Retry-After in seconds, or None. deadline: a download.Deadlines blob deadline
        (its remaining() raises once it has passed), or None.
        """
        if attempt > self.retries:
            return None, "%d retr%s" % (self.retries, "y" if self.retries == 1 else "ies")
        if asked is not None and asked > self.max_delay:
            return None, ("it asked to wait %ds (Retry-After), more than retry_max_delay (%ss)"
                          % (asked, self.max_delay))
        wait = self.backoff(attempt) if asked is None else asked
        if deadline is not None and wait >= deadline.remaining(0):
            return None, "a wait of %ds would pass the deadline" % wait
        return wait, None

    @staticmethod
    def wait(seconds):
        if seconds > 0:
            sleep(seconds)
