# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay layer store behind every strata.overlay module.

Plain Python (stdlib only) so that modules, tests and benchmarks share one
implementation. ``driver`` is the seed's graphdriver; ``store`` adds what the
seed moved out of the driver: persisted holders, recorded parents and diffs.
"""
