#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check custody's audit exports and proofs with code custody did not write.

Usage: tlog_check.py export DIR VKEYS      an export (C2SP tlog-tiles layout
                                          plus checkpoints/<size>)
       tlog_check.py prove PROOF.json VKEYS   output of 'audit prove --json'

VKEYS is a file of verifier keys, one per line, as 'custody audit vkey'
prints them. Signed notes (C2SP signed-note, FORMATS.md section 3) are
checked with Debian's python3-cryptography (Ed25519 0x01 and ECDSA P-256
0x02 lines); the Merkle tree is recomputed with the RFC 9162 code of
merkle_check.py, which shares nothing with custody's C. Prints what it
verified; exits 1 with the reason if anything is wrong.
"""

import base64
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from merkle_check import Tree, leaf_hash, verify_consistency, verify_inclusion  # noqa: E402


class Bad(Exception):
    pass


def load_vkeys(path):
    keys = []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, keyid, key = line.split("+", 2)  # base64 may hold "+"
        key = base64.b64decode(key, validate=True)
        if key[0] == 1:
            want = hashlib.sha256(name.encode() + b"\n\x01" + key[1:]).digest()[:4]
            pub = Ed25519PublicKey.from_public_bytes(key[1:])
        elif key[0] == 2:
            want = hashlib.sha256(key[1:]).digest()[:4]
            pub = serialization.load_der_public_key(key[1:])
            assert isinstance(pub.curve, ec.SECP256R1)
        else:
            raise Bad("vkey type %d" % key[0])
        if want.hex() != keyid:
            raise Bad("vkey %s: key id %s, computed %s" % (name, keyid, want.hex()))
        keys.append((name, bytes.fromhex(keyid), key[0], pub))
    if not keys:
        raise Bad("no verifier keys in " + path)
    return keys


def open_note(data, vkeys, what):
    """Verify a signed checkpoint; returns (origin, size, root)."""
    if b"\n\n" not in data or not data.endswith(b"\n"):
        raise Bad(what + ": not a signed note")
    text, sigs = data.split(b"\n\n", 1)
    text += b"\n"
    good = 0
    for line in sigs.decode().splitlines():
        dash, name, blob = line.split(" ")
        if dash != "\u2014":
            raise Bad(what + ": bad signature line")
        raw = base64.b64decode(blob, validate=True)
        for vname, vid, vtype, pub in vkeys:
            if name != vname or raw[:4] != vid:
                continue
            try:
                if vtype == 1:
                    pub.verify(raw[4:], text)
                else:
                    pub.verify(raw[4:], text, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                raise Bad("%s: signature by %s+%s does not verify" % (what, vname, vid.hex()))
            good += 1
    if good == 0:
        raise Bad(what + ": no signature by a given key")
    lines = text.decode().split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise Bad(what + ": not a checkpoint body")
    size = int(lines[1])
    if str(size) != lines[1]:
        raise Bad(what + ": size not canonical")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Bad(what + ": root")
    return lines[0], size, root


def tile_path(level, n, width):
    """C2SP tlog-tiles: tile/<L>/<N>[.p/<W>], N in x-prefixed 3-digit groups."""
    s = str(n)
    s = "0" * (-len(s) % 3) + s
    groups = [s[i:i + 3] for i in range(0, len(s), 3)]
    p = "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])
    p = "tile/%s/%s" % (level, p)
    if width < 256:
        p += ".p/%d" % width
    return p


def read(d, rel):
    path = os.path.join(d, rel)
    if not os.path.exists(path):
        raise Bad(rel + ": missing")
    with open(path, "rb") as f:
        return f.read()


def check_export(d, vkeys):
    origin, size, root = open_note(read(d, "checkpoint"), vkeys, "checkpoint")
    # the leaves, from the entry bundles
    leaves = []
    for n in range((size + 255) // 256):
        width = min(256, size - 256 * n)
        rel = tile_path("entries", n, width)
        b, off = read(d, rel), 0
        for i in range(width):
            if off + 2 > len(b):
                raise Bad(rel + ": too few entries")
            ln = int.from_bytes(b[off:off + 2], "big")
            entry = b[off + 2:off + 2 + ln]
            if len(entry) != ln:
                raise Bad(rel + ": entry cut short")
            off += 2 + ln
            leaf = json.loads(entry)
            if list(leaf)[:2] != ["v", "seq"] or leaf["v"] != 1 or leaf["seq"] != len(leaves):
                raise Bad("leaf %d: not a v1 leaf with its own seq" % len(leaves))
            leaves.append(leaf_hash(entry))
        if off != len(b):
            raise Bad(rel + ": trailing bytes")
    tree = Tree(leaves)
    if tree.mth(0, size) != root:
        raise Bad("the leaves do not give the signed root")
    # every hash tile: level L holds the roots of complete subtrees of 256^L
    ntiles, level, span = 0, 0, 1
    while size // span > 0:
        count = size // span
        for n in range((count + 255) // 256):
            width = min(256, count - 256 * n)
            want = b"".join(tree.mth((256 * n + j) * span, (256 * n + j + 1) * span)
                            for j in range(width))
            if read(d, tile_path(level, n, width)) != want:
                raise Bad(tile_path(level, n, width) + ": differs")
            ntiles += 1
        level, span = level + 1, span * 256
    # every checkpoint: signed, and a root of a prefix of these leaves
    sizes = []
    cdir = os.path.join(d, "checkpoints")
    for name in sorted(os.listdir(cdir), key=int):
        o, s, r = open_note(read(d, "checkpoints/" + name), vkeys, "checkpoints/" + name)
        if str(s) != name or o != origin or s > size or tree.mth(0, s) != r:
            raise Bad("checkpoints/%s: not a checkpoint of this log" % name)
        sizes.append(s)
    if not sizes or sizes[-1] != size:
        raise Bad("checkpoints/: the last checkpoint is missing")
    print("verified %d leaves, %d hash tiles, %d checkpoints (%s)" %
          (size, ntiles, len(sizes), ",".join(map(str, sizes))))


def check_prove(path, vkeys):
    p = json.load(open(path))
    _, size, root = open_note(p["checkpoint"].encode(), vkeys, "checkpoint")
    if size != p["size"]:
        raise Bad("size")
    if "index" in p:
        h = leaf_hash(p["leaf"].encode())
        if base64.b64decode(p["leaf_hash"]) != h:
            raise Bad("leaf hash")
        proof = [base64.b64decode(x) for x in p["inclusion"]]
        if json.loads(p["leaf"])["seq"] != p["index"]:
            raise Bad("leaf seq")
        if not verify_inclusion(h, p["index"], size, proof, root):
            raise Bad("inclusion proof does not verify")
        print("leaf %d is in the signed tree of size %d" % (p["index"], size))
    else:
        _, m, mroot = open_note(p["from_checkpoint"].encode(), vkeys, "from_checkpoint")
        proof = [base64.b64decode(x) for x in p["consistency"]]
        if m != p["from"] or not verify_consistency(m, size, mroot, root, proof):
            raise Bad("consistency proof does not verify")
        print("the signed tree of size %d is consistent with that of size %d" % (m, size))


def main(argv):
    if len(argv) != 4 or argv[1] not in ("export", "prove"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        vkeys = load_vkeys(argv[3])
        (check_export if argv[1] == "export" else check_prove)(argv[2], vkeys)
    except (Bad, ValueError, KeyError, OSError) as e:
        print("FAILED: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
