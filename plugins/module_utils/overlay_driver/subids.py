# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the home's id maps hand out ids that /etc/subuid or /etc/subgid give to a user.

Under maps, the layers' files and directories belong to the host ids the maps
name, beginning with the remapped root. A range that /etc/subuid (or subgid)
gives to a user is one that user can act as (newuidmap lets them map it into
their own user namespace), so that user could change layers that root mounts
and reads. On Debian and Ubuntu the first user gets 100000-165535, the range
most examples use. Nothing is refused (the operator may mean it, e.g. for a
rootless runtime of that user): overlay_info and the preflight role warn.

The same holds for an account's own id: a map whose host range holds the uid of
an account in /etc/passwd (or the gid of a group in /etc/group) makes that account
the owner of layer files, whatever it is given in /etc/subuid. An identity map
(container id = host id) changes no owner, and root is root either way: neither
is warned about.
"""

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
PASSWD = "/etc/passwd"
GROUP = "/etc/group"
# accounts named in one warning before the rest are counted
NAMED_ACCOUNTS = 5


def read_ranges(path):
    """[(owner, first, count)] of a subordinate id file; missing or unreadable is none, bad lines are skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return []
    ranges = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3:
            continue
        try:
            first, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if first >= 0 and count > 0:
            ranges.append((fields[0], first, count))
    return ranges


def read_accounts(path):
    """[(name, id)] of a passwd or group file (the third field); missing or unreadable is none, bad lines are
    skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 22)
    except OSError:
        return []
    accounts = []
    for raw in data.decode("utf-8", "replace").splitlines():
        fields = raw.strip().split(":")
        if len(fields) < 3 or not fields[0] or fields[0].startswith(("#", "+", "-")):
            continue
        try:
            number = int(fields[2])
        except ValueError:
            continue
        if number > 0:
            accounts.append((fields[0], number))
    return accounts


def account_overlaps(maps, accounts, what, kind, path):
    """One message per (non-identity) map range that holds the id of an account of path."""
    out = []
    for m in maps:
        if m.container_id == m.host_id:
            continue
        inside = sorted((number, name) for name, number in accounts if m.host_id <= number < m.host_id + m.size)
        if not inside:
            continue
        named = ", ".join("%s (%s %d)" % (name, kind, number) for number, name in inside[:NAMED_ACCOUNTS])
        if len(inside) > NAMED_ACCOUNTS:
            named += " and %d more" % (len(inside) - NAMED_ACCOUNTS)
        out.append("%s %d:%d:%d holds the %ss of accounts in %s: %s; each owns the layers' files of the container "
                   "%s its id maps to, and can change them; give the maps a range no account or user has"
                   % (what, m.container_id, m.host_id, m.size, kind, path, named, kind))
    return out


def overlaps(maps, ranges, what, path):
    """One message per map range that shares host ids with a range of path."""
    out = []
    for m in maps:
        for owner, first, count in ranges:
            low, high = max(m.host_id, first), min(m.host_id + m.size, first + count)
            if low < high:
                out.append("%s %d:%d:%d shares host ids %d-%d with %s's range %d:%d in %s: that user can act as "
                           "the owners of the layers' files; give the maps a range no user has"
                           % (what, m.container_id, m.host_id, m.size, low, high - 1, owner, first, count, path))
    return out


def map_warnings(uid_maps, gid_maps, subuid=None, subgid=None, passwd=None, group=None):
    """Warnings for the (parsed) maps against the subordinate id files (default SUBUID, SUBGID) and the
    accounts (default PASSWD, GROUP); [] without maps."""
    subuid = SUBUID if subuid is None else subuid
    subgid = SUBGID if subgid is None else subgid
    passwd = PASSWD if passwd is None else passwd
    group = GROUP if group is None else group
    warnings = []
    if uid_maps:
        warnings += overlaps(uid_maps, read_ranges(subuid), "uid_maps", subuid)
        warnings += account_overlaps(uid_maps, read_accounts(passwd), "uid_maps", "uid", passwd)
    if gid_maps:
        warnings += overlaps(gid_maps, read_ranges(subgid), "gid_maps", subgid)
        warnings += account_overlaps(gid_maps, read_accounts(group), "gid_maps", "gid", group)
    return warnings
