# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


# How a module reaches a registry from the managed host: platform, credentials, TLS, registries.conf,
# deadlines, retries and proxies. overlay_image and overlay_image_info take them alike (image_request.py).
class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  platform:
    description:
      - V(os/arch[/variant]) of the image to pick from an index (a multi-platform image), for example
        V(linux/arm64) or V(linux/arm/v7).
      - Default is the managed host's own platform.
      - Read as containerd reads it. Names are normalized (V(linux/arm) is V(linux/arm/v7), V(linux/arm64) is
        V(linux/arm64/v8), V(linux/amd64/v1) is V(linux/amd64)), in the index too, and the closest platform the
        asked one runs is picked (V(linux/arm/v7) takes V(linux/arm/v6) when the index has no v7; V(linux/amd64)
        takes V(linux/386); V(linux/arm64/v9) takes V(linux/arm64/v8.5) down to V(linux/arm64), all before a
        32-bit V(linux/arm)).
    type: str
  registry_auth:
    description:
      - Credentials for a registry. Basic and Bearer-token authentication are both handled, as the registry's
        challenge asks.
      - Without credentials here, they are looked up on the managed host as skopeo does, as the user the module
        runs as - C($REGISTRY_AUTH_FILE), else the first of C($XDG_RUNTIME_DIR/containers/auth.json),
        C(~/.config/containers/auth.json) and C(~/.docker/config.json) with an entry for the registry - and
        the C(docker-credential-NAME) helpers their C(credHelpers) and C(credsStore) name are run. See
        docs/images.md for the order.
      - The user name and password given here (or as O(username) and O(password)) go to the registry the image
        is named by (or the C(location) registries.conf gives it), never to a registries.conf mirror, which gets
        only the credentials found for its own host. A short name searched in several registries
        (registries.conf's C(unqualified-search-registries)) is refused with them, since each registry tried
        would get them.
      - Never shown in results or errors.
    type: dict
    suboptions:
      username:
        description: The user name.
        type: str
      password:
        description: The password or access token.
        type: str
      auth_file:
        description:
          - A containers C(auth.json) or Docker C(config.json) on the managed host (an absolute path), read instead of the default
            files; the entry for the registry (or its most specific C(host/namespace) entry) is used, and the
            credential helper its C(credHelpers) entry for the registry or its C(credsStore) names is run.
        type: path
  username:
    description:
      - The registry user name, as community.docker's modules take it; the same as O(registry_auth.username).
      - Give the credentials either here or in O(registry_auth), not both.
    type: str
  password:
    description: The password or access token for O(username); the same as O(registry_auth.password).
    type: str
  auth_file:
    description: A containers C(auth.json) or Docker C(config.json) on the managed host (an absolute path); the
      same as O(registry_auth.auth_file).
    type: path
  validate_certs:
    description:
      - Verify the registry's TLS certificate.
      - With V(false), a registry that does not speak TLS is also reached over plain HTTP.
    type: bool
    default: true
  ca_path:
    description: A CA bundle (file) or directory of CA certificates on the managed host (an absolute path), trusted
      in addition to the system's for the registry.
    type: path
  certs_dir:
    description:
      - A C(certs.d) directory on the managed host (an absolute path), holding one C(HOST[:PORT]) directory per registry, read instead
        of the default C(/etc/containers/certs.d), else C(/etc/docker/certs.d) (the first with a directory for the
        registry), as skopeo and Docker read them.
      - In the registry's directory, C(*.crt) files are CA certificates trusted for it beside the system's and
        O(ca_path); a C(NAME.cert) with its C(NAME.key) is the client certificate presented to a registry that
        requires mutual TLS. A C(.cert) without its C(.key), or the other way round, is an error.
      - The certs.d directory and the registry's directory in it must be owned by root (or the user running the
        task) and not writable by group or others, else the task fails naming the directory; the files in it must
        be regular files (a symbolic link is not followed), each at most 1 MiB.
    type: path
    version_added: 0.2.0
  registries_conf:
    description:
      - The registries.conf (v2) on the managed host (an absolute path) that decides where a C(docker://) pull goes, as podman and
        skopeo read it; default C($CONTAINERS_REGISTRIES_CONF), else C(/etc/containers/registries.conf). A file
        named here must exist (as skopeo's C(--registries-conf)); the defaults may be missing. The files of
        O(registries_conf_d) are read after it and override it.
      - Understood are C([[registry]]) with C(prefix), C(location), C(insecure), C(blocked),
        C(mirror-by-digest-only) and C([[registry.mirror]]) (C(location), C(insecure), C(pull-from-mirror)),
        and C(unqualified-search-registries), C(short-name-mode) and C([aliases]). Any other key or TOML syntax
        (only strings, booleans and arrays of them are read) is an error naming file and line.
      - Mirrors are tried in order before the registry, the first that has the image serving the whole pull; a
        blocked registry is refused; an insecure one is reached like O(validate_certs=false).
      - A name written without a registry host (V(docker://debian)) needs an alias, or a single
        unqualified-search registry (or several, with a short-name-mode other than V(enforcing)). With no
        registries.conf at all, such a name is on Docker Hub, as for Docker.
    type: path
    version_added: 0.2.0
  registries_conf_d:
    description:
      - The directory whose C(*.conf) files are read after O(registries_conf), in name order, each overriding the
        ones before; default C(/etc/containers/registries.conf.d). An absolute path on the managed host.
    type: path
    version_added: 0.2.0
  blob_deadline:
    description:
      - Seconds a registry may take to send one blob (a layer, the config, a manifest), however steadily its
        bytes arrive; past it the pull fails naming the blob. A layer blob is downloaded before the home's
        lock is taken, so a slow registry never holds up other tasks on the host.
      - The file transports read local files and are not bounded by it.
      - With C(pull=controller) (M(strata.overlay.overlay_image)) it also bounds how long the task waits for another fork or play that is fetching
        the same blob into the controller's cache; past it the task fails saying that the cache is held by
        another run.
    type: int
    default: 3600
    version_added: 0.2.0
  image_deadline:
    description:
      - Seconds a registry pull of the whole image (manifests, config and every layer blob) may take; past it
        the pull fails. The layers completed before stay (see the description).
    type: int
    default: 10800
    version_added: 0.2.0
  retries:
    description:
      - How many times a registry request is tried again after a passing failure, which is a C(429), C(502),
        C(503) or C(504) answer, or a connection reset.
      - A layer blob whose connection is cut mid-way is resumed where it stopped (C(Range)), or read again
        whole from a registry that ignores C(Range), and verified whole; each resume counts as a retry.
      - Each retry waits what the registry asks in C(Retry-After) (seconds or a date), else 1, 2, 4, ... seconds,
        at most O(retry_max_delay). A wait that would pass O(blob_deadline) or O(image_deadline) is not made.
      - V(0) fails at the first such answer.
    type: int
    default: 5
    version_added: 0.2.0
  retry_max_delay:
    description:
      - The longest wait, in seconds, before a retry (see O(retries)). A registry asking for a longer wait in
        C(Retry-After) fails the pull at once, with the wait it asked for.
    type: int
    default: 60
    version_added: 0.2.0
  proxy:
    description:
      - The HTTP proxy through which the registry (and its token server and blob storage) is reached, as
        V(http://[user:password@]host:port). An https registry is reached through a C(CONNECT) tunnel, so TLS
        runs end to end, the registry's certificate is checked as without a proxy, and the proxy never sees the
        registry credentials. The proxy's own credentials go only to the proxy (C(Proxy-Authorization)).
      - Default is the managed host's environment, as skopeo and Docker read it (set it with the task's
        C(environment) keyword), C(HTTPS_PROXY) for https and C(HTTP_PROXY) for plain http registries
        (upper case first, then lower case).
      - A plain http registry is reached through the proxy by absolute URL, and registry credentials are then
        refused rather than shown to the proxy.
    type: str
    version_added: 0.2.0
  no_proxy:
    description:
      - Hosts reached directly, never through the proxy, as C(NO_PROXY) lists them; default the environment's
        C(NO_PROXY) (or C(no_proxy)).
      - Each entry is V(*) (no proxy at all), a host name (V(example.com) also covers its subdomains,
        V(.example.com) only them), an IP address or a CIDR range, optionally with V(:port). Loopback
        addresses are not exempt unless listed.
    type: list
    elements: str
    version_added: 0.2.0
'''
