# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a registry is reached: the retry policy (retry.py) and the proxies (proxy.py), from the task's options
and environment.

Made when the task starts, so a bad proxy URL or a negative retry count is
refused before the home is touched.
"""

import os

from .errors import ImageError
from .proxy import ProxySettings
from .retry import DEFAULT_RETRIES, DEFAULT_RETRY_MAX_DELAY, RetryPolicy


class Network:
    def __init__(self, retries=DEFAULT_RETRIES, retry_max_delay=DEFAULT_RETRY_MAX_DELAY, proxy=None, no_proxy=None,
                 environ=None, image=None):
        try:
            self.retry = RetryPolicy(retries, retry_max_delay)
        except ValueError as e:
            raise ImageError(str(e), image=image)
        try:
            self.proxies = ProxySettings(proxy, no_proxy, os.environ if environ is None else environ)
        except ImageError as e:
            e.image = image
            e.args = (e.message,)
            raise
