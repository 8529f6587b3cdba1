# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay_home's behaviour: a layer home made, or removed whole once nothing in it is used."""

from .managers import Manager, home_exists, repaired, warn_if_volatile
from .overlay_driver import mounts
from .overlay_driver.home_removal import refuse_in_use, remove_home


class HomeManager(Manager):
    """present: the home as the first writer makes it (maps recorded); absent: every layer, .strata and
    the directory go, refused while a layer is held or mounted; a missing home is ok and unchanged."""

    def __init__(self, params, check_mode=False, diff=False):
        Manager.__init__(self, params, check_mode, diff)
        self.creates_home = params.get("state", "absent") == "present"

    def run(self):
        exists = home_exists(self.params["home"])
        if not exists and not self.creates_home:
            return self._result(False, False, False, [])
        self.store = self.open_store()
        try:
            with self.store.locked():
                layers = self.store.driver.layer_ids()
                if self.creates_home:
                    return warn_if_volatile(repaired(self._result(not exists, exists, True, []), self.store.repaired,
                                                     self.check_mode), self.params["home"], exists, self.check_mode)
                if self.check_mode:
                    refuse_in_use(self.store, mounts.read_mountinfo())  # the real run would refuse
                    return self._result(True, True, False, layers)
                return self._result(True, True, False, remove_home(self.store))
        finally:
            self.store.close()

    def _result(self, changed, before, after, removed):
        result = {"changed": changed, "home": self.params["home"], "exists": after, "removed": removed}
        if self.diff:
            result["diff"] = {"before": {"home": self.params["home"], "exists": before},
                              "after": {"home": self.params["home"], "exists": after}}
        return result
