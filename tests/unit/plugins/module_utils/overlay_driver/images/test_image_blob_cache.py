"""The controller's blob cache (pull: controller): one fetch per blob whatever the forks, verified, and a
directory nobody else can redirect."""

import contextlib
import hashlib
import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.blob_cache import (
    BlobCache, default_cache_dir)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.cache_bounds import CacheBounds
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.download import Deadlines
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.manifests import Descriptor

OTHER_UID = 4242


class CountingSource:
    """A source whose blobs are bytes in memory; counts each blob's reads, and can wait at a barrier so that
    every fork is inside the cache at once."""

    def __init__(self, blobs):
        self.blobs = blobs
        self.reads = []
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        with self.lock:
            self.reads.append(descriptor.digest)
        yield io.BytesIO(self.blobs[descriptor.digest])


def descriptor_of(data, digest=None):
    digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    return Descriptor("application/vnd.oci.image.layer.v1.tar", digest, len(data))


def test_made_0700_and_a_blob_fetched_once_then_served_from_the_cache(scratch):
    path = os.path.join(scratch, "home", "user", ".cache", "strata.overlay")
    data = b"layer bytes" * 1000
    d = descriptor_of(data)
    source = CountingSource({d.digest: data})
    with BlobCache(path) as cache:
        blob = cache.blob(source, d, "docker://r/app")
        assert cache.fetched == [d.digest]
    with BlobCache(path) as cache:
        assert cache.blob(source, d, "docker://r/app") == blob and cache.fetched == []
    assert source.reads == [d.digest]
    assert blob == os.path.join(path, "blobs", "sha256", d.digest[len("sha256:"):])
    with open(blob, "rb") as f:
        assert f.read() == data
    assert os.stat(path).st_mode & 0o777 == 0o700
    assert os.listdir(os.path.join(path, "tmp")) == []


class HeldSource(CountingSource):
    """Holds each blob's first fetch until every fork has looked for that blob in the cache and found it missing:
    the moment a fleet's forks all reach the same missing blob."""

    def __init__(self, blobs, forks):
        super().__init__(blobs)
        self.forks = forks
        self.misses = {}
        self.changed = threading.Condition()

    def missed(self, name):
        with self.changed:
            self.misses[name] = self.misses.get(name, 0) + 1
            self.changed.notify_all()

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        name = descriptor.digest[len("sha256:"):]
        with self.changed:  # bounded: a lock that serialized the looks too would otherwise hang the test
            self.changed.wait_for(lambda: self.misses.get(name, 0) >= self.forks, timeout=30)
        with super().open_blob(descriptor) as raw:
            yield raw


def test_forks_at_once_make_one_fetch_of_each_blob(scratch, monkeypatch):
    """Ansible runs the action of 20 hosts in forks at once: without the blob's lock each fork that found it
    missing fetched it."""
    forks = 8
    blobs = [bytes([n]) * (1 << 16) for n in range(3)]
    descriptors = [descriptor_of(b) for b in blobs]
    source = HeldSource({d.digest: b for d, b in zip(descriptors, blobs)}, forks)
    verified = BlobCache._verified  # pylint: disable=protected-access

    def looked(self, name, descriptor):
        found = verified(self, name, descriptor)
        if not found:
            source.missed(name)
        return found

    monkeypatch.setattr(BlobCache, "_verified", looked)
    path = os.path.join(scratch, "cache")

    def host(_n):
        with BlobCache(path) as cache:  # each fork opens the cache itself
            return [cache.blob(source, d, "docker://r/app") for d in descriptors]

    with ThreadPoolExecutor(forks) as pool:
        paths = list(pool.map(host, range(forks)))
    assert all(p == paths[0] for p in paths)
    assert sorted(source.reads) == sorted(d.digest for d in descriptors)


def test_a_cached_blob_that_does_not_match_its_name_is_fetched_again(scratch):
    data = b"the real layer" * 100
    d = descriptor_of(data)
    source = CountingSource({d.digest: data})
    path = os.path.join(scratch, "cache")
    with BlobCache(path) as cache:
        blob = cache.blob(source, d, "docker://r/app")
    with open(blob, "r+b") as f:  # same size, other content: only the digest tells
        f.write(b"X")
    with BlobCache(path) as cache:
        assert cache.read_verified(d) is None
        assert cache.blob(source, d, "docker://r/app") == blob and cache.fetched == [d.digest]
    assert source.reads == [d.digest, d.digest]
    with open(blob, "rb") as f:
        assert f.read() == data


def test_a_blob_the_registry_sends_wrong_is_never_named_in_the_cache(scratch):
    d = descriptor_of(b"what the manifest promised")
    source = CountingSource({d.digest: b"what the registry sent instead"[:len(b"what the manifest promised")]})
    path = os.path.join(scratch, "cache")
    with BlobCache(path) as cache:
        with pytest.raises(ImageError) as e:
            cache.blob(source, d, "docker://r/app")
    assert d.digest in e.value.message
    assert os.listdir(os.path.join(path, "blobs", "sha256")) == [] and os.listdir(os.path.join(path, "tmp")) == []


def test_a_temp_left_by_a_killed_fork_is_cleared_by_the_next_fetch(scratch):
    data = b"layer"
    d = descriptor_of(data)
    path = os.path.join(scratch, "cache")
    BlobCache(path).close()
    left = os.path.join(path, "tmp", d.digest[len("sha256:"):] + ".0123456789abcdef")
    with open(left, "wb") as f:
        f.write(b"half")
    with BlobCache(path) as cache:
        cache.blob(CountingSource({d.digest: data}), d, "docker://r/app")
    assert os.listdir(os.path.join(path, "tmp")) == []


@pytest.mark.parametrize("how", ["owner", "group-writable", "world-writable", "symlink", "parent", "sub-owner"])
def test_a_cache_another_user_can_change_is_refused(scratch, how):
    """The blobs are sent by path: a cache another user owns, can write, or redirects (a symlink, a directory
    above it) would let that user choose what the hosts get."""
    path = os.path.join(scratch, "tmp", "cache")
    os.makedirs(path, 0o700)
    if how == "owner":
        os.chown(path, OTHER_UID, OTHER_UID)
    elif how == "group-writable":
        os.chmod(path, 0o770)
    elif how == "world-writable":
        os.chmod(path, 0o1777)
    elif how == "symlink":
        os.rename(path, path + ".real")
        os.symlink(path + ".real", path)
        os.lchown(path, OTHER_UID, OTHER_UID)
    elif how == "parent":
        os.chmod(os.path.dirname(path), 0o777)
    elif how == "sub-owner":
        os.mkdir(os.path.join(path, "blobs"), 0o700)
        os.chown(os.path.join(path, "blobs"), OTHER_UID, OTHER_UID)
    with pytest.raises(ImageError) as e:
        BlobCache(path)
    assert "refusing the controller's blob cache" in e.value.message


def test_a_sticky_tmp_above_the_cache_is_fine(scratch):
    os.makedirs(os.path.join(scratch, "tmp"))
    os.chmod(os.path.join(scratch, "tmp"), 0o1777)
    with BlobCache(os.path.join(scratch, "tmp", "cache")) as cache:
        assert cache.path == os.path.join(scratch, "tmp", "cache")


def test_check_mode_opens_only_a_cache_that_is_there(scratch):
    path = os.path.join(scratch, "nothing", "cache")
    assert BlobCache.existing(path) is None
    assert not os.path.exists(os.path.join(scratch, "nothing"))


def test_the_default_directory():
    assert default_cache_dir({"STRATA_OVERLAY_CONTROLLER_CACHE": "/srv/c", "XDG_CACHE_HOME": "/x"}) == "/srv/c"
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == "/x/strata.overlay"
    assert default_cache_dir({}) == os.path.join(os.path.expanduser("~"), ".cache", "strata.overlay")


# -- a bounded cache: prune ------------------------------------------------------------------------------

DAY = 86400
NOW = int(time.time())  # the dates below are relative to it: a use sets the real time


def fill(path, blobs, used_days_ago):
    """Fetch each blob into the cache at path, then date its last use (its mtime) that many days before NOW."""
    descriptors = [descriptor_of(b) for b in blobs]
    with BlobCache(path) as cache:
        for d in descriptors:
            cache.blob(CountingSource({d.digest: b for d, b in zip(descriptors, blobs)}), d, "docker://r/app")
    for d, days in zip(descriptors, used_days_ago):
        when = NOW - days * DAY
        os.utime(blob_file(path, d), (when, when))
    return descriptors


def blob_file(path, descriptor):
    return os.path.join(path, "blobs", "sha256", descriptor.digest[len("sha256:"):])


def test_a_use_is_recorded_as_the_blobs_mtime(scratch):
    """atime is not kept on noatime mounts: the cache records a use itself, also for a blob it did not fetch."""
    path = os.path.join(scratch, "cache")
    [d] = fill(path, [b"layer"], [30])
    with BlobCache(path) as cache:
        cache.blob(CountingSource({}), d, "docker://r/app")
        assert cache.fetched == []
    assert os.stat(blob_file(path, d)).st_mtime > NOW - DAY


def test_blobs_unused_for_longer_than_max_age_are_pruned_and_the_ones_used_kept(scratch):
    path = os.path.join(scratch, "cache")
    old, recent, used = fill(path, [b"old", b"recent", b"used"], [40, 2, 40])
    with BlobCache(path) as cache:
        cache.blob(CountingSource({}), used, "docker://r/app")  # this run uses it: kept whatever its age
        os.utime(blob_file(path, used), (NOW - 40 * DAY, NOW - 40 * DAY))
        removed = cache.prune(CacheBounds(max_age=30 * DAY), now=NOW)
    assert removed == [old.digest]
    assert not os.path.exists(blob_file(path, old))
    assert os.path.exists(blob_file(path, recent)) and os.path.exists(blob_file(path, used))
    assert not os.path.exists(os.path.join(path, "locks", old.digest[len("sha256:"):]))


def test_max_size_removes_the_least_recently_used_first(scratch):
    path = os.path.join(scratch, "cache")
    blobs = [bytes([n]) * 1000 for n in range(4)]
    oldest, older, newer, newest = fill(path, blobs, [9, 8, 2, 1])
    with BlobCache(path) as cache:
        removed = cache.prune(CacheBounds(max_size=2500), now=NOW)
    assert removed == [oldest.digest, older.digest]
    assert [os.path.exists(blob_file(path, d)) for d in (oldest, older, newer, newest)] == [False, False, True, True]


def test_a_blob_whose_lock_another_process_holds_is_not_removed(scratch):
    """A fork holds a blob's lock while it fetches or sends it: a prune in another fork or run skips it."""
    path = os.path.join(scratch, "cache")
    held, free = fill(path, [b"being sent", b"unused"], [40, 40])
    lock = os.path.join(path, "locks", held.digest[len("sha256:"):])
    holder = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_SH); "
         "print('held', flush=True); sys.stdin.read()", lock],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with BlobCache(path) as cache:
            removed = cache.prune(CacheBounds(max_age=0), now=NOW)
    finally:
        holder.stdin.close()
        holder.wait()
    assert removed == [free.digest]
    assert os.path.exists(blob_file(path, held)) and os.path.exists(lock)


def test_a_planted_symlink_is_never_followed_nor_removed_through(scratch):
    """Only regular files named by 64 hex digits in blobs/sha256/ go: a link named like a blob is left alone
    (not followed to its target), and a blob whose lock file is a link is skipped."""
    path = os.path.join(scratch, "cache")
    victim = os.path.join(scratch, "victim")
    with open(victim, "wb") as f:
        f.write(b"precious")
    os.utime(victim, (NOW - 90 * DAY, NOW - 90 * DAY))
    [locked] = fill(path, [b"blob with a planted lock"], [40])
    lock = os.path.join(path, "locks", locked.digest[len("sha256:"):])
    os.unlink(lock)
    os.symlink(victim, lock)
    link = os.path.join(path, "blobs", "sha256", "e" * 64)
    os.symlink(victim, link)
    os.utime(link, (NOW - 90 * DAY, NOW - 90 * DAY), follow_symlinks=False)
    junk = os.path.join(path, "blobs", "sha256", "not-a-digest")
    with open(junk, "wb") as f:
        f.write(b"x" * 10000)
    os.utime(junk, (NOW - 90 * DAY, NOW - 90 * DAY))
    with BlobCache(path) as cache:
        assert cache.prune(CacheBounds(max_age=0, max_size=0), now=NOW) == []
    assert os.path.islink(link) and os.path.islink(lock) and os.path.exists(junk)
    assert os.path.exists(blob_file(path, locked))
    with open(victim, "rb") as f:
        assert f.read() == b"precious"


def test_a_blob_pruned_while_a_fork_waited_for_it_is_fetched_again(scratch):
    """The lock file goes with its blob: a fork that opened the old lock file takes the new one and fetches."""
    path = os.path.join(scratch, "cache")
    [d] = fill(path, [b"layer"], [40])
    with BlobCache(path) as pruner:
        assert pruner.prune(CacheBounds(max_age=0), now=NOW) == [d.digest]
    source = CountingSource({d.digest: b"layer"})
    with BlobCache(path) as cache:
        assert cache.blob(source, d, "docker://r/app") == blob_file(path, d)
        assert cache.fetched == [d.digest]


def test_no_bounds_prune_nothing(scratch):
    path = os.path.join(scratch, "cache")
    [d] = fill(path, [b"layer"], [4000])
    with BlobCache(path) as cache:
        assert cache.prune(CacheBounds(), now=NOW) == []
    assert os.path.exists(blob_file(path, d))


# -- forks refetching at once: no two wait for each other ------------------------------------------------

WATCHDOG = 300  # seconds a fork may take before the test calls it hung (a deadlock), not a performance bound


class BarrierSource(CountingSource):
    """Each blob's fetch waits until the fetches of every blob have begun: each fetcher then holds its blob's
    locks while the others hold theirs and wait for the blobs it is fetching."""

    def __init__(self, blobs, barrier):
        super().__init__(blobs)
        self.barrier = barrier

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        if self.barrier is not None:
            self.barrier.wait(WATCHDOG)
        with super().open_blob(descriptor) as raw:
            yield raw


def _fork_uses(path, descriptors, blobs, barrier, start, answers):
    """One fork of a play: open the cache, hand out each blob in its order, and while still holding them all
    check that each path holds what its digest names (nothing replaced or removed one before it was sent)."""
    try:
        source = BarrierSource(blobs, barrier)
        start.wait(WATCHDOG)
        with BlobCache(path) as cache:
            paths = [cache.blob(source, d, "docker://r/app") for d in descriptors]
            intact = []
            for d, blob in zip(descriptors, paths):
                with open(blob, "rb") as f:
                    intact.append("sha256:" + hashlib.sha256(f.read()).hexdigest() == d.digest)
            answers.put((list(cache.fetched), intact))
    except BaseException as e:  # pylint: disable=broad-exception-caught
        answers.put(("error", repr(e)))


def _pruner(path, stop, answers):
    """Another play pruning the shared cache to nothing, over and over, while the forks use it."""
    try:
        with BlobCache(path) as cache:
            rounds = 0
            while not stop.is_set() or rounds == 0:
                cache.prune(CacheBounds(max_size=0))
                rounds += 1
        answers.put(("pruned", rounds))
    except BaseException as e:  # pylint: disable=broad-exception-caught
        answers.put(("error", repr(e)))


def corrupt_cache(path, blobs):
    """Each blob in the cache, then overwritten with other bytes of its size: every fork finds it corrupt."""
    descriptors = [descriptor_of(b) for b in blobs]
    with BlobCache(path) as cache:
        for d, data in zip(descriptors, blobs):
            cache.blob(CountingSource({d.digest: data}), d, "docker://r/app")
    for d in descriptors:
        with open(blob_file(path, d), "r+b") as f:
            f.write(b"\xff" * 16)
    return descriptors


def run_forks(jobs):
    """Start each (target, args) as a forked process; their answers once all ended. A fork still running after
    WATCHDOG seconds fails the test as a deadlock (and is killed)."""
    import multiprocessing  # pylint: disable=import-outside-toplevel
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    procs = [context.Process(target=target, args=args + (answers,)) for target, args in jobs]
    try:
        for p in procs:
            p.start()
        try:
            got = [answers.get(timeout=WATCHDOG) for _proc in procs]
        except queue.Empty:
            pytest.fail("forks still waiting after %d s: a lock cycle" % WATCHDOG)
        for p in procs:
            p.join(WATCHDOG)
        assert not [p for p in procs if p.is_alive()], "forks still waiting: a lock cycle"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    return got


def test_forks_refetching_corrupt_blobs_in_opposite_orders_never_wait_for_each_other(scratch):
    """Six processes use three corrupt blobs, each starting with another one: while a fork holds its first blob
    and fetches it, the others hold theirs and wait for it. A refetch that took a blob's lock exclusively (or
    waited for any lock while fetching) would close a cycle and hang here; each blob is fetched once."""
    import multiprocessing  # pylint: disable=import-outside-toplevel
    context = multiprocessing.get_context("fork")
    path = os.path.join(scratch, "cache")
    blobs = [bytes([n]) * (3 << 20) for n in range(3)]  # several chunks each
    descriptors = corrupt_cache(path, blobs)
    by_digest = {d.digest: b for d, b in zip(descriptors, blobs)}
    barrier, start = context.Barrier(len(blobs)), context.Barrier(6)
    orders = [descriptors[i % 3:] + descriptors[:i % 3] for i in range(6)]
    answers = run_forks([(_fork_uses, (path, order, by_digest, barrier, start)) for order in orders])
    assert all(a[0] != "error" for a in answers), answers
    assert all(all(intact) for _fetched, intact in answers)
    assert sorted(digest for fetched, _intact in answers for digest in fetched) == sorted(d.digest for d in descriptors)
    for d, data in zip(descriptors, blobs):
        with open(blob_file(path, d), "rb") as f:
            assert f.read() == data


def test_forks_refetching_while_another_play_prunes_get_intact_blobs(scratch):
    """The same forks while another play prunes the cache to nothing in a loop: a prune never waits, so it
    closes no cycle either, and never removes a blob a fork holds before it was sent."""
    import multiprocessing  # pylint: disable=import-outside-toplevel
    context = multiprocessing.get_context("fork")
    path = os.path.join(scratch, "cache")
    blobs = [bytes([n]) * (1 << 20) for n in range(3)]
    descriptors = corrupt_cache(path, blobs)
    by_digest = {d.digest: b for d, b in zip(descriptors, blobs)}
    start = context.Barrier(6)
    stop = context.Event()
    orders = [descriptors[i % 3:] + descriptors[:i % 3] for i in range(6)]
    pruner = context.Process(target=_pruner, args=(path, stop, context.Queue()))
    pruner.start()
    try:
        answers = run_forks([(_fork_uses, (path, order, by_digest, None, start)) for order in orders])
    finally:
        stop.set()
        pruner.join(WATCHDOG)
        alive = pruner.is_alive()
        if alive:
            pruner.kill()
            pruner.join()
    assert not alive, "the prune waited for a lock"
    assert all(a[0] != "error" for a in answers), answers
    assert all(all(intact) for _fetched, intact in answers)


# -- temps a killed fetch left behind --------------------------------------------------------------------

class _HalfStream:
    """A registry stream that gives one chunk, says so, and then hangs: the fetch is killed mid-way."""

    def __init__(self, data, said):
        self.data = data
        self.said = said
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        if self.reads == 1:
            return self.data[:size if size and size > 0 else len(self.data)]
        self.said.put("half")  # the first chunk went to the temp: read() again is after out.write()
        signal.pause()
        return b""

    def close(self):
        pass


class _HangingSource:
    def __init__(self, data, said):
        self.data = data
        self.said = said

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        del descriptor
        yield _HalfStream(self.data, self.said)


def _fetch_forever(path, descriptor, data, said):
    with BlobCache(path) as cache:
        cache.blob(_HangingSource(data, said), descriptor, "docker://r/app")


def test_the_temp_of_a_killed_fetch_is_removed_and_a_running_fetchs_kept(scratch):
    """A real process fetching a blob is seen mid-way (its temp half written, its fetch lock held) and then
    killed with SIGKILL: while it runs, clear_abandoned keeps its temp; once it is dead the next run removes
    the temp and the lock files of the blob that never arrived, and fetches the blob whole."""
    import multiprocessing  # pylint: disable=import-outside-toplevel
    context = multiprocessing.get_context("fork")
    path = os.path.join(scratch, "cache")
    data = bytes(range(256)) * (8 << 12)  # 8 MiB: several chunks
    d = descriptor_of(data)
    name = d.digest[len("sha256:"):]
    tmp = os.path.join(path, "tmp")
    said = context.Queue()
    fetcher = context.Process(target=_fetch_forever, args=(path, d, data, said))
    fetcher.start()
    try:
        assert said.get(timeout=WATCHDOG) == "half"
        [temp] = os.listdir(tmp)
        assert temp.startswith(name + ".") and os.stat(os.path.join(tmp, temp)).st_size > 0
        with BlobCache(path) as cache:
            assert cache.clear_abandoned() == []  # its fetch lock is held: a running fetch's temp
        assert os.listdir(tmp) == [temp]
    finally:
        os.kill(fetcher.pid, signal.SIGKILL)
        fetcher.join()
    assert fetcher.exitcode == -signal.SIGKILL
    with BlobCache(path) as cache:
        assert cache.clear_abandoned() == [temp]
    assert os.listdir(tmp) == [] and os.listdir(os.path.join(path, "locks")) == []
    with BlobCache(path) as cache:
        assert cache.blob(CountingSource({d.digest: data}), d, "docker://r/app") == blob_file(path, d)
    with open(blob_file(path, d), "rb") as f:
        assert f.read() == data


def test_clearing_temps_never_follows_nor_removes_what_a_fetch_did_not_make(scratch):
    """A symlink named like a temp (to a file root must keep), a directory so named and files of other names
    stay; the target is untouched. Only the regular file a dead fetch left goes."""
    path = os.path.join(scratch, "cache")
    BlobCache(path).close()
    tmp = os.path.join(path, "tmp")
    victim = os.path.join(scratch, "victim")
    with open(victim, "wb") as f:
        f.write(b"precious")
    link = os.path.join(tmp, "a" * 64 + ".0123456789abcdef")
    os.symlink(victim, link)
    directory = os.path.join(tmp, "b" * 64 + ".0123456789abcdef")
    os.mkdir(directory)
    with open(os.path.join(directory, "inside"), "wb") as f:
        f.write(b"x")
    other = os.path.join(tmp, "notes")
    with open(other, "wb") as f:
        f.write(b"not a temp of ours")
    left = os.path.join(tmp, "c" * 64 + ".fedcba9876543210")
    with open(left, "wb") as f:
        f.write(b"half a blob")
    with BlobCache(path) as cache:
        assert cache.clear_abandoned() == [os.path.basename(left)]
    assert os.path.islink(link) and os.path.isdir(directory) and os.path.exists(other)
    assert not os.path.exists(left)
    with open(victim, "rb") as f:
        assert f.read() == b"precious"


def test_check_mode_clears_nothing(scratch):
    """A cache opened read-only (check mode) has no tmp/ to clear when it was never made."""
    path = os.path.join(scratch, "cache")
    os.makedirs(path, 0o700)
    with BlobCache.existing(path) as cache:
        assert cache.clear_abandoned() == []
    assert os.listdir(path) == []


class _DeadlinedSource(CountingSource):
    """A registry source as the action opens it: with the task's deadlines."""

    def __init__(self, blobs, blob_seconds):
        super().__init__(blobs)
        self.deadlines = Deadlines(blob_seconds=blob_seconds)


def test_a_fetch_lock_held_for_longer_than_blob_deadline_fails_naming_the_cache(scratch):
    """A run stopped while it fetched (a playbook suspended with ^Z) holds the blob's fetch lock for ever: a task
    waiting for it fails after its own blob_deadline, saying which cache and why, instead of hanging."""
    path = os.path.join(scratch, "cache")
    data = b"layer"
    d = descriptor_of(data)
    BlobCache(path).close()
    lock = os.path.join(path, "locks", d.digest[len("sha256:"):] + ".fetch")
    holder = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-c", "import fcntl, os, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); sys.stdin.read()", lock],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    outcome = {}

    def wait():
        source = _DeadlinedSource({d.digest: data}, 1)
        try:
            with BlobCache(path) as cache:
                outcome["path"] = cache.blob(source, d, "docker://r/app")
        except ImageError as e:
            outcome["error"] = e.message
        outcome["reads"] = source.reads

    try:
        assert holder.stdout.readline() == "held\n"
        waiter = threading.Thread(target=wait)
        waiter.start()
        waiter.join(WATCHDOG)
        hung = waiter.is_alive()
    finally:
        holder.stdin.close()
        holder.wait()
    waiter.join()
    assert not hung, "the task waited for the fetch lock without bound"
    assert "the controller cache at %s is held by another run for more than 1 s" % path in outcome["error"]
    assert d.digest in outcome["error"] and outcome["reads"] == []
    with BlobCache(path) as cache:  # nothing was left held: the next run fetches it
        assert cache.blob(_DeadlinedSource({d.digest: data}, 1), d, "docker://r/app") == blob_file(path, d)
        assert cache.fetched == [d.digest]


def test_a_refetch_clears_only_the_regular_temps_of_its_blob(scratch):
    """Before a fetch, the temps a killed fetch of the same blob left are cleared by name, as clear_abandoned
    clears them: only regular files go, each looked at without following a link. A directory so named failed
    the pull (unlink: EISDIR); it stays now, as does a symlink so named, and the link's target is untouched."""
    data = b"layer"
    d = descriptor_of(data)
    name = d.digest[len("sha256:"):]
    path = os.path.join(scratch, "cache")
    BlobCache(path).close()
    tmp = os.path.join(path, "tmp")
    victim = os.path.join(scratch, "victim")
    with open(victim, "wb") as f:
        f.write(b"precious")
    directory = os.path.join(tmp, name + ".0123456789abcdef")
    os.mkdir(directory)
    link = os.path.join(tmp, name + ".1123456789abcdef")
    os.symlink(victim, link)
    left = os.path.join(tmp, name + ".2123456789abcdef")
    with open(left, "wb") as f:
        f.write(b"half")
    with BlobCache(path) as cache:
        blob = cache.blob(CountingSource({d.digest: data}), d, "docker://r/app")
    with open(blob, "rb") as f:
        assert f.read() == data
    assert os.path.isdir(directory) and os.path.islink(link) and not os.path.lexists(left)
    with open(victim, "rb") as f:
        assert f.read() == b"precious"


@pytest.mark.parametrize("planted", ["fifo", "symlink", "directory"])
def test_a_blob_name_that_is_no_file_is_refetched_or_named(scratch, planted):
    """What is under a blob's name is opened without following a link or blocking on a FIFO, and checked on the fd.
    A FIFO or a symlink so named is no blob: it is unlinked (never through it) and the blob fetched. A directory
    cannot be unlinked: the pull fails naming it, not with the bare EISDIR of the unlink."""
    data = b"layer"
    d = descriptor_of(data)
    path = os.path.join(scratch, "cache")
    BlobCache(path).close()
    where = blob_file(path, d)
    victim = os.path.join(scratch, "victim")
    with open(victim, "wb") as f:
        f.write(data)
    if planted == "fifo":
        os.mkfifo(where)
    elif planted == "symlink":
        os.symlink(victim, where)
    else:
        os.mkdir(where)
    with BlobCache(path) as cache:
        if planted == "directory":
            with pytest.raises(ImageError, match="not a blob file at %s: remove it" % where):
                cache.blob(CountingSource({d.digest: data}), d, "docker://r/app")
            assert os.path.isdir(where)
            return
        assert cache.blob(CountingSource({d.digest: data}), d, "docker://r/app") == where
    assert not os.path.islink(where)
    with open(where, "rb") as f:
        assert f.read() == data
    with open(victim, "rb") as f:
        assert f.read() == data
