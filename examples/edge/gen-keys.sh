#!/usr/bin/env bash
# Makes a throwaway RSA key pair in ./keys, next to this script: jwks.json (the public key, which
# bootstrap.yaml reads) and token.txt (an RS256 token for user "alice", valid one hour). Needs
# python3-jwt and python3-cryptography (scripts/lib.sh installs both). Nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p keys
/usr/bin/python3 - <<'PY'
import json, time
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
jwk.update({"kid": "example", "alg": "RS256", "use": "sig"})
json.dump({"keys": [jwk]}, open("keys/jwks.json", "w"))
claims = {"iss": "https://auth.example.test", "aud": "edge", "sub": "alice", "exp": int(time.time()) + 3600}
open("keys/token.txt", "w").write(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "example"}))
PY
echo "keys in $(pwd)/keys: jwks.json, token.txt"
