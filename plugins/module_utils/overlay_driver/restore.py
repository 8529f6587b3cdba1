# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount again, at boot, every layer whose holders are recorded (the stale state).

Installed on hosts by the overlay_layers role and run by its systemd unit as
`python3 -m overlay_driver.restore --home HOME`. Stdlib only, like the rest
of the package.
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
    try:
        store = LayerStore(args.home)
        with store.locked():
            done = store.restore(check_mode=args.check)
    except OverlayError as e:
        sys.stderr.write("strata-overlay-restore: %s\n" % e.message)
        return 1
    for layer_id in done:
        sys.stdout.write("%s %s\n" % ("would mount" if args.check else "mounted", layer_id))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
