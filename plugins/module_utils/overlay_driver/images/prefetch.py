# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry blobs of the next layers downloaded while the current one is applied.

Layers must be applied in order, each on the one below, but nothing stops
their blobs from arriving together: while layer N is unpacked under the
home's lock, the blobs of the next layers are already on their way. Each
is downloaded (download.py) on its own thread into a file with no name in
the home's tmp, verified as it arrives and bounded by its deadline, exactly
as the one-at-a-time path does; the applier then takes them in order.

Bounded: at most DEPTH blobs are held at a time, the one being applied and
the downloads of the next ones, so disk holds at most DEPTH blobs beyond
the layers (each layer's free space is checked before its download
starts) and memory a chunk per
download. A layer found present (another run staged it meanwhile) just has
its download thrown away. A failed download fails its own layer when its
turn comes, so the layers before it are still applied, as without
prefetching. The threads are daemons and their files have no name: a run
that ends or is killed leaves neither behind.
"""

import threading

from .download import download

DEPTH = 3  # blobs held at a time: the one being applied and the downloads of the next ones


class _Job:
    def __init__(self, target):
        self.file = None
        self.error = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(target,), name="blob-download", daemon=True)
        self._thread.start()

    def _run(self, target):
        try:
            self.file = target()
        # handed to the main thread, raised there
        except BaseException as e:  # pylint: disable=broad-except
            self.error = e
        finally:
            self._done.set()

    def result(self):
        """The downloaded file; the download's own error when it failed."""
        self._done.wait()
        if self.error is not None:
            raise self.error
        return self.file

    def discard(self):
        """Close the file once the download ends (at once when it has); never waits."""
        def close():
            self._done.wait()
            if self.file is not None:
                self.file.close()
        if self._done.is_set():
            close()
        else:
            threading.Thread(target=close, name="blob-discard", daemon=True).start()


class Prefetcher:
    """Downloads of the blobs of `wanted` layers (index -> descriptor), DEPTH at a time, taken in order."""

    def __init__(self, source, tmp_fd, image, on_progress, wanted, may_start=None, depth=DEPTH):
        self._source = source
        self._tmp_fd = tmp_fd
        self._image = image
        self._on_progress = on_progress
        self._wanted = dict(wanted)
        self._order = sorted(self._wanted)
        self._may_start = may_start  # index -> bool: still wanted, and room for it (checked before it starts)
        self._depth = depth
        self._jobs = {}
        self._passed = set()
        self._lock = threading.Lock()

    def _job(self, index):
        descriptor = self._wanted[index]
        return _Job(lambda: download(self._source, descriptor, self._tmp_fd, self._image, self._locked_progress))

    def _ahead(self, start):
        """Start the downloads of the wanted layers from start on, while fewer than DEPTH are held."""
        for i in self._order:
            if len(self._jobs) >= self._depth:
                return
            if i < start or i in self._jobs or i in self._passed:
                continue
            if self._may_start is not None and not self._may_start(i):
                self._passed.add(i)  # present already, or no room yet: its own turn decides
                continue
            self._jobs[i] = self._job(i)

    def _locked_progress(self, n):
        with self._lock:
            self._on_progress(n)

    def take(self, index):
        """The downloaded blob of layer index (the caller closes it); the next downloads start meanwhile."""
        if index not in self._jobs:
            self._jobs[index] = self._job(index)
        self._ahead(index + 1)
        return self._jobs.pop(index).result()

    def skip(self, index):
        """Layer index turned out present: its download, if any, is not needed."""
        job = self._jobs.pop(index, None)
        if job is not None:
            job.discard()
        self._passed.add(index)

    def close(self):
        """Throw away what was fetched and not taken (a failure stopped the staging)."""
        for index in list(self._jobs):
            self._jobs.pop(index).discard()
