#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Verify a custody attestation with code custody did not write.

usage: dsse_check.py ENVELOPE TYPE TBS_SHA256 SPKI_B64 [SPKI_B64...]

ENVELOPE is a file holding the DSSE envelope's exact bytes. The check
recomputes the DSSE pre-authentication encoding from the payload, compares
its SHA-256 with TBS_SHA256 (the decision leaf's tbs_sha256), checks that the
payload is an in-toto Statement v1 whose predicateType ends in TYPE, and
verifies that every SPKI (base64 DER) signed it (a signature whose keyid is
the hex SHA-256 of that SPKI), with python3-cryptography: ECDSA (DER, over
SHA-256 for P-256, SHA-384 for P-384), Ed25519, RSA-PSS (SHA-256, MGF1-SHA-256,
salt 32). Prints the statement's subject name and exits 0, or says what is
wrong and exits 1.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa


def pae(ptype: bytes, body: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(body), body)


def b64(s: str) -> bytes:
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def verify(spki: bytes, msg: bytes, sig: bytes) -> None:
    key = serialization.load_der_public_key(spki)
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(sig, msg)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        h = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
        key.verify(sig, msg, ec.ECDSA(h))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(sig, msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                         salt_length=32), hashes.SHA256())
    else:
        raise ValueError("unknown key type")


def main() -> int:
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    env = json.loads(open(sys.argv[1], "rb").read())
    want_type, tbs = sys.argv[2], sys.argv[3]
    ptype = env["payloadType"].encode()
    body = b64(env["payload"])
    m = pae(ptype, body)
    if hashlib.sha256(m).hexdigest() != tbs:
        print("the PAE's SHA-256 is not the decision leaf's tbs_sha256")
        return 1
    if env["payloadType"] != "application/vnd.in-toto+json":
        print("payloadType is %r" % env["payloadType"])
        return 1
    st = json.loads(body)
    if st.get("_type") != "https://in-toto.io/Statement/v1" or \
            not st.get("predicateType", "").endswith(want_type):
        print("not an in-toto Statement v1 of type %s" % want_type)
        return 1
    for spki_b64 in sys.argv[4:]:
        spki = base64.b64decode(spki_b64)
        keyid = hashlib.sha256(spki).hexdigest()
        sigs = [s for s in env["signatures"] if s.get("keyid") == keyid]
        if not sigs:
            print("no signature by key %s" % keyid)
            return 1
        try:
            verify(spki, m, b64(sigs[0]["sig"]))
        except InvalidSignature:
            print("the signature by key %s does not verify" % keyid)
            return 1
    print(st["subject"][0]["name"], st["subject"][0]["digest"]["sha256"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
