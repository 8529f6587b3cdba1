# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send an image from the controller, but only what the host lacks.

A registry is pulled by the host itself, and remote_src: true reads the file
there: both go straight to the module. Otherwise the image is read on the
controller (manifest and config only), the host is asked which of its layers it
already holds (overlay_info: ids and diff_ids), and the host gets an OCI layout
(or, for docker save, a directory of the archive's files) in a temporary
directory with the manifest, the config and only the layer blobs it lacks; the
module then stages from there and the directory is removed. Blobs of a layout
directory are sent from where they are. An archive whose missing layers are
most of it (a first staging) is sent as it is, so it is read once; otherwise
the missing members are copied out into a controller temp directory first (a
transfer needs a file). Check mode sends no layer at all.
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

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import manifests
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.digests import chain_ids
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.files import member_name
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import (open_source,
                                                                                                 read_image)
from ansible_collections.strata.overlay.plugins.plugin_utils.source_action import SourceAction

# The options of module_utils/common.py COMMON_ARGS, which is not imported here: it brings the whole driver
# (system calls included) onto the controller.
_COMMON = ("home", "uid_maps", "gid_maps")
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
        try:
            reference = parse_reference(args.get("src"))
        except OverlayError as e:
            return dict(result, failed=True, msg=e.message)
        if remote_src or not reference.is_file:
            result.update(self._run_module(args, task_vars))
            return result
        try:
            local = self._find_needle("files", reference.path)
        except AnsibleError as e:
            return dict(result, failed=True, msg="image %s: %s not found on the controller: %s"
                        % (reference.text, reference.path, to_text(e)))
        workdir = tempfile.mkdtemp(prefix="strata-image-")
        try:
            return self._send_and_stage(result, args, reference, local, workdir, task_vars)
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
        local_ref = reference.with_path(local)
        with open_source(local_ref) as source:
            wanted = self._host_platform(args) if reference.transport != "docker-archive" else None
            resolved, diff_ids, _config = read_image(source, wanted, reference.text)
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
                transport = "docker-archive" if reference.transport == "docker-archive" else "oci"
                host_src = "%s:%s" % (transport, remote_root)
            recorded = args.get("record_as") or reference.text  # recorded as the task named it, not the copy
            answer = self._run_module(dict(args, src=host_src, remote_src=True, record_as=recorded), task_vars)
        if isinstance(answer.get("msg"), str):
            answer["msg"] = answer["msg"].replace(host_src, reference.text).replace(remote_root, reference.path)
        answer["sent_layers"] = len(needed)
        answer["sent_whole_archive"] = "image.tar" in files
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
        write("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        index = {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": [{
            "mediaType": resolved.media_type, "digest": resolved.manifest_digest, "size": len(resolved.raw)}]}
        write("index.json", json.dumps(index).encode())
        write(_blob(resolved.manifest_digest), resolved.raw)
        write(_blob(resolved.config.digest), config_bytes)
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


def _blob(digest):
    return "blobs/sha256/" + digest.split(":", 1)[1]
