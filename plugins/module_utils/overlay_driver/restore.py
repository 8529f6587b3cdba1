# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount again, at boot, every layer whose holders are recorded (the stale state).

Installed on hosts by the overlay_layers role and run by its systemd unit as
`python3 -m overlay_driver.restore --home HOME`. Stdlib only, like the rest
of the package. The uid/gid maps are the ones recorded with the home. A layer
that cannot be mounted does not keep the others down: every other layer is
mounted, then the program exits non-zero listing each failure.
"""

import argparse
import sys

from .errors import OverlayError
from .store import DEFAULT_HOME, LayerStore


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=DEFAULT_HOME)
    parser.add_argument("--check", action="store_true", help="only list what would be mounted")
    args = parser.parse_args(argv)
    failures = []
    try:
        store = LayerStore(args.home, read_only=args.check)
        try:
            with store.locked():
                done = store.restore(check_mode=args.check, failures=failures)
        finally:
            store.close()
    except OverlayError as e:
        sys.stderr.write("strata-overlay-restore: %s\n" % e.message)
        return 1
    for layer_id in done:
        sys.stdout.write("%s %s\n" % ("would mount" if args.check else "mounted", layer_id))
    for layer_id, message in failures:
        sys.stderr.write("strata-overlay-restore: cannot mount %s: %s\n" % (layer_id, message))
    if failures:
        sys.stderr.write("strata-overlay-restore: %d layer(s) not mounted: %s\n"
                         % (len(failures), ", ".join(layer_id for layer_id, _message in failures)))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
