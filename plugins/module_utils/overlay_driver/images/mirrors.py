# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pull that may come from several places (registries.conf mirrors, search registries): the first that has it.

Each place is tried in order until one gives the image's manifest (and, for
an index, the platform's); that one then serves the config and every blob,
as containers/image does, so an image is never assembled from two places.
A place that cannot be reached, refuses the credentials or lacks the image
is passed over; when none has it, the error lists what each one said.
"""

from .errors import ImageError
from .source import ImageSource


class FirstAvailable(ImageSource):
    remote = True

    def __init__(self, reference, places):
        """places: [(what, make)], make() returning the place's source (a Registry)."""
        super().__init__(reference)
        self.places = places
        self.deadlines = None  # handed to each place as it is tried
        self.chosen = None
        self.chosen_what = None

    def resolve(self, wanted_platform):
        failures = []
        for what, make in self.places:
            try:
                source = make()
                source.deadlines = self.deadlines
                resolved = source.resolve(wanted_platform)
            except ImageError as e:
                failures.append("%s: %s" % (what, e.cause))
                continue
            self.chosen, self.chosen_what = source, what
            return resolved
        raise ImageError("no place registries.conf names has the image (%s)" % "; ".join(failures), image=self.image)

    def _source(self):
        if self.chosen is None:
            raise ImageError("the image was not resolved yet", image=self.image)
        return self.chosen

    def read_config(self, descriptor):
        return self._source().read_config(descriptor)

    def open_blob(self, descriptor):
        return self._source().open_blob(descriptor)

    def __getattr__(self, name):
        # what a Registry tells besides (bytes_fetched, token_requests, ...), once one is chosen
        if name.startswith("__") or self.__dict__.get("chosen") is None:
            raise AttributeError(name)
        return getattr(self.chosen, name)
