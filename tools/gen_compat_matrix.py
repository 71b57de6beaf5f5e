#!/usr/bin/env python3
"""Generates docs/compatibility.md: what legate reads of Envoy's API, from the code itself.

Sources, all in the repository or the build tree:
  - the FileDescriptorSet the build writes from proto/ (build/gen/legate.desc): every message and
    field legate's loader knows, grouped by package (google.* well-known types left out);
  - filters/registry.c: the filter/extension table (name, typed_config type, whether legate runs it);
  - src/bootstrap_validate.c: the unsupported_fields table (fields refused by name).

The output depends only on those inputs (no dates, no paths), so tests/docs/check_matrix.py can
regenerate it and compare with the committed file.

Usage: gen_compat_matrix.py DESCRIPTOR_SET [SOURCE_DIR] [-o OUTPUT]   (default: print to stdout)
"""
import argparse
import os
import re
import sys

from google.protobuf import descriptor_pb2

REGEN = "/usr/bin/python3 tools/gen_compat_matrix.py build/gen/legate.desc . -o docs/compatibility.md"

TYPE_NAMES = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}

FILTER_ROW = re.compile(
    r'\{\s*LG_FILTER_(HTTP|NETWORK|LISTENER)\s*,\s*"([^"]*)"\s*,\s*((?:"[^"]*"\s*)+),\s*([01])\s*,\s*([^}]*?)\s*\}', re.S)
UNSUPPORTED_TABLE = re.compile(r"unsupported_fields\[\]\s*=\s*\{(.*?)\n\};", re.S)
UNSUPPORTED_ROW = re.compile(r'\{\s*"([^"]+)"\s*,\s*"([^"]+)"\s*\}')


def c_string(concatenated):
    return "".join(re.findall(r'"([^"]*)"', concatenated))


def read_filters(path):
    with open(path) as f:
        text = f.read()
    body = text[text.index("factories[]"):]
    rows = []
    for kind, name, ctype, terminal, ops in FILTER_ROW.findall(body):
        ctype = c_string(ctype)
        if kind == "HTTP":
            status = "validate only" if ops.strip() == "NULL" else "serving"
        else:
            status = "serving"  # network and listener filters are built by the core, not through ops
        rows.append((kind.lower(), name, ctype, terminal == "1", status))
    if not rows:
        sys.exit("gen_compat_matrix: no filter rows found in %s" % path)
    return rows


def read_unsupported(path):
    with open(path) as f:
        m = UNSUPPORTED_TABLE.search(f.read())
    if m is None:
        sys.exit("gen_compat_matrix: unsupported_fields table not found in %s" % path)
    return UNSUPPORTED_ROW.findall(m.group(1))


def read_messages(desc_path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(desc_path, "rb") as f:
        fds.ParseFromString(f.read())
    packages = {}

    def walk(pkg, prefix, msg, enums):
        full = prefix + msg.name
        if msg.options.map_entry:
            return
        maps = {prefix + msg.name + "." + n.name: n for n in msg.nested_type if n.options.map_entry}
        fields = []
        for fld in msg.field:
            if fld.type in (fld.TYPE_MESSAGE, fld.TYPE_ENUM):
                tname = fld.type_name.lstrip(".")
            else:
                tname = TYPE_NAMES.get(fld.type, "?")
            label = ""
            if tname in maps:
                entry = maps[tname]
                k, v = entry.field[0], entry.field[1]
                kt = TYPE_NAMES.get(k.type, k.type_name.lstrip("."))
                vt = v.type_name.lstrip(".") if v.type in (v.TYPE_MESSAGE, v.TYPE_ENUM) else TYPE_NAMES.get(v.type, "?")
                tname, label = "map<%s, %s>" % (kt, vt), ""
            elif fld.label == fld.LABEL_REPEATED:
                label = "repeated "
            oneof = ""
            if fld.HasField("oneof_index") and not fld.proto3_optional:
                oneof = msg.oneof_decl[fld.oneof_index].name
            dep = " (deprecated)" if fld.options.deprecated else ""
            fields.append((fld.number, fld.name, label + tname, oneof, dep))
        packages.setdefault(pkg, []).append((full, fields))
        for e in msg.enum_type:
            enums.append((full + "." + e.name, [v.name for v in e.value]))
        for nested in msg.nested_type:
            walk(pkg, full + ".", nested, enums)

    enums_by_pkg = {}
    for fd in fds.file:
        if fd.package.startswith("google."):
            continue
        enums = enums_by_pkg.setdefault(fd.package, [])
        for e in fd.enum_type:
            enums.append(((fd.package + "." if fd.package else "") + e.name, [v.name for v in e.value]))
        for msg in fd.message_type:
            walk(fd.package, (fd.package + "." if fd.package else ""), msg, enums)
    return packages, enums_by_pkg


def render(desc_path, src_dir):
    filters = read_filters(os.path.join(src_dir, "filters", "registry.c"))
    unsupported = read_unsupported(os.path.join(src_dir, "src", "bootstrap_validate.c"))
    packages, enums = read_messages(desc_path)
    out = []
    w = out.append
    w("# Envoy API compatibility matrix")
    w("")
    w("<!-- Generated by tools/gen_compat_matrix.py; do not edit. Regenerate after a build with:")
    w("     %s -->" % REGEN)
    w("")
    w("What legate reads of Envoy's v3 API, generated from the code: the messages come from the")
    w("`.proto` files in `proto/` (compiled into the descriptor set the build writes), the filters")
    w("from `filters/registry.c`, the refused fields from `src/bootstrap_validate.c`. A field listed")
    w("here parses and means what Envoy's documentation says it means; a message or field that is")
    w("not listed is an `unknown field` error. `tests/docs/check_matrix.py` fails when this file is")
    w("stale. Field meanings: <https://www.envoyproxy.io/docs/envoy/latest/api-v3/api>.")
    w("")
    n_msgs = sum(len(v) for v in packages.values())
    n_fields = sum(len(f) for v in packages.values() for _, f in v)
    w("Totals: %d packages, %d messages, %d fields, %d filters and extensions, %d refused fields." %
      (len(packages), n_msgs, n_fields, len(filters), len(unsupported)))
    w("")
    w("## Filters and extensions")
    w("")
    w("`serving`: legate runs it. `validate only`: its configuration is parsed and validated")
    w("(`--mode validate` accepts it) but serving refuses the config until the filter is built. A")
    w("filter that is not listed is refused (`unknown HTTP filter`) unless marked `is_optional: true`.")
    w("")
    w("| kind | name | type URL | status |")
    w("|---|---|---|---|")
    for kind, name, ctype, terminal, status in filters:
        url = "`type.googleapis.com/%s`" % ctype if ctype else "(none: found by name)"
        w("| %s | `%s`%s | %s | %s |" % (kind, name, " (terminal)" if terminal else "", url, status))
    w("")
    w("## Notable unsupported fields")
    w("")
    w("Fields of Envoy's API that legate parses but does not implement, where ignoring them would")
    w("change what the config does. Set, they are refused: `field \"<name>\" is not supported by")
    w("legate`. Besides these, some enum values are refused the same way (cluster discovery types")
    w("and load-balancing policies legate does not implement); see")
    w("[migrating-from-envoy.md](migrating-from-envoy.md).")
    w("")
    w("| message | field |")
    w("|---|---|")
    for msg, field in sorted(unsupported):
        w("| `%s` | `%s` |" % (msg, field))
    w("")
    w("## Messages and fields, by package")
    w("")
    w("Each field: name, number, type; `oneof` names the group of which at most one may be set.")
    w("")
    for pkg in sorted(packages):
        w("### %s" % pkg)
        w("")
        for full, fields in sorted(packages[pkg]):
            w("#### `%s`" % full)
            w("")
            if not fields:
                w("(no fields)")
                w("")
                continue
            w("| field | # | type | oneof |")
            w("|---|---|---|---|")
            for number, name, tname, oneof, dep in fields:
                w("| `%s`%s | %d | `%s` | %s |" % (name, dep, number, tname, oneof))
            w("")
        if enums.get(pkg):
            w("Enums:")
            w("")
            for full, values in sorted(enums[pkg]):
                w("- `%s`: %s" % (full, ", ".join("`%s`" % v for v in values)))
            w("")
    return "\n".join(out).rstrip("\n") + "\n"


def main():
    p = argparse.ArgumentParser(description="Generate docs/compatibility.md")
    p.add_argument("descriptor_set")
    p.add_argument("source_dir", nargs="?", default=os.path.join(os.path.dirname(__file__), ".."))
    p.add_argument("-o", "--output")
    a = p.parse_args()
    text = render(a.descriptor_set, a.source_dir)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
