#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: overlay_image
short_description: Stage an OCI or Docker image's layers as a chain of layers
version_added: 0.2.0
description:
  - Stages the layers of an image, in order, each on the one before, from an OCI image layout, an
    OCI archive, a C(docker save) archive or a registry.
  - Each layer's id is the hex of its ChainID (image-spec), so layers shared by images are stored once and
    staging an image again changes nothing and reads only its manifest (the home remembers each staged
    image's config under C(.strata/images), used only while every layer it names is there with its diff_id).
  - Every blob is verified while it streams, its size and digest against the manifest and the uncompressed
    tar against the config's diff_id, before its layer becomes visible.
  - A failure leaves the layers of the image that were completed before it (they are whole and named by
    their content, so the next run resumes there); the failing layer is not created.
  - Accepted are OCI and Docker v2 schema 2 manifests and indexes, with layers as tar, tar+gzip or tar+zstd.
    Docker schema 1 manifests, foreign (non-distributable) layers and unknown media types are errors.
  - Every image staged is recorded with the home (C(.strata/image-records)), with its reference, manifest digest,
    platform and the ChainIDs of its layers. O(state=absent) uses these records to remove an image.
  - A registry pull the host makes, whose image is already staged and recorded in a home with nothing else for
    this module to do, is answered by M(strata.overlay.overlay_image_info) alone (the action plugin asks it first
    when the task gives no option but the ones it takes), with the same result and less shipped to the host and run.
options:
  state:
    description:
      - V(present) stages the image and records it with the home.
      - V(absent) removes the image recorded under O(src), which is then the reference it was staged from or
        its manifest (or config) digest. Each of its layers goes unless another recorded image uses it, a
        holder holds it, or a layer that stays is built on it (a writable layer on the image); those stay and
        are listed in RV(kept) with the reason. The image's record goes too, unless a holder or a layer built on
        it keeps one of its layers; then the record stays, so the same O(state=absent) removes those layers once
        they are free. Nothing is read from the source.
      - An image that is not recorded, or a home that does not exist, is V(ok) and unchanged.
    type: str
    choices: [present, absent]
    default: present
    version_added: 0.2.0
  record_as:
    description:
      - The reference the image is recorded under (what O(state=absent) finds it by); default O(src).
      - The action plugin sets it to the task's O(src) when it sends an image from the controller, where the
        module stages from a temporary copy.
    type: str
    version_added: 0.2.0
  src:
    description:
      - The image, in the transport syntax of skopeo and podman.
      - V(oci:PATH[:REF]), an OCI image layout directory; REF picks the image by its
        C(org.opencontainers.image.ref.name) annotation.
      - V(oci-archive:PATH[:REF]), a tar of an OCI image layout.
      - V(docker-archive:PATH[:NAME:TAG]) or V(docker-archive:PATH:@INDEX), a C(docker save) archive.
      - V(docker://HOST[:PORT]/REPO[:TAG|@DIGEST]), a registry (OCI distribution API); a name without a host
        is on Docker Hub. The default tag is C(latest).
      - A name as C(docker pull) takes it (C(debian:12), C(library/debian)) is no reference here; the error says
        what to write, V(docker://docker.io/library/debian:12), or V(docker://debian:12) for a short name resolved
        by the host's registries.conf (see O(registries_conf)).
      - O(name) is an alias, as community.docker spells the image.
    type: str
    required: true
    aliases: [name]
  remote_src:
    description:
      - For the file transports. V(false) reads PATH on the controller and sends the host only what it lacks
        (the manifest, the config and the layers it does not have yet), into a temporary directory that is
        always removed. V(true) reads PATH on the managed host, where it must be absolute (a relative PATH is
        refused before anything is touched, since it would be taken from the module's working directory there).
      - A registry is pulled by the managed host itself, unless O(pull=controller).
    type: bool
    default: false
  pull:
    description:
      - Who pulls a C(docker://) image from the registry.
      - V(host) (the default) - the managed host itself; the controller is never in the data path.
      - V(controller) - the controller, for hosts that cannot reach the registry. The action plugin resolves the
        image for the host's platform (asked of the host, or O(platform)), fetches the config and the layer blobs
        the host lacks into the controller's blob cache (see O(controller_cache)), verified against their
        digests, and sends the host an OCI layout with only those blobs, as for O(src=oci:PATH). Each blob is
        fetched from the registry once for the whole play, however many hosts and forks need it.
      - With V(controller), everything that decides how the registry is reached is read on the controller, as
        the user running the play - O(registry_auth) (its C(auth_file) too) and the default credential files
        and helpers, O(ca_path), O(certs_dir) (default C(/etc/containers/certs.d), else C(/etc/docker/certs.d)),
        O(registries_conf), O(registries_conf_d), O(proxy), O(no_proxy) and the C(HTTPS_PROXY) environment,
        O(validate_certs), O(retries), O(retry_max_delay), O(policy) and O(registries_d). None of them is sent to
        the host.
      - With V(controller) in check mode, the controller reads the manifest and the config from the registry
        (the config from its cache when it is there) and writes neither the cache nor any layer to the host.
      - With V(controller), a signature O(policy) is read and applied on the controller, to the manifest, before
        the config or any layer is fetched or sent; the host stages what the controller allowed.
      - The file transports are read by the controller anyway (unless O(remote_src=true)); this option does not
        change them.
    type: str
    choices: [host, controller]
    default: host
    version_added: 0.2.0
  controller_cache:
    description:
      - With O(pull=controller), the directory on the controller where registry blobs are kept, by digest
        (C(blobs/sha256/HEX)), for later runs and other hosts. Each blob's modification time records when a
        task last used it. Nothing is removed unless O(controller_cache_max_age) or O(controller_cache_max_size)
        bounds the cache.
      - Default C($STRATA_OVERLAY_CONTROLLER_CACHE), else C($XDG_CACHE_HOME/strata.overlay), else
        C(~/.cache/strata.overlay) of the user running the play. Made 0700 when missing.
      - The directory must be owned by the user running the play and writable by nobody else, and every directory
        above it owned by root or that user and not writable by others (unless sticky, as C(/tmp)); otherwise the
        task fails naming the directory. A cached blob whose content does not match its digest is fetched again,
        never sent.
    type: path
    version_added: 0.2.0
  controller_cache_max_age:
    description:
      - With O(pull=controller), after the host got the image, remove from O(controller_cache) the blobs no task
        has used for more than this many days (a number; V(0) keeps only what this task used).
      - A blob this task used is never removed, nor one another task or fork is fetching or sending at that
        moment (it holds the blob's lock). Only files named C(blobs/sha256/HEX) are removed, never through a
        symlink. Check mode removes nothing.
      - Default none - nothing is removed. The collection cannot know which images later plays, or other
        playbooks sharing the cache, will want again, and for hosts that cannot reach the registry the cache may
        be the quickest place left to get them from; bound the cache when its disk matters more.
    type: float
    version_added: 0.2.0
  controller_cache_max_size:
    description:
      - With O(pull=controller), after the host got the image, remove the least recently used blobs from
        O(controller_cache) until the blobs left hold at most this many bytes; applied after
        O(controller_cache_max_age). Blobs this task used count but are never removed, so the cache may stay
        above the bound while one image alone is larger.
      - Bytes as an integer, or a size such as V(500M) or V(20G) (K, M, G, T are powers of 1024).
      - The same rules as O(controller_cache_max_age) - blobs in use are kept, only C(blobs/sha256/HEX) files are
        removed, check mode removes nothing. Default none - nothing is removed.
    type: raw
    version_added: 0.2.0
  policy:
    description:
      - The signature policy the image must meet before anything of it but its manifest is read, in the
        containers-policy.json(5) format podman and skopeo use; a path on the managed host, or V(host) for
        C(/etc/containers/policy.json). Without it no signature is checked.
      - The most specific scope of the image's transport decides (C(HOST[:PORT]/REPO:TAG) or C(@DIGEST),
        C(HOST[:PORT]/REPO), its namespaces, C(HOST[:PORT]), C(*.DOMAIN)), else the transport's C("") scope,
        else C(default); every requirement of that scope must be met. A policy that covers no scope of the
        image and has no C(default) refuses it.
      - Requirements are C(insecureAcceptAnything), C(reject), C(signedBy) (GPG simple signing, verified with
        the host's C(gpg) program) and C(sigstoreSigned) (cosign signatures at the C(sha256-HEX.sig) tag, by a
        key given as C(keyPath) or C(keyData), verified with the Python C(cryptography) module or else the
        C(openssl) program; keyless C(fulcio) and C(rekorPublicKeyPath) are refused as not supported). An
        unknown type or key is an error.
      - Image archives and layouts carry no signatures, so a requirement for a signature refuses them.
        With O(remote_src=false) such an image is sent to a private temporary directory on the host first and
        judged there, before anything is staged, since the policy is the host's file; a refused image costs
        the transfer only.
      - The file and its directory must be owned by root (or the user running the task) and not writable by
        group or others; a symbolic link is not followed. Check mode checks the policy too.
      - With O(pull=controller) the policy (and O(registries_d)) is read and applied on the controller, before the
        config or any layer is fetched or sent; it is a path on the controller then, and V(host) is the
        controller's C(/etc/containers/policy.json).
    type: str
    version_added: 0.2.0
  registries_d:
    description:
      - The registries.d directory on the managed host (an absolute path) whose C(*.yaml) files say where a registry's simple
        signing signatures are looked up (C(lookaside)), as skopeo reads them; default
        C(/etc/containers/registries.d). Read only when the O(policy) needs such a signature.
      - An C(http://) or C(https://) lookaside is reached as the registry is, for the lookaside's own host
        and port - through O(proxy) unless O(no_proxy) names it, trusting the system's CAs, O(ca_path) and the
        C(*.crt) of its own C(HOST[:PORT]) directory in O(certs_dir) - and is never sent the registry's
        credentials.
    type: path
    version_added: 0.2.0
  max_layer_size:
    description:
      - The most bytes one layer's uncompressed tar may hold (default 64 GiB). A small compressed blob can
        expand to any size; a layer is refused once it would pass this bound, before those bytes are
        written, and is not created.
      - Before a layer is fetched, the home's filesystem must have its compressed size free (twice that for
        a registry blob, which is downloaded into the home's C(.strata/tmp) first).
      - Bytes as an integer, or a size such as V(10M), V(64G) or V(1.5GiB) (K, M, G, T are powers of 1024).
    type: raw
    default: 68719476736
    version_added: 0.2.0
  max_image_size:
    description:
      - The most bytes the uncompressed layers that one run stages may hold together (default 256 GiB); the
        layer that would pass it is refused as for O(max_layer_size). Layers already in the home do not count.
      - Bytes as an integer, or a size such as V(10M), V(64G) or V(1.5GiB) (K, M, G, T are powers of 1024).
    type: raw
    default: 274877906944
    version_added: 0.2.0
extends_documentation_fragment:
  - strata.overlay.common
  - strata.overlay.registry
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the task can be executed on the
      controller.
    support: full
  check_mode:
    support: full
    details:
      - Reads the manifest and the config only and reports which layers would be staged.
      - With O(state=absent), reports which layers would be removed and which kept, and removes nothing.
  diff_mode:
    support: full
    details: Shows the image's layers present before and after (with O(state=absent), those that stay).
notes:
  - Layers are read and applied as they stream, never stored twice; zstd layers need the C(zstd) program or the
    Python C(zstandard) module on the host.
  - Manifests are limited to 4 MiB, configs to 8 MiB, manifests to 1000 layers. Network operations time out after
    60 seconds without progress, and each blob and the whole pull after O(blob_deadline) and O(image_deadline),
    retries and their waits included.
  - An image of more than 125 layers is refused before anything is written, as Docker refuses it. Each layer of
    the C(overlay) layout holds a hardlink copy of the whole tree below it, so a deep image of tiny layers would
    cost the home far more than the image's size.
seealso:
  - module: strata.overlay.overlay_apply_diff
    description: Applies one layer tarball that is not part of an image.
  - module: strata.overlay.overlay_layer
    description: Creates the writable layer on top of the image, with RV(top) as its parent.
'''

EXAMPLES = r'''
- name: Stage an image from a registry, pulled by the host itself
  strata.overlay.overlay_image:
    src: docker://registry.example.com:5000/base/debian:12
    registry_auth:
      username: puller
      password: "{{ vault_registry_password }}"
    ca_path: /etc/pki/registry-ca.pem
  register: image

- name: A writable layer on top of it
  strata.overlay.overlay_layer:
    id: web
    parent: "{{ image.top }}"

- name: Hosts that cannot reach the registry - the controller pulls once, each host gets what it lacks
  strata.overlay.overlay_image:
    src: docker://registry.example.com:5000/base/debian:12
    pull: controller
    ca_path: /etc/pki/registry-ca.pem   # on the controller

- name: Stage an OCI layout from the controller, sending only the layers the host lacks
  strata.overlay.overlay_image:
    src: oci:images/app:v1

- name: Stage a docker save archive already on the host
  strata.overlay.overlay_image:
    src: docker-archive:/srv/images/app.tar:example/app:1.2
    remote_src: true

- name: Remove the image staged from oci:images/app:v1, keeping the layers other images or layers need
  strata.overlay.overlay_image:
    src: oci:images/app:v1
    state: absent
  register: removed

- name: Remove an image by its manifest digest
  strata.overlay.overlay_image:
    src: sha256:51c1361bd07960acaa0cc30123486bcc400801b990e3a18c9bfaa5ee30fc728f
    state: absent

- name: The arm64 image of a multi-platform image, with credentials from an auth file
  strata.overlay.overlay_image:
    src: docker://ghcr.io/example/tool@sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
    platform: linux/arm64
    registry_auth:
      auth_file: /root/.config/containers/auth.json
'''

RETURN = r'''
images:
  description: With O(state=absent), the recorded images O(src) named (each C(reference), C(manifest_digest),
    C(config_digest), C(platform) and C(layers), the ChainIDs bottom first).
  returned: when O(state=absent)
  type: list
  elements: dict
removed:
  description: With O(state=absent), the ids of the image layers removed (would be, in check mode), top first.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [6f5cab0baaf199b9d876f5edcb27880aed80ead0f9698033be47189680842809]
kept:
  description: With O(state=absent), the image's layers that stay, each C({id, reason}); the reason is another
    image that uses it, the holders that hold it, or the layers built on it.
  returned: when O(state=absent)
  type: list
  elements: dict
  sample: [{"id": "f73ce02f4e6986aa6a4a405e813307cc2d674744279f6b201a119fbd1d7ff432", "reason": "layer web is built on it"}]
top:
  description: The id of the image's last layer, the parent for a writable layer on top of the image.
  returned: when O(state=present)
  type: str
  sample: 6f5cab0baaf199b9d876f5edcb27880aed80ead0f9698033be47189680842809
layers:
  description: The image's layers, base first.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: The layer id, the hex of its ChainID.
      type: str
      sample: f73ce02f4e6986aa6a4a405e813307cc2d674744279f6b201a119fbd1d7ff432
    diff_id:
      description: The digest of the uncompressed layer tar, from the image config.
      type: str
      sample: sha256:f73ce02f4e6986aa6a4a405e813307cc2d674744279f6b201a119fbd1d7ff432
    digest:
      description: The digest of the layer blob as the manifest names it (the diff_id for a legacy C(docker save)
        layer, which has no other).
      type: str
      sample: sha256:dbc1872c86d78ea35075a731a393254154fd7063dba7c8e6d96edf1726edf273
    size:
      description: The blob's size in bytes.
      type: int
      sample: 31457280
    changed:
      description: Whether this run staged the layer (would stage it, in check mode).
      type: bool
      sample: true
recorded:
  description:
    - Whether this run wrote the image's record in the home (a first staging, or the same layers staged under
      another reference or platform); would write, in check mode. Not a change by itself - the task's C(changed) says
      whether a layer was staged.
  returned: when O(state=present)
  type: bool
  sample: true
manifest_digest:
  description: The digest of the image manifest that was staged (after index selection); null for a
    C(docker save) archive, which has no manifest.
  returned: success
  type: str
  sample: sha256:51c1361bd07960acaa0cc30123486bcc400801b990e3a18c9bfaa5ee30fc728f
config_digest:
  description: The digest of the image config (Docker's image id).
  returned: success
  type: str
  sample: sha256:efdc64415e1f78319e15686b993a10f8c041cc86c07c24f6a2d58b6fafb446de
config:
  description: The image config's C(config) object (Env, Entrypoint, Cmd, WorkingDir, User, Labels, ...).
  returned: success
  type: dict
  sample: {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/app/run.sh"], "WorkingDir": "/app"}
bytes:
  description: Bytes of layer blobs read by this run.
  returned: success
  type: int
  sample: 31457280
elapsed:
  description: Seconds the staging took on the host.
  returned: success
  type: float
  sample: 4.2
fetched_bytes:
  description: Bytes of layer blobs fetched by this run (the same as RV(bytes)); 0 when every layer was there.
  returned: success
  type: int
  sample: 31457280
seconds:
  description: Seconds the staging took on the host (the same as RV(elapsed)).
  returned: success
  type: float
  sample: 4.2
sent_layers:
  description: How many layer blobs the controller sent to the host (O(remote_src=false) with a file transport, or
    O(pull=controller)).
  returned: when the image was read on the controller
  type: int
  sample: 1
pulled_by:
  description: V(controller) when the controller pulled the image from the registry (O(pull=controller)).
  returned: when O(pull=controller)
  type: str
  sample: controller
controller_fetched:
  description: The digests of the blobs this task fetched from the registry into the controller's cache; empty when
    the cache (filled for an earlier host or run) had them all.
  returned: when O(pull=controller)
  type: list
  elements: str
controller_pruned:
  description: The digests of the blobs this task removed from the controller's cache to keep it within
    O(controller_cache_max_age) and O(controller_cache_max_size); empty when nothing was removed (always in check
    mode).
  returned: when O(pull=controller)
  type: list
  elements: str
controller_cache:
  description: The controller's blob cache directory that was used.
  returned: when O(pull=controller)
  type: str
  sample: /home/ops/.cache/strata.overlay
sent_whole_archive:
  description: Whether an archive was sent as it is because the host lacked most of it (read once), rather than
    the missing layers copied out of it.
  returned: when the image was read on the controller
  type: bool
  sample: false
'''

# first: a signal while the rest is imported still ends in JSON
from ansible_collections.strata.overlay.plugins.module_utils import early_signals  # noqa: F401 pylint: disable=W0611
from ansible_collections.strata.overlay.plugins.module_utils.common import argument_spec, flag, one_of, run_module
from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.image_request import REGISTRY_ARGS
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule


def main():
    module = LayerModule(argument_spec=argument_spec(
        src=dict(type="str", required=True, aliases=["name"]), remote_src=flag(), state=one_of("present", "absent"),
        pull=one_of("host", "controller"), controller_cache=dict(type="path"),
        controller_cache_max_age=dict(type="float"), controller_cache_max_size=dict(type="raw"),
        record_as=dict(type="str"), policy=dict(type="str"), registries_d=dict(type="path"),
        max_layer_size=dict(type="raw", default=64 << 30), max_image_size=dict(type="raw", default=256 << 30),
        **REGISTRY_ARGS),
        supports_check_mode=True)
    run_module(module, ImageManager)


if __name__ == "__main__":
    main()
