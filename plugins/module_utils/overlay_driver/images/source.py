# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every image source is, whatever its transport: the image it reads and a context that closes it.

A source (oci_layout.py, docker_archive.py, registry.py) answers resolve(),
read_config(), open_blob() and has_blob(); stage.py and the action plugin use
it in a `with` block. The sources read from files (a layout directory or a tar,
files.FileSource) hold those files open until the block ends; a registry holds
nothing between requests.
"""


class ImageSource:
    remote = False  # True for a registry: its blobs are downloaded before the home's lock is taken

    def __init__(self, reference):
        self.reference = reference
        self.image = reference.text  # how every message names the image

    def close(self):
        """Release what the source holds open; nothing, unless it reads files."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
