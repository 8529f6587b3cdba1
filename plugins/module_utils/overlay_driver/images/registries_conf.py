# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""registries.conf (v2) and registries.conf.d: where a docker:// pull really goes, as podman and skopeo decide.

Read are `/etc/containers/registries.conf` (or `$CONTAINERS_REGISTRIES_CONF`)
and then `registries.conf.d/*.conf` in name order, each file overriding the
ones before it: a `[[registry]]` replaces one with the same prefix,
`unqualified-search-registries` and `short-name-mode` replace the earlier
value, `[aliases]` are merged name by name. Only the keys below are
understood; any other key, and the v1 format, is refused naming file and
line, since a pull that ignored a `blocked` it could not read would be wrong:

- `[[registry]]`: `prefix` (HOST[/PATH] or `*.DOMAIN`), `location`,
  `insecure`, `blocked`, `mirror-by-digest-only`, and `[[registry.mirror]]`
  with `location`, `insecure`, `pull-from-mirror` (all, digest-only,
  tag-only);
- `unqualified-search-registries`, `short-name-mode` (enforcing, permissive,
  disabled) and `[aliases]`.

For an image, the `[[registry]]` with the longest matching prefix decides:
blocked is refused; otherwise its mirrors (those pull-from-mirror allows for
a pull by tag or by digest) are tried in order, then its location (the
prefix rewritten), the first that has the image serving the whole pull.
A short name (no registry host written) is resolved by an alias; without
one it is refused, unless a single unqualified-search registry (any mode) or
a non-enforcing mode with search registries says where to look. With no
registries.conf at all, short names keep Docker's meaning (docker.io).
"""

import os

from .errors import ImageError
from .reference import registry_name, written_short_name
from .toml_subset import Table, TomlError, parse
from .trusted_files import list_dir, read_trusted

DEFAULT_CONF = "/etc/containers/registries.conf"
DEFAULT_CONF_D = "/etc/containers/registries.conf.d"
MAX_CONF = 1 << 20
SHORT_NAME_MODES = ("enforcing", "permissive", "disabled")
PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")
_TOP_KEYS = ("unqualified-search-registries", "short-name-mode", "registry", "aliases")
_REGISTRY_KEYS = ("prefix", "location", "insecure", "blocked", "mirror-by-digest-only", "mirror")
_MIRROR_KEYS = ("location", "insecure", "pull-from-mirror")


class Mirror:
    __slots__ = ("location", "insecure", "pull_from_mirror")

    def __init__(self, location, insecure, pull_from_mirror):
        self.location = location
        self.insecure = insecure
        self.pull_from_mirror = pull_from_mirror


class RegistryEntry:
    __slots__ = ("prefix", "location", "insecure", "blocked", "mirrors", "where")

    def __init__(self, prefix, location, insecure, blocked, mirrors, where):
        self.prefix = prefix
        self.location = location
        self.insecure = insecure
        self.blocked = blocked
        self.mirrors = mirrors
        self.where = where  # FILE:LINE, for messages

    def matches(self, name):
        """Whether this entry's prefix covers name (HOST/REPO), as containers/image matches prefixes."""
        if self.prefix.startswith("*."):
            host = name.split("/", 1)[0].split(":", 1)[0]
            return host.endswith(self.prefix[1:])
        return name == self.prefix or (name.startswith(self.prefix) and name[len(self.prefix)] in "/:@")

    def rewrite(self, name, location):
        if self.prefix.startswith("*."):
            host = name.split("/", 1)[0]
            return location + name[len(host):] if location else name
        return location + name[len(self.prefix):]


class Endpoint:
    """One place to pull from: the reference there, whether it is insecure, and what it is, for messages.

    named is the full name the pull means there, after a short name's alias or search registry and before
    a mirror or a location rewrite: what containers/image judges by the signature policy and looks up
    signatures for, since a mirror serves the image of that name."""

    __slots__ = ("reference", "insecure", "what", "named", "mirror")

    def __init__(self, reference, insecure, what, named=None, mirror=False):
        self.reference = reference
        self.insecure = insecure
        self.what = what
        self.named = named or reference
        self.mirror = mirror  # a [[registry.mirror]]: another host, which gets only credentials found for it


class RegistriesConf:
    def __init__(self):
        self.files = []
        self.registries = {}  # prefix -> RegistryEntry, the last file's winning
        self.search = None
        self.short_name_mode = None
        self.aliases = {}  # short name -> (full name, FILE:LINE)


def _read(path, image):
    """The file's text, or None when there is none.

    These files decide where pulls go and whether TLS is checked, so they are read as the signature policy is
    (trusted_files.py): root's (or the task user's) alone, no symbolic link followed, a regular file."""
    data = read_trusted(os.path.abspath(path), "registries.conf", MAX_CONF, image, missing_ok=True)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImageError("registries.conf is not UTF-8", image=image, path=path)


def _files(conf_path, conf_d, image=None):
    files = [conf_path]
    names = [n for n in list_dir(os.path.abspath(conf_d), "registries.conf.d", image) if n.endswith(".conf")]
    return files + [os.path.join(conf_d, n) for n in names]


class _Checker:
    """Type and key checks of one parsed file, each error naming file and line."""

    def __init__(self, path, image):
        self.path = path
        self.image = image

    def error(self, message, line):
        return ImageError("registries.conf: line %d: %s" % (line, message), image=self.image, path=self.path)

    def keys(self, table, allowed, what):
        for key in table:
            if key not in allowed:
                hint = " (the v1 format's [registries.*] tables are not supported: write v2)" \
                    if key == "registries" else ""
                raise self.error("%s %r is not supported here (understood: %s)%s"
                                 % (what, key, ", ".join(allowed), hint), table.lines.get(key, table.line))

    def typed(self, table, key, kind, default=None):
        value = table.get(key, default)
        if key in table and not isinstance(value, kind):
            raise self.error("%s must be %s" % (key, "true or false" if kind is bool else "a string"),
                             table.lines[key])
        return value

    def choice(self, table, key, choices, default=None):
        value = self.typed(table, key, str, default)
        if value is not None and value not in choices:
            raise self.error("%s must be one of %s, not %r" % (key, ", ".join(choices), value), table.lines[key])
        return value

    def tables(self, table, key):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(t, Table) for t in value):
            raise self.error("%s must be [[%s]] tables" % (key, key), table.lines.get(key, table.line))
        return value


def _name_ok(name):
    return bool(name) and not any(c.isspace() for c in name) and "://" not in name


def _has_host(name):
    """Whether name's first component is a registry host (containers/image's rule: a `.` or `:` in it, or
    `localhost`), as an alias's value must be."""
    first = name.split("/", 1)[0]
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def _registry(check, table):
    check.keys(table, _REGISTRY_KEYS, "the [[registry]] key")
    prefix = check.typed(table, "prefix", str, "")
    location = check.typed(table, "location", str, "")
    where = "%s:%d" % (check.path, table.line)
    if not prefix and not location:
        raise check.error("a [[registry]] needs a prefix or a location", table.line)
    prefix = prefix or location
    for key, value in (("prefix", prefix), ("location", location)):
        if value and (not _name_ok(value) or value.endswith("/")):
            raise check.error("%s %r is not HOST[:PORT][/PATH]" % (key, value), table.lines.get(key, table.line))
    if prefix.startswith("*.") and location:
        raise check.error("a wildcard prefix %r takes no location" % prefix, table.lines["location"])
    if "*" in prefix[1:] or (prefix.startswith("*") and not prefix.startswith("*.")) or \
            (prefix.startswith("*.") and any(c in prefix for c in "/@:")):
        # containers/image refuses these too: `*.example.com:5000` would match nothing, and a blocked entry
        # written so would block nothing
        raise check.error("prefix %r: a wildcard is only `*.DOMAIN` (no port, path, tag or digest)" % prefix,
                          table.lines.get("prefix", table.line))
    by_digest = check.typed(table, "mirror-by-digest-only", bool, False)
    mirrors = []
    for mirror in check.tables(table, "mirror"):
        check.keys(mirror, _MIRROR_KEYS, "the [[registry.mirror]] key")
        mirror_location = check.typed(mirror, "location", str)
        if not mirror_location or not _name_ok(mirror_location) or mirror_location.endswith("/"):
            raise check.error("a [[registry.mirror]] needs a location HOST[:PORT][/PATH]",
                              mirror.lines.get("location", mirror.line))
        if by_digest and "pull-from-mirror" in mirror:
            # containers/image refuses the pair: which of the two would decide is not for the reader to guess
            raise check.error("pull-from-mirror cannot be set on a mirror of a [[registry]] with "
                              "mirror-by-digest-only (use one or the other)", mirror.lines["pull-from-mirror"])
        pull = check.choice(mirror, "pull-from-mirror", PULL_FROM_MIRROR,
                            "digest-only" if by_digest else "all")
        mirrors.append(Mirror(mirror_location, check.typed(mirror, "insecure", bool, False), pull))
    return RegistryEntry(prefix, location or (prefix if not prefix.startswith("*.") else ""),
                         check.typed(table, "insecure", bool, False), check.typed(table, "blocked", bool, False),
                         mirrors, where)


def _merge(conf, document, path, image):
    check = _Checker(path, image)
    check.keys(document, _TOP_KEYS, "the key")
    prefixes = set()
    for table in check.tables(document, "registry"):
        entry = _registry(check, table)
        if entry.prefix in prefixes:
            raise check.error("a second [[registry]] with prefix %r" % entry.prefix, table.line)
        prefixes.add(entry.prefix)
        conf.registries.pop(entry.prefix, None)
        conf.registries[entry.prefix] = entry
    if "unqualified-search-registries" in document:
        search = document["unqualified-search-registries"]
        if not isinstance(search, list) or not all(isinstance(s, str) and _name_ok(s) and "/" not in s
                                                   for s in search):
            raise check.error("unqualified-search-registries must be a list of registry hosts",
                              document.lines["unqualified-search-registries"])
        conf.search = list(search)
    mode = check.choice(document, "short-name-mode", SHORT_NAME_MODES)
    if mode is not None:
        conf.short_name_mode = mode
    aliases = document.get("aliases")
    if aliases is not None:
        if not isinstance(aliases, Table):
            raise check.error("aliases must be an [aliases] table", document.lines["aliases"])
        for name, value in aliases.items():
            if not isinstance(value, str) or not _name_ok(value) or "/" not in value or "@" in value or \
                    ":" in value.rsplit("/", 1)[1] or not _has_host(value):
                raise check.error("the alias %r must be a full name HOST/REPOSITORY without tag or digest" % name,
                                  aliases.lines[name])
            conf.aliases[name] = (value, "%s:%d" % (path, aliases.lines[name]))


def load(conf_path=None, conf_d=None, image=None, environ=None):
    """The registries.conf files merged; `files` says which were read (none: Docker's behaviour stays).

    A conf_path the task names must exist, as skopeo's --registries-conf: a typo must not drop the mirrors and
    blocks it was meant to hold. The default and CONTAINERS_REGISTRIES_CONF may be missing, as may any
    registries.conf.d (containers/image reads them so)."""
    environ = os.environ if environ is None else environ
    named = conf_path
    conf_path = conf_path or environ.get("CONTAINERS_REGISTRIES_CONF") or DEFAULT_CONF
    conf = RegistriesConf()
    for path in _files(conf_path, conf_d or DEFAULT_CONF_D, image):
        text = _read(path, image)
        if text is None:
            if named and path == conf_path:
                # the path as it was read (a relative one, on the controller, from its working directory)
                raise ImageError("the registries_conf file does not exist (without the option, "
                                 "$CONTAINERS_REGISTRIES_CONF or else %s is read, if there is one)" % DEFAULT_CONF,
                                 image=image, path=os.path.abspath(path))
            continue
        try:
            document = parse(text)
        except TomlError as e:
            raise ImageError("registries.conf: %s (only the part of TOML registries.conf needs is read)" % e,
                             image=image, path=path)
        _merge(conf, document, path, image)
        conf.files.append(path)
    _refuse_conflicts(conf, image)
    return conf


def _refuse_conflicts(conf, image):
    """Two [[registry]] entries with one location and different `blocked` or `insecure` are refused, as
    containers/image refuses them: the same registry cannot be both blocked and not."""
    by_location = {}
    for entry in conf.registries.values():
        if not entry.location:
            continue
        other = by_location.setdefault(entry.location, entry)
        for key in ("blocked", "insecure"):
            if getattr(other, key) != getattr(entry, key):
                raise ImageError("registries.conf: the location %r is written with conflicting %r settings (%s and "
                                 "%s)" % (entry.location, key, other.where, entry.where), image=image)


def _normalized(reference, name):
    """HOST/REPO as a registry reference spells it (Docker Hub's host and its library/ namespace)."""
    there = registry_name(reference.text, name, reference.tag, reference.digest)
    return "%s/%s" % (there.host, there.repository)


def _full_names(conf, reference):
    """The full names (HOST/REPO) a reference may mean, in the order to try them."""
    short = written_short_name(reference)
    full = "%s/%s" % (reference.host, reference.repository)
    if short is None or not conf.files:
        return [full]
    if short in conf.aliases:
        return [_normalized(reference, conf.aliases[short][0])]
    search = conf.search or []
    mode = conf.short_name_mode or "enforcing"
    if len(search) == 1 or (search and mode != "enforcing"):
        # each candidate as containers/image normalizes it (`debian` on docker.io is docker.io/library/debian),
        # so the [[registry]] prefixes, blocks and mirrors written for the full name judge it the same
        return [_normalized(reference, "%s/%s" % (host, short)) for host in search]
    raise ImageError("%r is a short name, and registries.conf (%s) has no alias for it%s: write the full name "
                     "(docker://HOST/REPOSITORY, as docker://docker.io/%s) or add an [aliases] entry "
                     "(\"%s\" = \"HOST/REPOSITORY\")"
                     % (short, ", ".join(conf.files),
                        "" if not search else " and short-name-mode is enforcing with %d search registries"
                        % len(search), reference.repository, short), image=reference.text)


def endpoints(conf, reference):
    """Where to pull reference from, in order (Endpoint); a blocked registry is an error."""
    out = []
    for name in _full_names(conf, reference):
        matching = [e for e in conf.registries.values() if e.matches(name)]
        entry = max(matching, key=lambda e: len(e.prefix)) if matching else None
        same = name == "%s/%s" % (reference.host, reference.repository)
        named = reference if same else registry_name(reference.text, name, reference.tag, reference.digest)
        if entry is None:
            out.append(Endpoint(named, False, "registry %s" % named.host))
            continue
        if entry.blocked:
            raise ImageError("registries.conf blocks pulls from %s (the [[registry]] with prefix %r, %s)"
                             % (name, entry.prefix, entry.where), image=reference.text)
        for mirror in entry.mirrors:
            if mirror.pull_from_mirror == "digest-only" and not reference.digest:
                continue
            if mirror.pull_from_mirror == "tag-only" and reference.digest:
                continue
            target = registry_name(reference.text, entry.rewrite(name, mirror.location), reference.tag,
                                   reference.digest)
            out.append(Endpoint(target, mirror.insecure, "mirror %s" % target.host, named, mirror=True))
        target = registry_name(reference.text, entry.rewrite(name, entry.location), reference.tag, reference.digest)
        out.append(Endpoint(target, entry.insecure, "registry %s" % target.host, named))
    return out
