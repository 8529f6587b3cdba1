# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image's signatures, fetched only when the signature policy asks for them (policy.py).

The policy hands each requirement an object with `simple_signatures()` and
`sigstore_signatures()`; a policy of `insecureAcceptAnything` or `reject`
never calls them, so it costs no request. Signatures name the image by its
manifest digest and are looked up under the reference the task named (not
under a mirror's name: a mirror serves the same manifests, and the
signatures are the image's own).
"""

from .policy import NoSignatures


class RegistrySignatures:
    """The signatures of a registry image: simple signing from registries.d's lookaside, sigstore attachments."""

    def __init__(self, reference, source, manifest_digest, registries_d=None):
        self.reference = reference
        self.source = source
        self.manifest_digest = manifest_digest
        self.registries_d = registries_d
        self.looked_in = ""  # where simple signatures were looked for, for messages
        self._simple = None
        self._sigstore = None

    def simple_signatures(self):
        """The simple-signing signatures (bytes each), in lookaside order; [] when there are none."""
        if self._simple is None:
            # a pull whose policy needs no simple signature never reads registries.d
            from .lookaside import fetch_signatures, load_registries_d, lookaside_for  # pylint: disable=import-outside-toplevel
            image = self.reference.text
            config = load_registries_d(self.registries_d, image)
            entry = lookaside_for(config, self.reference)
            from .lookaside_http import shown  # pylint: disable=import-outside-toplevel
            self.looked_in = " in the lookaside %s (%s)" % (shown(entry[0]), entry[1])
            deadlines = getattr(self.source, "deadlines", None)  # the image's, when it came from a registry
            # how the task reaches its registry (proxy, ca_path, certs.d), applied to the lookaside's own host
            transport = getattr(self.source, "lookaside_transport", None)
            self._simple = fetch_signatures(entry[0], self.reference, self.manifest_digest, image,
                                            deadline=deadlines.image_at if deadlines is not None else None,
                                            transport=transport)
        return self._simple

    def sigstore_signatures(self):
        """The sigstore attachments of the manifest (sigstore_attachments.Attachment each: payload, signature, or
        why the layer cannot be one), read once from the place the image comes from; [] when there are none."""
        if self._sigstore is None:
            from .sigstore_attachments import fetch_attachments  # pylint: disable=import-outside-toplevel
            self._sigstore = fetch_attachments(self.source, self.manifest_digest, self.reference.text)
        return self._sigstore


def image_signatures(reference, source, manifest_digest, registries_d=None):
    """The lazy signatures of the image source reads (reference: what the task named)."""
    if reference.transport != "docker":
        return NoSignatures(reference)
    return RegistrySignatures(reference, source, manifest_digest, registries_d)
