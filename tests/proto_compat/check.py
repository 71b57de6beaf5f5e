#!/usr/bin/python3
"""Wire-compatibility check of legate's proto/ against Envoy's real v3 API.

legate writes its own subset of Envoy's API under proto/. It must stay byte-for-byte compatible
with what Envoy and control planes put on the wire and in YAML/JSON, so this script compiles
both legate's files and Envoy's definitions (taken from the npm package @grpc/grpc-js-xds,
which vendors envoy-api, xds, googleapis and protoc-gen-validate) into descriptor sets and
compares them. For each legate file with a counterpart at the same relative path in the
reference it checks: package and syntax; every message, nested message, enum and enum value
exists under the same full name; every field has the same number, type (message/enum types
by full name), label, map-ness, oneof membership, json_name and explicit packing; and declared
service methods have the same request/response types and streaming flags. Omitting things is
allowed (legate is a subset); adding or changing them is not.

The reference is downloaded at test time and cached in build/envoy-api-ref/ (copied from
/tmp/envoyapi when a matching install already sits there, npm otherwise).

Usage: check.py [--list-omitted] [--proto-dir DIR] [--ref-dir DIR] [--version V]
Exit status: 0 all good, 1 problems found, 3 reference could not be obtained.
The last line of output is "N passed, N failed", counting messages, enums and services, plus
one failure for each file-level problem (protoc error, package/syntax mismatch).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PKG = "@grpc/grpc-js-xds"
DEFAULT_VERSION = "1.14.1"
PREINSTALLED = "/tmp/envoyapi"
SYSTEM_INCLUDE = "/usr/include"
DEP_ROOTS = ("envoy-api", "xds", "googleapis", "protoc-gen-validate")
EXIT_NO_REFERENCE = 3

FDP = descriptor_pb2.FieldDescriptorProto


class NoReference(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Fetching the reference
# ---------------------------------------------------------------------------------------------

def installed_version(prefix):
    """Version of the package installed under an npm prefix, or None."""
    import json
    path = os.path.join(prefix, "node_modules", PKG, "package.json")
    try:
        with open(path) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_reference(ref_dir, version, allow_copy=True):
    """Returns the deps/ directory of the cached package, installing it first if needed."""
    deps = os.path.join(ref_dir, "node_modules", PKG, "deps")
    if installed_version(ref_dir) == version and os.path.isdir(deps):
        return deps
    os.makedirs(os.path.dirname(ref_dir), exist_ok=True)
    # Stage next to the cache and swap it in, so an interrupted run leaves no half copy.
    stage = tempfile.mkdtemp(prefix=".envoy-api-ref.", dir=os.path.dirname(ref_dir))
    try:
        if allow_copy and installed_version(PREINSTALLED) == version:
            src = os.path.join(PREINSTALLED, "node_modules", PKG)
            dst = os.path.join(stage, "node_modules", PKG)
            os.makedirs(dst)
            shutil.copy2(os.path.join(src, "package.json"), dst)
            shutil.copytree(os.path.join(src, "deps"), os.path.join(dst, "deps"))
            how = "copied from " + PREINSTALLED
        else:
            if not shutil.which("npm"):
                raise NoReference("npm not found and no cached reference in " + ref_dir)
            cmd = ["npm", "install", "--prefix", stage, "--no-save", "--no-audit", "--no-fund",
                   "--ignore-scripts", "--fetch-retry-maxtimeout=10000",
                   "%s@%s" % (PKG, version)]
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            if r.returncode != 0 or installed_version(stage) != version:
                raise NoReference("npm install %s@%s failed:\n%s" % (
                    PKG, version, r.stdout.strip()))
            how = "installed with npm"
        if os.path.isdir(ref_dir):
            shutil.rmtree(ref_dir)
        try:
            os.rename(stage, ref_dir)
            stage = None
        except OSError:
            # A concurrent run may have won the race; its copy is as good as ours.
            if installed_version(ref_dir) != version:
                raise
        print("reference %s@%s %s into %s" % (PKG, version, how, ref_dir))
    finally:
        if stage:
            shutil.rmtree(stage, ignore_errors=True)
    return deps


# ---------------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------------

def protoc(includes, files, out):
    cmd = ["protoc"] + ["-I" + i for i in includes] + ["--include_imports",
                                                        "--descriptor_set_out=" + out] + files
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return r.returncode == 0, r.stdout.strip()


def compile_set(includes, files, tmp, retry_hook=None):
    """Compiles files; returns ({file name: FileDescriptorProto}, {file: protoc error}).

    One broken file would sink a joint compile, so on failure every file is compiled alone
    and only the ones that still fail are reported. retry_hook(stderr) may repair the
    environment and return True to ask for another attempt.
    """
    out = os.path.join(tmp, "set.pb")

    def run(batch):
        for _ in range(20):
            ok, err = protoc(includes, batch, out)
            if ok or not (retry_hook and retry_hook(err)):
                return ok, err
        return ok, err

    descs, errors = {}, {}
    ok, err = run(files)
    batches = [files] if ok else [[f] for f in files]
    for batch in batches:
        if batch is not files:
            ok, err = run(batch)
        if not ok:
            errors[batch[0]] = err
            continue
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
        for fd in fds.file:
            descs[fd.name] = fd
    return descs, errors


class ValidateOverlay:
    """A patched copy of validate/validate.proto, searched before the vendored one.

    The protoc-gen-validate bundled in the npm package can be older than the envoy-api next
    to it (e.g. no StringRules.ignore_empty), which makes protoc reject the option values.
    Validation rules have no effect on the wire, so each missing rule field is added as a
    bool with a spare number and the compile retried.
    """
    PATTERN = re.compile(r'Message type "validate\.(\w+)" has no field named "(\w+)"')

    def __init__(self, deps, root):
        self.root = root
        self.path = os.path.join(root, "validate", "validate.proto")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(os.path.join(deps, "protoc-gen-validate", "validate", "validate.proto")) as f:
            self.text = f.read()
        self.added = []
        self.write()

    def write(self):
        with open(self.path, "w") as f:
            f.write(self.text)

    def __call__(self, err):
        changed = False
        for msg, field in sorted(set(self.PATTERN.findall(err))):
            if (msg, field) in self.added:
                continue
            head = re.compile(r"^message %s \{\n" % msg, re.M)
            if not head.search(self.text):
                continue
            line = "    optional bool %s = %d;\n" % (field, 9000 + len(self.added))
            self.text = head.sub(lambda m: m.group(0) + line, self.text, count=1)
            self.added.append((msg, field))
            changed = True
        if changed:
            self.write()
        return changed


# ---------------------------------------------------------------------------------------------
# Indexing descriptors
# ---------------------------------------------------------------------------------------------

def join(scope, name):
    return scope + "." + name if scope else name


class Index:
    """Full name -> (descriptor, defining file) for messages, enums, services, extensions."""

    def __init__(self, descs):
        self.messages, self.enums, self.services, self.extensions = {}, {}, {}, {}
        for fd in descs.values():
            self._add(fd.package, fd.message_type, fd.enum_type, fd.extension, fd.name)
            for s in fd.service:
                self.services[join(fd.package, s.name)] = (s, fd.name)

    def _add(self, scope, msgs, enums, exts, fname):
        for e in enums:
            self.enums[join(scope, e.name)] = (e, fname)
        for x in exts:
            self.extensions[join(scope, x.name)] = (x, fname)
        for m in msgs:
            full = join(scope, m.name)
            self.messages[full] = (m, fname)
            self._add(full, m.nested_type, m.enum_type, m.extension, fname)


# ---------------------------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------------------------

LABELS = {FDP.LABEL_OPTIONAL: "singular", FDP.LABEL_REPEATED: "repeated",
          FDP.LABEL_REQUIRED: "required"}


class Checker:
    def __init__(self, legate, ref):
        self.legate, self.ref = legate, ref
        self.problems = []
        self.passed = self.failed = 0
        self.omitted = []

    def tally(self, probs):
        self.problems.extend(probs)
        if probs:
            self.failed += 1
        else:
            self.passed += 1

    # -- helpers -------------------------------------------------------------------------------

    def map_entry(self, index, f):
        """The map entry message if f is a map field, else None."""
        if f.label != FDP.LABEL_REPEATED or f.type != FDP.TYPE_MESSAGE:
            return None
        m = index.messages.get(f.type_name.lstrip("."))
        return m[0] if m and m[0].options.map_entry else None

    def type_str(self, index, f):
        entry = self.map_entry(index, f)
        if entry:
            k, v = entry.field[0], entry.field[1]
            return "map<%s, %s>" % (self.type_str(index, k), self.type_str(index, v))
        if f.type == FDP.TYPE_GROUP:
            return "group " + f.type_name.lstrip(".")
        if f.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
            return f.type_name.lstrip(".")
        return FDP.Type.Name(f.type)[5:].lower()

    @staticmethod
    def oneof_of(m, f):
        if f.HasField("oneof_index") and not f.proto3_optional:
            return m.oneof_decl[f.oneof_index].name
        return None

    @staticmethod
    def packed(f):
        return f.options.packed if f.options.HasField("packed") else None

    # -- fields ---------------------------------------------------------------------------------

    def check_field(self, lm, rm, lf, rf, name):
        p = []
        if lf.number != rf.number:
            p.append("%s: number %d != reference %d" % (name, lf.number, rf.number))
        lmap, rmap = self.map_entry(self.legate, lf), self.map_entry(self.ref, rf)
        lt, rt = self.type_str(self.legate, lf), self.type_str(self.ref, rf)
        if bool(lmap) != bool(rmap):
            lt, rt = [t if m else "%s %s" % (LABELS[f.label], t)
                      for t, m, f in ((lt, lmap, lf), (rt, rmap, rf))]
            p.append("%s: %s != reference %s (map-ness differs)" % (name, lt, rt))
        else:
            if lt != rt:
                p.append("%s: type %s != reference %s" % (name, lt, rt))
            if lf.label != rf.label:
                p.append("%s: label %s != reference %s" % (
                    name, LABELS[lf.label], LABELS[rf.label]))
        if lf.proto3_optional != rf.proto3_optional:
            p.append("%s: proto3 optional %s != reference %s" % (
                name, lf.proto3_optional, rf.proto3_optional))
        lo, ro = self.oneof_of(lm, lf), self.oneof_of(rm, rf)
        if lo != ro:
            p.append("%s: oneof %s != reference %s" % (
                name, lo or "(none)", ro or "(none)"))
        if lf.json_name != rf.json_name:
            p.append("%s: json_name %r != reference %r" % (name, lf.json_name, rf.json_name))
        if self.packed(lf) != self.packed(rf):
            p.append("%s: packed option %s != reference %s" % (
                name, self.packed(lf), self.packed(rf)))
        return p

    def unknown_field(self, rm, lf, name):
        """Explains a field the reference lacks, pointing at what Envoy does with its number."""
        hint = ""
        for rf in rm.field:
            if rf.number == lf.number:
                hint = " (reference uses number %d for '%s')" % (rf.number, rf.name)
        for r in rm.reserved_range:
            if r.start <= lf.number < r.end:
                hint = " (number %d is reserved in reference)" % lf.number
        if lf.name in rm.reserved_name:
            hint = " (name is reserved in reference)"
        return "%s: field (number %d) does not exist in reference%s" % (name, lf.number, hint)

    # -- types ----------------------------------------------------------------------------------

    def locate(self, table, full, kind, lfile, rfile):
        """Finds the reference twin of a legate type; returns (descriptor, problems)."""
        hit = table.get(full)
        if hit is None:
            return None, ["%s: %s does not exist in reference (%s)" % (full, kind, rfile)]
        if hit[1] != rfile:
            return hit[0], ["%s: declared in %s, reference declares it in %s" % (
                full, lfile, hit[1])]
        return hit[0], []

    def check_message(self, lm, full, lfile, rfile):
        rm, p = self.locate(self.ref.messages, full, "message", lfile, rfile)
        if rm is None:
            self.tally(p)
            return
        if lm.options.map_entry != rm.options.map_entry:
            p.append("%s: map entry %s != reference %s" % (
                full, lm.options.map_entry, rm.options.map_entry))
        rfields = {f.name: f for f in rm.field}
        for lf in lm.field:
            name = full + "." + lf.name
            rf = rfields.get(lf.name)
            if rf is None:
                p.append(self.unknown_field(rm, lf, name))
            else:
                p.extend(self.check_field(lm, rm, lf, rf, name))
        for lx in lm.extension:
            p.extend(self.check_extension(lx, join(full, lx.name)))
        self.tally(p)

        if not rm.options.map_entry:
            have = {f.name for f in lm.field}
            missing = ["%s=%d" % (f.name, f.number) for f in rm.field if f.name not in have]
            if missing:
                self.omitted.append("%s omits fields: %s" % (full, ", ".join(missing)))
        for n in lm.nested_type:
            self.check_message(n, join(full, n.name), lfile, rfile)
        for e in lm.enum_type:
            self.check_enum(e, join(full, e.name), lfile, rfile)

    def check_enum(self, le, full, lfile, rfile):
        re_, p = self.locate(self.ref.enums, full, "enum", lfile, rfile)
        if re_ is None:
            self.tally(p)
            return
        rvals = {v.name: v.number for v in re_.value}
        for v in le.value:
            name = join(full, v.name)
            if v.name not in rvals:
                users = [r.name for r in re_.value if r.number == v.number]
                hint = " (reference uses %d for %s)" % (v.number, "/".join(users)) if users else ""
                p.append("%s: enum value (= %d) does not exist in reference%s" % (
                    name, v.number, hint))
            elif rvals[v.name] != v.number:
                p.append("%s: enum value %d != reference %d" % (name, v.number, rvals[v.name]))
        self.tally(p)
        have = {v.name for v in le.value}
        missing = ["%s=%d" % (v.name, v.number) for v in re_.value if v.name not in have]
        if missing:
            self.omitted.append("%s omits values: %s" % (full, ", ".join(missing)))

    def check_service(self, ls, full, lfile, rfile):
        rs, p = self.locate(self.ref.services, full, "service", lfile, rfile)
        if rs is None:
            self.tally(p)
            return
        rmeth = {m.name: m for m in rs.method}
        for lmth in ls.method:
            name = full + "." + lmth.name
            rmth = rmeth.get(lmth.name)
            if rmth is None:
                p.append("%s: method does not exist in reference" % name)
                continue
            for attr in ("input_type", "output_type", "client_streaming", "server_streaming"):
                a, b = getattr(lmth, attr), getattr(rmth, attr)
                if a != b:
                    a, b = (str(a).lstrip("."), str(b).lstrip("."))
                    p.append("%s: %s %s != reference %s" % (name, attr, a, b))
        self.tally(p)

    def check_extension(self, lx, full):
        hit = self.ref.extensions.get(full)
        if hit is None:
            return ["%s: extension does not exist in reference" % full]
        rx, p = hit[0], []
        if lx.extendee != rx.extendee:
            p.append("%s: extends %s != reference %s" % (
                full, lx.extendee.lstrip("."), rx.extendee.lstrip(".")))
        if lx.number != rx.number:
            p.append("%s: number %d != reference %d" % (full, lx.number, rx.number))
        lt, rt = self.type_str(self.legate, lx), self.type_str(self.ref, rx)
        if lt != rt:
            p.append("%s: type %s != reference %s" % (full, lt, rt))
        if lx.label != rx.label:
            p.append("%s: label %s != reference %s" % (full, LABELS[lx.label], LABELS[rx.label]))
        return p

    def check_file(self, lfd, rfd):
        p = []
        if lfd.package != rfd.package:
            p.append("%s: package %s != reference %s" % (lfd.name, lfd.package, rfd.package))
        lsyn, rsyn = lfd.syntax or "proto2", rfd.syntax or "proto2"
        if lsyn != rsyn:
            p.append("%s: syntax %s != reference %s" % (lfd.name, lsyn, rsyn))
        for lx in lfd.extension:
            p.extend(self.check_extension(lx, join(lfd.package, lx.name)))
        if p:
            self.problems.extend(p)
            self.failed += 1
        for m in lfd.message_type:
            self.check_message(m, join(lfd.package, m.name), lfd.name, rfd.name)
        for e in lfd.enum_type:
            self.check_enum(e, join(lfd.package, e.name), lfd.name, rfd.name)
        for s in lfd.service:
            self.check_service(s, join(lfd.package, s.name), lfd.name, rfd.name)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def list_protos(root):
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".proto"):
                out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


def indent(text):
    return "\n".join("    " + l for l in text.splitlines())


IMPORT_FAILED = re.compile(r'Import "([^"]+)" was not found or had errors')
CASCADE = ("is not defined", "was not found or had errors")


def explain_error(f, err, failed):
    """protoc's complaint about f, cut down to f's own lines. When imports fail, the
    "X is not defined" lines that follow from it are dropped and the imports are named."""
    lines = err.splitlines()
    own = [l for l in lines if l.startswith(f + ":")]
    bad = [m for l in own for m in IMPORT_FAILED.findall(l)]
    notes = []
    missing = [b for b in bad if b not in failed]
    broken = [b for b in bad if b in failed]
    if missing:
        notes.append("import not found: " + ", ".join(missing))
    if broken:
        notes.append("legate import fails to compile: " + ", ".join(broken))
    if bad:
        own = [l for l in own if not any(c in l for c in CASCADE)]
    if not own and not notes:
        own = lines
    text = "%s: protoc error (legate)" % f
    if notes:
        text += ": " + "; ".join(notes)
    if own:
        text += ":\n" + indent("\n".join(own))
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proto-dir", default=os.path.join(REPO, "proto"))
    ap.add_argument("--ref-dir", default=os.path.join(REPO, "build", "envoy-api-ref"))
    ap.add_argument("--version", default=DEFAULT_VERSION, help="%s version" % PKG)
    ap.add_argument("--from-npm", action="store_true",
                    help="fill an empty cache with npm even if %s has the package"
                    % PREINSTALLED)
    ap.add_argument("--list-omitted", action="store_true",
                    help="also list the fields/enum values Envoy has that legate leaves out")
    args = ap.parse_args()
    proto_dir = os.path.abspath(args.proto_dir)
    ref_dir = os.path.abspath(args.ref_dir)

    if not shutil.which("protoc"):
        print("protoc not found (Debian: protobuf-compiler)")
        return 2
    if not os.path.isdir(proto_dir):
        print("no such directory: %s" % proto_dir)
        return 2
    files = list_protos(proto_dir)
    if not files:
        print("no .proto files under %s" % proto_dir)
        print("0 passed, 0 failed")
        return 0
    try:
        deps = ensure_reference(ref_dir, args.version, not args.from_npm)
    except (NoReference, OSError) as e:
        print("reference unavailable: %s" % e)
        return EXIT_NO_REFERENCE
    roots = [os.path.join(deps, r) for r in DEP_ROOTS]

    with tempfile.TemporaryDirectory(prefix="proto_compat.") as tmp:
        ldescs, lerrors = compile_set([proto_dir, SYSTEM_INCLUDE], files, tmp)

        # Pair each legate file with the reference file at the same path.
        ref_files, no_ref = [], []
        for f in files:
            if any(os.path.isfile(os.path.join(r, f)) for r in roots):
                ref_files.append(f)
            else:
                no_ref.append(f)
        overlay = ValidateOverlay(deps, os.path.join(tmp, "overlay"))
        rdescs, rerrors = {}, {}
        if ref_files:
            rdescs, rerrors = compile_set([overlay.root] + roots + [SYSTEM_INCLUDE], ref_files,
                                          tmp, retry_hook=overlay)

    checker = Checker(Index(ldescs), Index(rdescs))
    skipped, compared = [], 0
    for f in files:
        if f in lerrors:
            checker.problems.append(explain_error(f, lerrors[f], lerrors))
            checker.failed += 1
        elif f in no_ref:
            skipped.append("%s: no reference, skipped" % f)
        elif f in rerrors:
            skipped.append("%s: reference does not compile, skipped:\n%s" % (
                f, indent(rerrors[f])))
        else:
            checker.check_file(ldescs[f], rdescs[f])
            compared += 1

    if overlay.added:
        print("note: patched the reference's validate.proto with %s (validation-only options)"
              % ", ".join("%s.%s" % a for a in overlay.added))
    for s in skipped:
        print(s)
    if args.list_omitted and checker.omitted:
        print("--- omitted by legate (allowed) ---")
        for o in checker.omitted:
            print(o)
    if checker.problems:
        print("--- problems ---")
        for p in checker.problems:
            print(p)
    print("summary: %d files, %d compared, %d skipped, %d legate protoc errors, "
          "%d problems (reference %s@%s)" % (
              len(files), compared, len(skipped), len(lerrors), len(checker.problems), PKG,
              args.version))
    print("%d passed, %d failed" % (checker.passed, checker.failed))
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
