#!/usr/bin/env bash
# Makes a throwaway CA and two server certificates (a.example.test, b.example.test) in ./certs,
# next to this script. Run it before starting legate on bootstrap.yaml; nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs && cd certs
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=legate example CA" \
  -keyout ca.key -out ca.crt 2>/dev/null
for name in a b; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$name.example.test" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s.example.test\n' "$name" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
done
echo "certificates in $(pwd): ca.crt, a.crt/a.key, b.crt/b.key"
