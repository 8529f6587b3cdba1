# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send an image from the controller, but only what the host lacks.

A registry is pulled by the host itself (pull: host), and remote_src: true
reads the file there: both go straight to the module. Otherwise the image is
read on the controller (manifest and config only), the host is asked which of
its layers it already holds (overlay_info: ids and diff_ids), and the host gets
an OCI layout (or, for docker save, a directory of the archive's files) in a
temporary directory with the manifest, the config and only the layer blobs it
lacks; the module then stages from there and the directory is removed. Blobs
of a layout directory are sent from where they are. An archive whose missing
layers are most of it (a first staging) is sent as it is, so it is read once;
otherwise the missing members are copied out into a controller temp directory
first (a transfer needs a file). Check mode sends no layer at all.

With pull: controller, a registry is pulled by the controller, for hosts that
cannot reach it: the same registry client the module uses resolves the image
for the host's platform (with the controller's credentials, certs.d,
registries.conf and proxies), the blobs the host lacks are fetched once into
the controller's blob cache (blob_cache.py: one fetch per blob for the whole
fleet, whatever the forks), and the host gets them as an OCI layout, as above.
A signature policy is then the controller's too: read there and applied to
the manifest before the config or any layer is fetched or sent.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import shlex
import shutil
import tempfile

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import manifests
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.digests import chain_ids
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.files import member_name
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.manifests import parse_config
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.plugin_utils.source_action import SourceAction

# What only sending a file image or pulling on the controller uses (the stager, the network, the policy, the
# blob cache) is imported by the methods that do it: a task whose host pulls, the usual case, and a re-staging
# that changes nothing do not pay the controller for loading it.
# pylint: disable=import-outside-toplevel

# The options of module_utils/common.py COMMON_ARGS, which is not imported here: it brings the whole driver
# (system calls included) onto the controller.
_COMMON = ("home", "uid_maps", "gid_maps")
# What the controller alone uses when it pulls: never sent to the host (credentials above all).
_CACHE_OPTIONS = ("controller_cache", "controller_cache_max_age", "controller_cache_max_size")
_PULL_ONLY = ("pull", "registry_auth", "username", "password", "auth_file", "ca_path", "certs_dir", "registries_conf",
              "registries_conf_d", "proxy", "no_proxy", "retries", "retry_max_delay", "validate_certs", "policy",
              "registries_d") + _CACHE_OPTIONS
PULLS = ("host", "controller")
# What overlay_image_info takes (the same options, checked the same way: image_request.py).
_INFO_OPTIONS = frozenset(("src", "platform", "registry_auth", "username", "password", "auth_file", "validate_certs",
                           "ca_path", "certs_dir", "registries_conf", "registries_conf_d", "blob_deadline",
                           "image_deadline", "retries", "retry_max_delay", "proxy", "no_proxy") + _COMMON + ("layout",))
# An archive is sent whole when the layers the host has are at most this share of those it lacks.
WHOLE_ARCHIVE_SKIPPED_SHARE = 0.25


class ActionModule(SourceAction):

    def _run_with_src(self, result, args, remote_src, task_vars):
        if "name" in args:  # the module's alias of src: the controller reads the image by either name
            if "src" in args:
                return dict(result, failed=True, msg="give the image as src or as name, not both")
            args = dict(args)
            args["src"] = args.pop("name")
        if args.get("state") == "absent":  # the image is found by its record in the home: nothing is read or sent
            result.update(self._run_module(args, task_vars))
            return result
        pull = args.pop("pull", None) or "host"
        if pull not in PULLS:
            return dict(result, failed=True, msg="pull must be one of %s, not %r" % (", ".join(PULLS), pull))
        cache = {k: args.pop(k, None) for k in _CACHE_OPTIONS}
        try:
            reference = parse_reference(args.get("src"))
        except OverlayError as e:
            return dict(result, failed=True, msg=e.message)
        if reference.transport == "docker" and pull == "controller":
            return self._in_workdir(result, lambda workdir: self._pull_and_send(result, args, reference, cache, workdir,
                                                                                task_vars))
        if reference.transport == "docker":
            result.update(self._stage_from_registry(args, task_vars))
            return result
        if remote_src or not reference.is_file:
            result.update(self._run_module(args, task_vars))
            return result
        try:
            local = self._find_needle("files", reference.path)
        except AnsibleError as e:
            return dict(result, failed=True, msg="image %s: %s not found on the controller: %s"
                        % (reference.text, reference.path, to_text(e)))
        return self._in_workdir(result, lambda workdir: self._send_and_stage(result, args, reference, local, workdir,
                                                                             task_vars))

    # -- the host pulls ---------------------------------------------------------------

    def _stage_from_registry(self, args, task_vars):
        """The module's answer; overlay_image_info's alone when it finds the image staged and recorded already.

        A re-run that changes nothing then ships and runs only the registry client and the home's reader,
        not the stager (a module run compiles all it imports). Only a task that gives nothing but what
        overlay_image_info takes asks it; whatever it cannot vouch for (a layer or the record missing, upkeep
        a writer's run would do, a layout or a read-only home the module would refuse, a home it cannot read)
        goes to the module, which stages, repairs and reports as ever. A failure of the options or the
        registry is the module's own failure word for word (the same code, before the home), so a registry
        that is down is not asked twice.
        """
        if args.get("state", "present") != "present" or set(args) - _INFO_OPTIONS - {"state", "remote_src"}:
            return self._run_module(args, task_vars)
        # only_recorded: an image the home records nothing of costs the registry no request here (the module's
        # own follows), so a first staging asks for the manifest once
        info = self._execute_module(module_name="strata.overlay.overlay_image_info",
                                    module_args=dict({k: v for k, v in args.items() if k in _INFO_OPTIONS},
                                                     only_recorded=True),
                                    task_vars=task_vars)
        if info.get("failed"):
            if info.get("failed_at") == "registry":
                return {k: v for k, v in info.items() if k != "failed_at"}
            return self._run_module(args, task_vars)
        image, home = info.get("image") or {}, info.get("home") or {}
        if not (image.get("recorded") and home.get("exists") and not home.get("read_only")
                and not home.get("upkeep_due") and args.get("layout") in (None, home.get("layout"))):
            return self._run_module(args, task_vars)
        return self._staged_already(args, info)

    def _staged_already(self, args, info):
        """overlay_image's result for an image every layer and the record of which are there: nothing fetched,
        nothing changed."""
        image = info["image"]
        layers = [dict({k: layer[k] for k in ("id", "diff_id", "digest", "size")}, changed=False)
                  for layer in image["layers"]]
        out = {"changed": False, "recorded": False, "top": image["top"], "layers": layers,
               "manifest_digest": image["manifest_digest"], "config_digest": image["config_digest"],
               "config": image["config"], "bytes": 0, "elapsed": image["seconds"], "fetched_bytes": 0,
               "seconds": image["seconds"]}
        if self._task.diff:
            ids = [layer["id"] for layer in layers]
            out["diff"] = {"before": {"image": args["src"], "layers": ids},
                           "after": {"image": args["src"], "layers": ids}}
        for key in ("warnings", "deprecations", "invocation"):
            if info.get(key):
                out[key] = info[key]
        return out

    @staticmethod
    def _in_workdir(result, work):
        """work(workdir) with a controller temp dir that is always removed; an OverlayError fails the task."""
        workdir = tempfile.mkdtemp(prefix="strata-image-")
        try:
            return work(workdir)
        except OverlayError as e:
            return dict(result, failed=True, msg=e.message)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    # -- the controller's side ----------------------------------------------------

    def _host_platform(self, args):
        if args.get("platform"):
            return manifests.parse_platform(args["platform"])
        out = self._low_level_execute_command("uname -m", sudoable=False)
        return manifests.machine_platform(to_text(out.get("stdout", "")))

    def _held_layers(self, args, task_vars):
        """id -> diff_id of the layers the host already holds."""
        probe = {k: args[k] for k in _COMMON if k in args}
        answer = self._execute_module(module_name="strata.overlay.overlay_info", module_args=probe,
                                      task_vars=task_vars)
        if answer.get("failed"):
            # A module that did not even start (no Python there, a bad interpreter) says why only on stderr.
            stderr = to_text(answer.get("module_stderr") or "").strip()
            detail = " (%s)" % stderr.splitlines()[0][:300] if stderr else ""
            raise OverlayError("cannot list the host's layers: %s%s" % (answer.get("msg"), detail))
        return {layer["id"]: layer.get("diff_id") for layer in answer.get("layers") or []}

    def _send_and_stage(self, result, args, reference, local, workdir, task_vars):
        from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import stage
        local_ref = reference.with_path(local)
        with stage.open_source(local_ref) as source:
            wanted = self._host_platform(args) if reference.transport != "docker-archive" else None
            resolved, diff_ids, _config = stage.read_image(source, wanted, reference.text)
            stage.check_layer_count(diff_ids, reference.text)  # before any layer is copied or sent
            config_bytes = source.read_config(resolved.config)
            held = self._held_layers(args, task_vars)
            ids = [c.split(":", 1)[1] for c in chain_ids(diff_ids)]
            needed = [i for i, layer_id in enumerate(ids) if held.get(layer_id) != diff_ids[i]]
            if self._task.check_mode:
                needed = []
            if os.path.isfile(local) and self._whole_archive(reference, resolved, needed):
                files = {"image.tar": local}
            else:  # a directory docker-archive too: member by member
                files = self._collect(reference, local, source, resolved, config_bytes, needed, workdir)
        transport = "docker-archive" if reference.transport == "docker-archive" else "oci"
        answer = self._ship(args, reference, files, transport, task_vars)
        answer["sent_layers"] = len(needed)
        answer["sent_whole_archive"] = "image.tar" in files
        result.update(answer)
        return result

    def _ship(self, args, reference, files, transport, task_vars):
        """Send files (name in the layout -> controller path) into a temp dir on the host and run the module on
        it; the module's answer, its messages naming the image as the task did."""
        _check_member_names(files, reference.text)

        with self._host_tmpdir() as tmpdir:
            remote_root = self._connection._shell.join_path(tmpdir, "image")
            dirs = sorted(set(os.path.dirname(name) for name in files) - {""})
            command = "mkdir -p -m 0700 %s" % " ".join(
                shlex.quote(self._connection._shell.join_path(remote_root, d)) for d in [""] + dirs)
            # As the connection's user, like the temp dir itself: the transfers below write as that user.
            made = self._low_level_execute_command(command, sudoable=False)
            if made.get("rc") != 0:
                raise OverlayError("cannot make %s on the host: %s" % (remote_root, to_text(made.get("stderr"))))
            remote_files = []
            for name, path in sorted(files.items()):
                remote = self._connection._shell.join_path(remote_root, name)
                self._transfer_file(path, remote)
                remote_files.append(remote)
            self._fixup_perms2([tmpdir, remote_root] + [self._connection._shell.join_path(remote_root, d)
                                                        for d in dirs] + remote_files)
            if "image.tar" in files:  # the archive as it is, with the operator's NAME:TAG or REF
                suffix = reference.text[len(reference.transport) + 1 + len(reference.path):]
                remote_archive = self._connection._shell.join_path(remote_root, "image.tar")
                host_src = "%s:%s%s" % (reference.transport, remote_archive, suffix)
            else:
                host_src = "%s:%s" % (transport, remote_root)
            recorded = args.get("record_as") or reference.text  # recorded as the task named it, not the copy
            answer = self._run_module(dict(args, src=host_src, remote_src=True, record_as=recorded), task_vars)
        if isinstance(answer.get("msg"), str):
            shown = reference.path or reference.text
            answer["msg"] = answer["msg"].replace(host_src, reference.text).replace(remote_root, shown)
        return answer

    # -- pull: controller ---------------------------------------------------------

    def _registry(self, args, reference):
        """The image's source as the module would open it, but with what the controller has: its credentials
        files and helpers, certs.d, registries.conf, CA bundle and proxy environment."""
        nested = {k: v for k, v in (args.get("registry_auth") or {}).items() if v is not None}
        top = {k: args[k] for k in ("username", "password", "auth_file") if args.get(k) is not None}
        if nested and top:
            raise ImageError("give registry credentials either in registry_auth or as username, password and "
                             "auth_file, not both", image=reference.text)
        settings = {k: _whole_number(args, k, reference) for k in ("retries", "retry_max_delay")
                    if args.get(k) is not None}
        from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import download
        from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import network as network_module
        from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import stage
        network = network_module.Network(proxy=args.get("proxy"), no_proxy=args.get("no_proxy"), image=reference.text,
                                         **settings)
        validate = boolean(args.get("validate_certs", True), strict=False)
        source = stage.open_source(reference, nested or top, validate, args.get("ca_path"),
                                   certs_dirs=[args["certs_dir"]] if args.get("certs_dir") else None,
                                   registries_conf=args.get("registries_conf"),
                                   registries_conf_d=args.get("registries_conf_d"), network=network)
        bounds = (("blob_deadline", 3600), ("image_deadline", 10800))
        deadlines = [_whole_number(args, k, reference, default) for k, default in bounds]
        if min(deadlines) <= 0:
            raise ImageError("blob_deadline and image_deadline must be positive numbers of seconds", image=reference.text)
        source.deadlines = download.Deadlines(*deadlines)
        return source

    def _pull_and_send(self, result, args, reference, cache_options, workdir, task_vars):
        """Pull a docker:// image on the controller into its blob cache and send the host what it lacks; then
        prune the cache to its bounds (never in check mode, never a blob this task used)."""
        check = self._task.check_mode
        from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import blob_cache
        from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import cache_bounds
        cache_path = cache_options["controller_cache"] or blob_cache.default_cache_dir()
        bounds = cache_bounds.CacheBounds.from_options(cache_options["controller_cache_max_age"],
                                                       cache_options["controller_cache_max_size"], reference.text)
        # the controller's policy file, read whole and checked before anything is pulled
        from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import policy as policy_module
        from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import stage
        policy = policy_module.load_policy(args["policy"], reference.text) if args.get("policy") else None
        cache = blob_cache.BlobCache.existing(cache_path) if check else blob_cache.BlobCache(cache_path)
        try:
            if not check:  # the space a killed fetch left in tmp/, freed before this task fetches anything
                cache.clear_abandoned()
            with self._registry(args, reference) as source:
                wanted = self._host_platform(args)
                resolved = source.resolve(wanted)
                # judged on the controller before the config or any layer is fetched or sent
                stage.enforce_policy(policy, reference, source, resolved, args.get("registries_d"))
                if check:  # read from the cache when it is there, else from the registry; never kept
                    config_bytes = cache.read_verified(resolved.config) if cache is not None else None
                    if config_bytes is None:
                        config_bytes = source.read_config(resolved.config)
                else:
                    with open(cache.blob(source, resolved.config, reference.text), "rb") as f:
                        config_bytes = f.read()
                diff_ids, _config = parse_config(config_bytes, reference.text, resolved.config.digest,
                                                 len(resolved.layers))
                stage.check_layer_count(diff_ids, reference.text)  # before any layer is fetched or sent
                held = self._held_layers(args, task_vars)
                ids = [c.split(":", 1)[1] for c in chain_ids(diff_ids)]
                needed = [] if check else [i for i, layer_id in enumerate(ids) if held.get(layer_id) != diff_ids[i]]
                files = _layout_files(workdir, resolved, config_bytes)
                for i in needed:
                    descriptor = resolved.layers[i]
                    files[_blob(descriptor.digest)] = cache.blob(source, descriptor, reference.text)
            # the blobs stay locked (cache.blob) until the host has them: no prune removes one before it is sent
            module_args = {k: v for k, v in args.items() if k not in _PULL_ONLY}
            answer = self._ship(module_args, reference, files, "oci", task_vars)
            pruned = [] if check or cache is None else cache.prune(bounds)
            answer.update(pulled_by="controller", sent_layers=len(needed), sent_whole_archive=False,
                          controller_fetched=list(cache.fetched) if cache is not None else [],
                          controller_cache=cache.path if cache is not None else cache_path,
                          controller_pruned=pruned)
        finally:
            if cache is not None:
                cache.close()
        result.update(answer)
        return result

    @staticmethod
    def _whole_archive(reference, resolved, needed):
        """Send an archive as it is when the host needs (nearly) all of its layers: the file is then read once.

        Copying members out reads them twice; sending layers the host has costs their bytes again. Whole,
        when the layers the host already has are at most a quarter of those it lacks.
        """
        if reference.transport not in ("oci-archive", "docker-archive") or not needed:
            return False
        sizes = [layer.size or 0 for layer in resolved.layers]
        wanted = sum(sizes[i] for i in needed)
        return sum(sizes) - wanted <= wanted * WHOLE_ARCHIVE_SKIPPED_SHARE

    def _collect(self, reference, local, source, resolved, config_bytes, needed, workdir):
        """name -> local file of what the host gets."""
        files = {}

        def write(name, data):
            path = os.path.join(workdir, name.replace("/", "_"))
            with open(path, "wb") as f:
                f.write(data)
            files[name] = path

        if reference.transport == "docker-archive":
            config_name = member_name(resolved.config.path, reference.text)
            layers = [member_name(d.path, reference.text) for d in resolved.layers]
            write("manifest.json", json.dumps([{"Config": config_name, "Layers": layers}]).encode())
            write(config_name, config_bytes)
            for i in needed:
                files[layers[i]] = self._member(source, resolved.layers[i], workdir, i)
            return files
        files.update(_layout_files(workdir, resolved, config_bytes))
        for i in needed:
            descriptor = resolved.layers[i]
            if reference.transport == "oci":
                files[_blob(descriptor.digest)] = self._in_layout(source, local, descriptor.digest)
            else:
                files[_blob(descriptor.digest)] = self._member(source, descriptor, workdir, i)
        return files

    @staticmethod
    def _in_layout(source, local, digest):
        """The path of a layer blob to send, once it is known to be a regular file inside the layout.

        The transfer reads it by path, so a blob that is a symlink (to /etc/shadow, to a key elsewhere
        on the controller) would send that file to the host before its digest could refuse it: it is
        opened as the module opens it, component by component with O_NOFOLLOW, and refused the same way.
        """
        name = _blob(digest)
        try:
            blob, _size = source.files.open(name)
        except OverlayError as e:
            raise ImageError("the layer blob cannot be sent to the host: %s" % e.cause, image=source.image, blob=digest,
                             path=os.path.join(local, name))
        blob.close()
        return os.path.join(local, name)

    @staticmethod
    def _member(source, descriptor, workdir, index):
        path = os.path.join(workdir, "layer-%d" % index)
        with source.open_blob(descriptor) as raw, open(path, "wb") as out:
            shutil.copyfileobj(raw, out, 1 << 20)
        return path


def _check_member_names(files, image):
    """Refuse, before anything is sent, a name that is not its own normalized member name.

    Each name becomes a path below the temporary directory made on the host: an
    absolute name or one with `..` (from a hostile manifest.json) would put the
    file anywhere on the host, as the connection's user or root.
    """
    for name in files:
        if member_name(name, image) != name:
            raise ImageError("refusing the file name %r: not a normalized member name" % name, image=image)


def _whole_number(args, name, reference, default=None):
    """An integer option as the module's argument spec would take it, read on the controller: a clear error, not
    a traceback, for one that is not a whole number."""
    value = args.get(name)
    if value is None:
        return default
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    except (TypeError, ValueError):
        raise ImageError("%s must be a whole number, not %r" % (name, value), image=reference.text)


def _layout_files(workdir, resolved, config_bytes):
    """An OCI layout's small files for one image, written into workdir: name in the layout -> local path."""
    files = {}

    def write(name, data):
        path = os.path.join(workdir, name.replace("/", "_"))
        with open(path, "xb") as f:
            f.write(data)
        files[name] = path

    write("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
    index = {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": [{
        "mediaType": resolved.media_type, "digest": resolved.manifest_digest, "size": len(resolved.raw)}]}
    write("index.json", json.dumps(index).encode())
    write(_blob(resolved.manifest_digest), resolved.raw)
    write(_blob(resolved.config.digest), config_bytes)
    return files


def _blob(digest):
    return "blobs/sha256/" + digest.split(":", 1)[1]
