# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stage an image into a LayerStore: one layer per image layer, named by its ChainID.

The manifest and config are read first (outside the home's lock: a slow
registry should not hold up other runs on the host), then under the lock each
layer that is not already there (with its diff_id, on its parent) is streamed
from its source, verified and applied on its parent in the home's tmp, and
renamed into place complete. Layers already present are not fetched,
and the home remembers each staged image's config (config_cache.py), so
staging an image again reads only its manifest.

A failure stops at the layer that failed: that layer is not created, and the
layers before it stay. They are complete and content-addressed (a ChainID
names exactly that stack of diffs), so keeping them is safe and makes the
next attempt resume where this one stopped.
"""

import contextlib
import functools
import time

from .. import space
from .. import tar_split  # noqa: F401 pylint: disable=W0611  # shipped with overlay_image: records.tar_split_module
from ..errors import OverlayError
from ..tar_headers import Limits
from ..results import StagedImage, StagedLayer
from . import config_cache
from .certs import DEFAULT_CERTS_DIRS
from .digests import VerifyingReader, chain_ids
from .download import DEFAULT_BLOB_DEADLINE, DEFAULT_IMAGE_DEADLINE, Deadlines, Downloaded, download
from .errors import ImageError
from .manifests import MAX_IMAGE_LAYERS, check_layer_count, parse_config, parse_platform  # noqa: F401 pylint: disable=W0611
from .network import Network
from .reference import Reference, parse_reference
from .sources import DEFAULT_TIMEOUT, open_registry
from .stream import CheckedStream


def open_source(reference, registry_auth=None, validate_certs=True, ca_path=None, timeout=DEFAULT_TIMEOUT,
                certs_dirs=None, registries_conf=None, registries_conf_d=None, network=None):
    """The source of the image; network: a Network (how a registry is reached), for registries only."""
    # Each source's code is imported when it is the source: under Ansible a module run compiles every module
    # it imports (no bytecode cache), so re-staging a present image pays only for its own transport.
    if reference.transport in ("oci", "oci-archive"):
        from .oci_layout import OciLayout  # pylint: disable=import-outside-toplevel
        return OciLayout(reference)
    if reference.transport == "docker-archive":
        from .docker_archive import DockerArchive  # pylint: disable=import-outside-toplevel
        return DockerArchive(reference)
    # http.client and ssl only when a registry is pulled: file transports start faster without them.
    from .lookaside_http import LookasideTransport  # pylint: disable=import-outside-toplevel
    network = network or Network()
    source = open_registry(reference, registry_auth, validate_certs, ca_path, timeout, certs_dirs, registries_conf,
                           registries_conf_d, network)
    # a lookaside holding the image's simple signatures is reached as the registry is, for its own host
    source.lookaside_transport = LookasideTransport(validate_certs, ca_path,
                                                    DEFAULT_CERTS_DIRS if certs_dirs is None else certs_dirs,
                                                    network.proxies, timeout)
    return source


# -- the store, in one place ----------

def store_apply(store, layer_id, parent, opener, diff_id):
    """Create the layer with its verified stream applied; it appears complete or not at all.

    The driver builds it in the home's tmp and renames it into place once the
    diff_id is checked (Driver.create_applied); its record is written just
    before that rename. A run killed anywhere leaves no layer of this ChainID,
    only temp files and perhaps a record without a layer, which the next
    writer removes.
    """
    recorder = store.tar_split_recorder()

    def record(result):
        entry = store.record(layer_id)
        entry.parent = parent or None
        entry.diff_id = result.diff_id
        entry.size = result.size
        entry.holders = set()
        store.save(entry)
        store.save_tar_split(layer_id, recorder, result.diff_id)

    with opener() as raw:
        store.driver.create_applied(layer_id, parent, raw, "none", diff_id, before_rename=record, recorder=recorder)
    return True


def store_has(store, layer_id, diff_id, parent):
    """The layer is there, holding exactly this diff on exactly this parent.

    A ChainID names a stack of diffs, so a layer of that id is the image's
    layer only when its record says so for the diff and for the parent (whose
    own check, one layer down, covers the rest of the chain). A layer made
    by hand under that id, or on another parent, is not the image's layer.
    """
    state = store.state(layer_id)
    return bool(state["exists"]) and state.get("diff_id") == diff_id and (state["parent"] or "") == (parent or "")


def _refuse_impostor(store, state, diff_id, parent, image, where):
    """A layer of this ChainID that is not the image's layer (another diff, no diff, another parent) is an
    error naming what it holds: applying over it, or trusting it, would stage something else."""
    if not state["exists"]:
        return
    has_diff, has_parent = state.get("diff_id"), state["parent"] or ""
    if (has_diff, has_parent) == (diff_id, parent or ""):
        return
    raise ImageError("%sa layer of this id exists but is not this image's layer: it holds %s on %s, the image's "
                     "layer is diff %s on %s (remove it with overlay_layer state=absent to stage the image)"
                     % (where, "diff %s" % has_diff if has_diff else "no diff",
                        "parent %s" % has_parent if has_parent else "no parent",
                        diff_id, "parent %s" % parent if parent else "no parent"),
                     image=image, path=store.layout.layer(state["id"]).dir)


class _Progress:
    def __init__(self):
        self.bytes = 0
        self.uncompressed = 0  # of the layers applied so far

    def add(self, n):
        self.bytes += n


class _Uncounted:
    """progress for a blob read again from its download: no bytes fetched, its uncompressed bytes still spent."""

    def __init__(self, progress):
        self._progress = progress

    def add(self, n):
        del n

    @property
    def uncompressed(self):
        return self._progress.uncompressed

    @uncompressed.setter
    def uncompressed(self, value):
        self._progress.uncompressed = value


class _Attempt(_Uncounted):
    """progress for one reading of a blob: the bytes it counts are tallied, to be taken back if it is read
    again, and only those (the prefetcher counts other blobs' bytes on the same progress meanwhile)."""

    def __init__(self, progress):
        super(_Attempt, self).__init__(progress)
        self.added = 0

    def add(self, n):
        self.added += n
        self._progress.add(n)


def _opener(source, descriptor, diff_id, image, progress, verifiers, streams, gzip_program):
    # An uncompressed blob's digest is its diff_id, which the applier checks before the layer becomes
    # visible: hashing the same bytes twice would prove nothing more.
    digest = None if descriptor.digest == diff_id and descriptor.compression == "none" else descriptor.digest

    @contextlib.contextmanager
    def opener():
        with source.open_blob(descriptor) as raw:
            verifier = VerifyingReader(raw, digest, descriptor.size, image, progress.add,
                                       name=descriptor.digest or descriptor.path)
            verifiers.append(verifier)
            stream = CheckedStream(verifier, descriptor.compression, image, gzip_program)
            streams.append(stream)
            try:
                yield _Counted(stream, progress)
            finally:
                stream.close()
    return opener


class _Counted:
    """The decompressed stream, its bytes counted (progress.uncompressed): what the image's size limit spends."""

    def __init__(self, stream, progress):
        self._stream = stream
        self._progress = progress

    def read(self, n=-1):
        data = self._stream.read(n)
        self._progress.uncompressed += len(data)
        return data


def _read_config(source, resolved, image):
    config_bytes = source.read_config(resolved.config)
    return parse_config(config_bytes, image, resolved.config.digest, len(resolved.layers))


def read_image(source, wanted_platform, image):
    """Manifest and config: what the image is, before anything is staged."""
    resolved = source.resolve(wanted_platform)
    diff_ids, run_config = _read_config(source, resolved, image)
    return resolved, diff_ids, run_config


def remembered_config(store, resolved):
    """(diff_ids, config object) the home remembers for this config, if every layer they name is there.

    The check is the one staging makes anyway (each ChainID exists with its diff_id), so an entry
    that is stale, tampered with or written for other layers only costs the config request it
    would have saved.
    """
    if store is None:
        return None
    remembered = config_cache.lookup(store, resolved.config.digest, len(resolved.layers))
    if remembered is None:
        return None
    diff_ids = remembered[0]
    parent = ""
    for chain_id, diff_id in zip(chain_ids(diff_ids), diff_ids):
        if not store_has(store, chain_id[len("sha256:"):], diff_id, parent):
            return None
        parent = chain_id[len("sha256:"):]
    return remembered


def enforce_policy(policy, reference, source, resolved, registries_d=None, written=None):
    """The signature policy's verdict on the image (policy.py): an ImageError when it is refused.

    Signatures name a manifest digest. The manifest staged is judged first (as containers/image judges the
    instance it copies out of a multi-platform index; skopeo --all signs every instance); when it is refused
    and it came through an index, the index is judged (cosign signs only the index): either binds the layers,
    the index naming the manifest by digest. Signatures are fetched only when a requirement needs them.
    """
    if policy is None:
        return
    from .signatures import image_signatures  # pylint: disable=import-outside-toplevel
    # The name the image was pulled by (a short name's alias or search registry; a mirror's or a location's
    # image is judged by the name it stands for), as containers/image judges it, not the name the task wrote.
    reference = getattr(source, "named_reference", None) or reference
    digest = resolved.manifest_digest
    try:
        policy.enforce(reference, digest, image_signatures(reference, source, digest, registries_d), written)
    except ImageError as refused:
        top = resolved.top_digest
        if top == digest:
            raise
        try:
            policy.enforce(reference, top, image_signatures(reference, source, top, registries_d), written)
        except ImageError as also:
            raise ImageError("%s; and for the index %s: %s" % (refused.cause, top, also.cause), image=refused.image,
                             blob=digest)


def _read_image_with(source, store, wanted_platform, image, judge=None):
    """read_image, without the config request when the home remembers the config; the store, and whether
    it did. judge(resolved) (the signature policy) decides once the manifest is known, before anything else
    is read; a callable store is opened only then, so a refused image leaves no home behind."""
    resolved = source.resolve(wanted_platform)
    if judge is not None:
        judge(resolved)
    if callable(store):
        store = store()
    remembered = remembered_config(store, resolved)
    if remembered is not None:
        return store, resolved, remembered[0], remembered[1], True
    diff_ids, run_config = _read_config(source, resolved, image)
    return store, resolved, diff_ids, run_config, False


def stage_image(store, src, platform=None, registry_auth=None, validate_certs=True, ca_path=None,
                check_mode=False, timeout=DEFAULT_TIMEOUT, blob_deadline=DEFAULT_BLOB_DEADLINE,
                image_deadline=DEFAULT_IMAGE_DEADLINE, max_layer_size=space.DEFAULT_MAX_LAYER_SIZE,
                max_image_size=space.DEFAULT_MAX_IMAGE_SIZE, home=None, certs_dirs=None, registries_conf=None,
                registries_conf_d=None, network=None, policy=None, registries_d=None, policy_written=None):
    """Stage the image `src` (a reference string or Reference) into store.

    store may be a callable that opens it: it is called once the policy allowed the image.
    Takes the store's lock itself, per layer and never while a registry
    sends a blob (not in check mode, which only reads the layers' records).
    In check mode, store may be None (no home yet: every layer would be
    staged; home, if given, is where the free space is checked) and only
    manifest and config are read. A registry's answers are
    bounded by blob_deadline (each blob, manifests and config included) and
    image_deadline (all of them), in seconds. Each layer's uncompressed tar
    may hold max_layer_size bytes, and the layers this run stages together
    max_image_size; a layer needs its compressed size free on the home's
    filesystem (twice for a registry blob, which waits in tmp) before it
    is fetched. certs_dirs are the certs.d directories looked in for the
    registry's CAs and client certificate (certs.py); None means the defaults.
    registries_conf and registries_conf_d name the registries.conf file and
    directory (registries_conf.py) that decide where a docker:// pull goes;
    None means the defaults.
    network (network.py) is how a registry is reached: retries and proxies; default: 5 retries, waits of
    at most 60 s, the proxies of this process's environment.
    policy is the signature policy (a Policy, or a path for load_policy; None: no check) that must allow the
    image before its config or any layer is read, in check mode too; registries_d is the registries.d
    directory that says where a registry's signatures are (signatures.py; None: the default).
    policy_written is the file-transport Reference the task wrote when src is a copy the controller sent:
    the policy's path scopes judge it, not the copy's temporary path.
    Returns a StagedImage (results.py), its layers bottom first.
    """
    started = time.monotonic()
    reference = src if isinstance(src, Reference) else parse_reference(src)
    image = reference.text
    wanted = parse_platform(platform, image)
    progress = _Progress()
    if policy is not None and not hasattr(policy, "enforce"):  # a path: the policy is read (policy.py) only if set
        from .policy import load_policy  # pylint: disable=import-outside-toplevel
        policy = load_policy(policy, image)
    sizes = (space.check_size_limit(max_layer_size, "max_layer_size"),
             space.check_size_limit(max_image_size, "max_image_size"))
    with open_source(reference, registry_auth, validate_certs, ca_path, timeout, certs_dirs, registries_conf,
                     registries_conf_d, network) as source:
        if source.remote:
            source.deadlines = Deadlines(blob_deadline, image_deadline, started)
        store, resolved, diff_ids, run_config, remembered = _read_image_with(
            source, store, wanted, image, functools.partial(enforce_policy, policy, reference, source,
                                                            registries_d=registries_d, written=policy_written))
        check_layer_count(diff_ids, image)
        ids = chain_ids(diff_ids)
        layers = []
        for i, descriptor in enumerate(resolved.layers):
            layers.append(StagedLayer(ids[i][len("sha256:"):], diff_ids[i], descriptor.digest or diff_ids[i],
                                      descriptor.size, descriptor.media_type))
        if store is None:
            if not check_mode:
                raise ImageError("no layer store to stage into", image=image)
            for i, layer in enumerate(layers):
                layer.changed = True
                if home is not None:
                    _require_space(home, source, resolved.layers[i], image,
                                   "layer %d of %d (%s): " % (i + 1, len(layers), layer.id))
        else:
            _stage_layers(store, source, resolved, layers, image, progress, check_mode, sizes)
            if not check_mode and not remembered:
                with store.locked():
                    config_cache.remember(store, resolved.config.digest, diff_ids, run_config)
    return StagedImage(changed=any(layer.changed for layer in layers), top=layers[-1].id, layers=layers,
                       manifest_digest=resolved.manifest_digest, config_digest=resolved.config.digest,
                       config=run_config, bytes=progress.bytes, elapsed=round(time.monotonic() - started, 3))


def _locked_unless_check(store, check_mode):
    # A check run reads only; the lock would run the store's cleanup of leftovers, which check mode must not.
    return contextlib.nullcontext() if check_mode else store.locked()


def _stage_layers(store, source, resolved, layers, image, progress, check_mode, sizes):
    prefetch = None
    if not check_mode and source.remote:
        prefetch = _prefetcher(store, source, resolved, layers, image, progress)
    try:
        parent = ""
        for i, layer in enumerate(layers):
            where = "layer %d of %d (%s): " % (i + 1, len(layers), layer.id)
            with _locked_unless_check(store, check_mode):
                _check_layer(store, layer, parent, image, where)
            if not layer.present:
                layer.changed = True
                _require_space(store.home, source, resolved.layers[i], image, where)
                if not check_mode:
                    with _size_limits(store, progress, sizes):
                        _fetch_and_apply(store, source, resolved.layers[i], layer, parent, image, progress, where,
                                         (prefetch, i))
            elif prefetch is not None:
                prefetch.skip(i)
            parent = layer.id
    finally:
        if prefetch is not None:
            prefetch.close()


def _prefetcher(store, source, resolved, layers, image, progress):
    """The registry blobs of the layers after the one being applied, downloaded meanwhile (prefetch.py): those
    of layers not in the home, each once its free space is there."""
    def may_start(i):
        parent = layers[i - 1].id if i else ""
        if store_has(store, layers[i].id, layers[i].diff_id, parent):
            return False
        try:
            _require_space(store.home, source, resolved.layers[i], image, "")
        except ImageError:
            return False  # its own turn says so
        return True
    from .prefetch import Prefetcher  # pylint: disable=import-outside-toplevel
    return Prefetcher(source, store.driver.dirs.tmp_fd, image, progress.add, enumerate(resolved.layers), may_start)


def _require_space(home, source, descriptor, image, where):
    """The layer's compressed size free on the home's filesystem (twice for a registry blob: it waits in tmp)."""
    if not descriptor.size:
        return
    needed = descriptor.size * (2 if source.remote else 1)
    try:
        space.require_free(home, needed, "the layer (a blob of %d bytes)" % descriptor.size)
    except OverlayError as e:
        raise ImageError(where + e.cause, image=image, blob=descriptor.digest or descriptor.path, path=home)


@contextlib.contextmanager
def _size_limits(store, progress, sizes):
    """The applier's bound for the next layer: max_layer_size, or what max_image_size leaves, if less."""
    max_layer, max_image = sizes
    left = max_image - progress.uncompressed
    if left < max_layer:
        limits = Limits(max_bytes=max(left, 0), max_bytes_name="max_image_size (%d bytes, %d of them in the layers "
                        "staged before this one)" % (max_image, progress.uncompressed))
    else:
        limits = Limits(max_bytes=max_layer, max_bytes_name="max_layer_size")
    before, store.driver.layer_limits = store.driver.layer_limits, limits
    try:
        yield
    finally:
        store.driver.layer_limits = before


def _check_layer(store, layer, parent, image, where):
    """layer.present, once a layer of its id is known to be the image's (or absent)."""
    state = store.state(layer.id)
    _refuse_impostor(store, state, layer.diff_id, parent, image, where)
    layer.present = state["exists"]


def _fetch_and_apply(store, source, descriptor, layer, parent, image, progress, where, prefetched=(None, None)):
    """Download the blob first when a registry sends it (no lock held), then apply it under the lock."""
    with _fetched(store, source, descriptor, image, progress, where, prefetched) as (blob_source, apply_progress):
        with store.locked():
            _check_layer(store, layer, parent, image, where)  # another run may have staged it meanwhile
            if layer.present:
                layer.changed = False
                return
            _apply_one(store, blob_source, descriptor, layer, parent, image, apply_progress, where)


@contextlib.contextmanager
def _fetched(store, source, descriptor, image, progress, where, prefetched=(None, None)):
    """(source to apply from, progress to count on): a registry's blob downloaded and verified into an unnamed
    file of the home's tmp; a file source as it is (read under the lock: a local read, at disk speed)."""
    if not source.remote:
        yield source, progress
        return
    try:
        prefetch, index = prefetched
        if prefetch is not None:
            f = prefetch.take(index)
        else:
            f = download(source, descriptor, store.driver.dirs.tmp_fd, image, progress.add)
    except ImageError as e:  # BlobError too
        raise e.prefix(where)
    except OSError as e:
        raise ImageError("%scannot keep the downloaded blob in the home's tmp: %s" % (where, e.strerror),
                         image=image, blob=descriptor.digest, path=store.layout.tmp)
    with f:
        yield Downloaded(f), _Uncounted(progress)  # its bytes were counted as they arrived


def _apply_one(store, source, descriptor, layer, parent, image, progress, where):
    """Apply the blob, its gzip decompressed by the igzip program when the host has one; when igzip's answer
    is not provably zlib's (igzip.IgzipProcess), the blob is read and applied again through zlib, whose
    verdict stands. The failed attempt left nothing (store_apply), and its bytes are not spent twice."""
    streams = []
    first = _Attempt(progress)
    spent = progress.uncompressed
    try:
        _apply_attempt(store, source, descriptor, layer, parent, image, first, where, streams, True)
        return
    except ImageError:
        if not any(stream.recheck for stream in streams):
            raise
    progress.add(-first.added)  # (a no-op for a downloaded blob, as its add was)
    progress.uncompressed = spent
    _apply_attempt(store, source, descriptor, layer, parent, image, progress, where, [], False)


def _apply_attempt(store, source, descriptor, layer, parent, image, progress, where, streams, gzip_program):
    verifiers = []
    opener = _opener(source, descriptor, layer.diff_id, image, progress, verifiers, streams, gzip_program)
    blob = descriptor.digest or descriptor.path
    try:
        store_apply(store, layer.id, parent, opener, layer.diff_id)
    except ImageError as e:  # BlobError too
        raise e.prefix(where)
    except OverlayError as e:
        # The applier names the layer around the cause; the blob's own error says more.
        for verifier in verifiers:
            if verifier.error is not None:
                raise verifier.error.prefix(where)
        cause = e.cause if e.layer == layer.id else e.message
        raise ImageError(where + cause, image=image, blob=blob, path=e.path)
