#!/usr/bin/env python3
"""Fails when docs/compatibility.md is stale: regenerates it in memory from the built descriptor
set (proto/), filters/registry.c and src/bootstrap_validate.c with tools/gen_compat_matrix.py and
compares it with the committed file, printing the first differing lines and the command that
regenerates it.

Usage: check_matrix.py DESCRIPTOR_SET SOURCE_DIR
"""
import difflib
import os
import sys


def main():
    desc, src = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.join(src, "tools"))
    import gen_compat_matrix as gen

    want = gen.render(desc, src)
    path = os.path.join(src, "docs", "compatibility.md")
    try:
        with open(path) as f:
            have = f.read()
    except FileNotFoundError:
        have = ""
    if have == want:
        print("docs/compatibility.md is up to date")
        return 0
    diff = list(difflib.unified_diff(have.splitlines(), want.splitlines(), "docs/compatibility.md (committed)",
                                     "docs/compatibility.md (from the code)", lineterm="", n=1))
    sys.stdout.write("\n".join(diff[:40]) + "\n")
    if len(diff) > 40:
        print("... (%d more diff lines)" % (len(diff) - 40))
    print("docs/compatibility.md is stale. Regenerate it from the repository root, after a build:")
    print("  " + gen.REGEN)
    return 1


if __name__ == "__main__":
    sys.exit(main())
