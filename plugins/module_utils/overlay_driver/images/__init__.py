# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images as sources of layers: references, manifests, the transports, and staging into a LayerStore.

Everything here is standard library only, since it runs on the managed host.
"""
