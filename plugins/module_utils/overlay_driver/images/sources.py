# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a docker:// pull goes and how the registry is opened: registries.conf's endpoints, the credentials of
each, and the Registry (or the first of several that has the image).

Apart from stage.py, so that a run that only reads a registry (overlay_image_info, and through it a
re-staging of an image already there) ships and compiles the registry client without the stager.
"""

import functools

from . import registries_conf as registries_conf_module
from .certs import DEFAULT_CERTS_DIRS
from .credentials import credentials_for, without_inline
from .errors import ImageError
from .mirrors import FirstAvailable
from .network import Network
from .reference import written_short_name

DEFAULT_TIMEOUT = 60  # seconds without progress on a registry connection


def registry_endpoints(reference, registries_conf=None, registries_conf_d=None, registry_auth=None):
    """Where registries.conf sends a docker:// pull, in order; its errors (a file it cannot read, a blocked
    registry, a short name without alias, registry_auth for a name searched in several registries) come from
    here, before anything is asked of a registry."""
    found = registries_conf_module.endpoints(
        registries_conf_module.load(registries_conf, registries_conf_d, reference.text), reference)
    _one_registry_for_a_password(reference, found, registry_auth)
    return found


def _one_registry_for_a_password(reference, endpoints, registry_auth):
    """registry_auth's username and password belong to one registry. A short name searched in several
    (unqualified-search-registries) would hand them to each one tried before the one that has the image:
    refused, naming the registries, rather than sent to hosts the operator never named."""
    if not any((registry_auth or {}).get(k) for k in ("username", "password")):
        return
    hosts = []
    for endpoint in endpoints:
        # where they would go: a [[registry]] location is the registry's own; a mirror never gets them
        if not endpoint.mirror and endpoint.reference.host not in hosts:
            hosts.append(endpoint.reference.host)
    if len(hosts) > 1:
        raise ImageError("registry_auth's username and password are for one registry, and the short name "
                         "%r is searched in %d (%s, from registries.conf's unqualified-search-registries): write "
                         "the registry in src (as docker://%s/%s) so that they go to it alone, or keep the "
                         "credentials in an auth file, which gives each registry only its own"
                         % (written_short_name(reference), len(hosts), ", ".join(hosts), hosts[0],
                            written_short_name(reference)), image=reference.text)


def open_registry(reference, registry_auth=None, validate_certs=True, ca_path=None, timeout=DEFAULT_TIMEOUT,
                  certs_dirs=None, registries_conf=None, registries_conf_d=None, network=None):
    """The source of a docker:// image: its registry, or the first of registries.conf's mirrors and registry
    that has it; network: a Network (how a registry is reached)."""
    # http.client and ssl only when a registry is pulled: file transports start faster without them.
    from .registry import Registry  # pylint: disable=import-outside-toplevel
    network = network or Network()
    endpoints = registry_endpoints(reference, registries_conf, registries_conf_d, registry_auth)
    certs_dirs = DEFAULT_CERTS_DIRS if certs_dirs is None else certs_dirs

    def open_endpoint(endpoint):
        there = endpoint.reference
        # registry_auth's username and password are the registry's: a mirror (another host, run by whoever
        # registries.conf names) gets only what the auth files and helpers hold for its own host
        auth = without_inline(registry_auth) if endpoint.mirror else registry_auth
        credentials = credentials_for(auth, there.host, there.repository, reference.text)
        registry = Registry(there, credentials, validate_certs and not endpoint.insecure, ca_path, timeout,
                            certs_dirs, retry=network.retry, proxies=network.proxies)
        registry.named_reference = endpoint.named
        return registry

    if len(endpoints) == 1:
        return open_endpoint(endpoints[0])
    return FirstAvailable(reference, [(e.what, functools.partial(open_endpoint, e)) for e in endpoints])
