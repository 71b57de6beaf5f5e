#!/usr/bin/env python3
"""Runs every config of the corpus through `legate --mode validate` and checks the outcome.

Usage: check_corpus.py LEGATE_BINARY CORPUS_DIR [NAME ...]

CORPUS_DIR holds valid/ and invalid/ (*.yaml, *.yml, *.json). The binary runs from the repository
root (two levels above this script) and is given each file's path relative to that root, the way a
user would type it; the messages legate prints name the file that way.

valid/*    exit 0, `configuration '<file>' OK` on stdout; then `--print-config` must print JSON
           that, passed back with `--config-yaml`, validates again and prints the same JSON.
invalid/*  exit 1, and every `# expect: <text>` line of the file is a substring of stderr.

NAME arguments, when given, keep only the files whose name contains one of them.
Prints one line per failing file and `N passed, N failed` last; exits 1 on any failure.
Plain python3, no dependencies; every run of the binary has a timeout.
"""
import json
import os
import subprocess
import sys

TIMEOUT = 30  # seconds per run of the binary
EXTENSIONS = ('.yaml', '.yml', '.json')
EXPECT_PREFIX = '# expect:'
ARG_MAX_SAFE = 120 * 1024  # Linux refuses one argv string over 128 KiB


class Failure(Exception):
    pass


def run(binary, args, cwd):
    try:
        p = subprocess.run([binary] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failure('timed out after %ds: legate %s' % (TIMEOUT, ' '.join(args)[:200]))
    except OSError as e:
        raise Failure('could not run %s: %s' % (binary, e))
    return p.returncode, p.stdout.decode('utf-8', 'replace'), p.stderr.decode('utf-8', 'replace')


def one_line(text, limit=300):
    text = ' | '.join(l for l in text.strip().splitlines() if l.strip())
    return text if len(text) <= limit else text[:limit] + '...'


def extract_json(stdout):
    """The JSON document --print-config printed, as text, without the `configuration ... OK` line."""
    lines = [l for l in stdout.splitlines()
             if not (l.startswith("configuration '") and l.rstrip().endswith("' OK"))]
    text = '\n'.join(lines).strip()
    try:
        json.loads(text)
    except ValueError as e:
        raise Failure('--print-config did not print JSON (%s): %s' % (e, one_line(stdout)))
    return text


def check_valid(binary, rel, root):
    rc, out, err = run(binary, ['--mode', 'validate', '-c', rel], root)
    if rc != 0:
        raise Failure('exit %d, want 0: %s' % (rc, one_line(err or out)))
    want = "configuration '%s' OK" % rel
    if want not in out:
        raise Failure('stdout lacks %r: %s' % (want, one_line(out)))

    rc, out, err = run(binary, ['--mode', 'validate', '-c', rel, '--print-config'], root)
    if rc != 0:
        raise Failure('--print-config: exit %d, want 0: %s' % (rc, one_line(err or out)))
    first = extract_json(out)
    if len(first.encode()) > ARG_MAX_SAFE:
        raise Failure('--print-config output (%d bytes) too long to pass back with --config-yaml'
                      % len(first.encode()))

    rc, out, err = run(binary, ['--mode', 'validate', '--config-yaml', first, '--print-config'], root)
    if rc != 0:
        raise Failure('round trip: --config-yaml of the printed JSON: exit %d, want 0: %s'
                      % (rc, one_line(err or out)))
    second = extract_json(out)
    if second != first:
        a, b = first.splitlines(), second.splitlines()
        n = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
        raise Failure('round trip: JSON differs at line %d: %r then %r'
                      % (n + 1, a[n] if n < len(a) else '<end>', b[n] if n < len(b) else '<end>'))


def expectations(path):
    with open(path, encoding='utf-8') as f:
        return [l[len(EXPECT_PREFIX):].strip() for l in f.read().splitlines()
                if l.startswith(EXPECT_PREFIX)]


def check_invalid(binary, rel, root, path):
    expects = expectations(path)
    if not expects:
        raise Failure('no "%s" line in the file' % EXPECT_PREFIX)
    rc, out, err = run(binary, ['--mode', 'validate', '-c', rel], root)
    if rc != 1:
        raise Failure('exit %d, want 1: %s' % (rc, one_line(err or out)))
    missing = [e for e in expects if e not in err]
    if missing:
        raise Failure('stderr lacks %r; stderr was: %s' % (missing[0], one_line(err, 600)))


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    binary = os.path.abspath(argv[1])
    corpus = os.path.abspath(argv[2])
    names = argv[3:]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.access(binary, os.X_OK):
        print('%s: not an executable' % binary)
        print('0 passed, 1 failed')
        return 1

    passed = failed = 0
    for kind in ('valid', 'invalid'):
        d = os.path.join(corpus, kind)
        if not os.path.isdir(d):
            print('%s: missing' % d)
            failed += 1
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith(EXTENSIONS) or (names and not any(n in name for n in names)):
                continue
            path = os.path.join(d, name)
            rel = os.path.relpath(path, root)
            try:
                if kind == 'valid':
                    check_valid(binary, rel, root)
                else:
                    check_invalid(binary, rel, root, path)
                passed += 1
            except Failure as e:
                failed += 1
                print('FAIL %s: %s' % (rel, e))
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
