# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WWW-Authenticate challenges (RFC 7235), as registries send them: `Bearer realm="...",service="..."`."""

import re

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(r"\s*(%s)\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|(%s))\s*(?:,|$)" % (_TOKEN, _TOKEN))


class Challenge:
    def __init__(self, scheme, params):
        self.scheme = scheme.lower()
        self.params = params

    def __repr__(self):
        return "Challenge(%s, %r)" % (self.scheme, self.params)


def parse_challenges(header):
    """All challenges in one header value; unknown shapes are skipped, never guessed at."""
    out = []
    if not header:
        return out
    rest = header.strip()
    while rest:
        m = re.match(r"\s*(%s)\s*" % _TOKEN, rest)
        if not m:
            break
        scheme = m.group(1)
        rest = rest[m.end():]
        params = {}
        while rest:
            pm = _PARAM.match(rest)
            if not pm:
                break
            # A parameter-less next scheme looks like `Basic realm=..` : stop when the name is followed by a space.
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[pm.end():]
        out.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return out


def pick(challenges):
    """Bearer over Basic, as clients do; None when neither is offered."""
    for wanted in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == wanted:
                return challenge
    return None
