#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check merkle_dump's output with a second RFC 9162 implementation.

Usage: merkle_check.py [--expect-failures] FILE|-

Reads the JSON lines that tests/unit/merkle_dump prints (leaves, the root of
every size, inclusion and consistency proofs, an end record with the counts),
recomputes every root from the leaf data and verifies every proof with the
code below, which is written from RFC 9162 sections 2.1.1, 2.1.3.2 and
2.1.4.2 and shares nothing with custody's C. Each proof is also tampered with
(a flipped bit, an element dropped or added, other index or sizes) and must
then be rejected, so that a verifier accepting everything cannot pass.

Only the Python standard library is used (Debian's /usr/bin/python3).
Prints "N passed, M failed" last. Exit status: 0 if nothing failed, 1 if a
check failed, 2 if the input is unusable. With --expect-failures (for a dump
made with merkle_dump --tamper), 0 and 1 are swapped.
"""

import hashlib
import json
import sys

HASH_LEN = 32


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")


def split(n):
    """Largest power of two strictly less than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    """MTH(D[a:b]) over a list of leaf hashes (RFC 9162 2.1.1), memoised."""

    def __init__(self, leaves):
        self.leaves = leaves
        self.memo = {}

    def mth(self, a, b):
        if b == a:
            return EMPTY_ROOT
        if b - a == 1:
            return self.leaves[a]
        key = (a, b)
        if key not in self.memo:
            k = split(b - a)
            self.memo[key] = node_hash(self.mth(a, a + k), self.mth(a + k, b))
        return self.memo[key]


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    if len(leaf) != HASH_LEN or any(len(p) != HASH_LEN for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m, n, root_m, root_n, proof):
    """RFC 9162 2.1.4.2, with the strict rule that size 0 proves nothing."""
    if m == 0 or m > n:
        return False
    if any(len(p) != HASH_LEN for p in proof):
        return False
    if m == n:
        return not proof and root_m == root_n
    if not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, root_m)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root_m and sr == root_n


def self_test():
    """Anchor this file's hashing to the RFC 6962 8-leaf test tree
    (transparency-dev/merkle testonly/constants.go, also in
    tests/data/merkle/rfc6962_8leaf_tree.txt)."""
    data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
            "606162636465666768696a6b6c6d6e6f"]
    roots = {
        0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    }
    t = Tree([leaf_hash(bytes.fromhex(d)) for d in data])
    for size, want in roots.items():
        if t.mth(0, size).hex() != want:
            raise SystemExit("merkle_check: self-test failed for size %d"
                             % size)


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            if self.failed <= 20:
                print("FAIL: " + what)


def flip(proof, i, byte, bit):
    p = bytearray(proof[i])
    p[byte] ^= 1 << bit
    return proof[:i] + [bytes(p)] + proof[i + 1:]


def check_inclusion(c, tree, n_leaves, rec):
    i, n = rec["index"], rec["size"]
    proof = [bytes.fromhex(h) for h in rec["proof"]]
    name = "inclusion %d of %d" % (i, n)
    if not 0 <= i < n <= n_leaves:
        c.check(False, name + ": index or size out of range")
        return
    leaf, root = tree.leaves[i], tree.mth(0, n)
    c.check(verify_inclusion(leaf, i, n, proof, root), name)
    # Tampered versions must all be rejected. The leaves are distinct, so
    # a proof is never also the proof for another index or size.
    bad = []
    for e in range(len(proof)):
        bad.append(("bit flipped in element %d" % e,
                    i, n, flip(proof, e, (7 * e + i) % HASH_LEN, e % 8),
                    root, leaf))
        bad.append(("element %d dropped" % e, i, n,
                    proof[:e] + proof[e + 1:], root, leaf))
    bad.append(("element added", i, n, proof + [EMPTY_ROOT], root, leaf))
    bad.append(("element prepended", i, n, [leaf] + proof, root, leaf))
    if n > 1:
        j = i + 1 if i + 1 < n else i - 1
        bad.append(("claimed for index %d" % j, j, n, proof, root, leaf))
        bad.append(("another leaf", i, n, proof, root, tree.leaves[j]))
        bad.append(("root of size %d" % (n - 1), i, n, proof,
                    tree.mth(0, n - 1), leaf))
    if n < n_leaves:
        bad.append(("claimed in size %d" % (n + 1), i, n + 1, proof,
                    tree.mth(0, n + 1), leaf))
    if n - 1 > i:
        bad.append(("claimed in size %d" % (n - 1), i, n - 1, proof,
                    tree.mth(0, n - 1), leaf))
    for what, bi, bn, bp, broot, bleaf in bad:
        c.check(not verify_inclusion(bleaf, bi, bn, bp, broot),
                "%s: accepted with %s" % (name, what))


def check_consistency(c, tree, n_leaves, rec):
    m, n = rec["m"], rec["n"]
    proof = [bytes.fromhex(h) for h in rec["proof"]]
    name = "consistency %d -> %d" % (m, n)
    if not 0 < m <= n <= n_leaves:
        c.check(False, name + ": sizes out of range")
        return
    rm, rn = tree.mth(0, m), tree.mth(0, n)
    c.check(verify_consistency(m, n, rm, rn, proof), name)
    bad = []
    for e in range(len(proof)):
        bad.append(("bit flipped in element %d" % e, m, n, rm, rn,
                    flip(proof, e, (5 * e + m) % HASH_LEN, (e + n) % 8)))
        bad.append(("element %d dropped" % e, m, n, rm, rn,
                    proof[:e] + proof[e + 1:]))
    bad.append(("element added", m, n, rm, rn, proof + [rm]))
    bad.append(("old root prepended", m, n, rm, rn, [rm] + proof))
    if m > 1:
        bad.append(("claimed from size %d" % (m - 1), m - 1, n,
                    tree.mth(0, m - 1), rn, proof))
    if m < n:
        bad.append(("roots swapped", m, n, rn, rm, proof))
        bad.append(("claimed from size %d" % (m + 1), m + 1, n,
                    tree.mth(0, m + 1), rn, proof))
        bad.append(("claimed to size %d" % (n - 1), m, n - 1, rm,
                    tree.mth(0, n - 1), proof))
    if n < n_leaves:
        bad.append(("claimed to size %d" % (n + 1), m, n + 1, rm,
                    tree.mth(0, n + 1), proof))
    bad.append(("claimed from size 0", 0, n, EMPTY_ROOT, rn, proof))
    for what, bm, bn, brm, brn, bp in bad:
        c.check(not verify_consistency(bm, bn, brm, brn, bp),
                "%s: accepted with %s" % (name, what))


def run(f, c):
    leaves, recs, end = [], [], None
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise SystemExit("merkle_check: line %d: %s" % (lineno, e))
        if end is not None:
            raise SystemExit("merkle_check: line %d after the end record"
                             % lineno)
        t = rec.get("type")
        if t == "leaf":
            if rec["index"] != len(leaves):
                raise SystemExit("merkle_check: line %d: leaf out of order"
                                 % lineno)
            leaves.append(leaf_hash(bytes.fromhex(rec["data"])))
        elif t in ("root", "inclusion", "consistency"):
            recs.append(rec)
        elif t == "end":
            end = rec
        else:
            raise SystemExit("merkle_check: line %d: unknown record %r"
                             % (lineno, t))
    if end is None:
        raise SystemExit("merkle_check: no end record (truncated input?)")
    counts = {k: sum(1 for r in recs if r["type"] == k)
              for k in ("root", "inclusion", "consistency")}
    counts["leaves"] = len(leaves)
    for k in ("leaves", "root", "inclusion", "consistency"):
        want = end["roots" if k == "root" else k]
        if counts[k] != want or want == 0:
            raise SystemExit("merkle_check: %d %s records, end says %d"
                             % (counts[k], k, want))

    tree = Tree(leaves)
    n_leaves = len(leaves)
    for rec in recs:
        if rec["type"] == "root":
            n = rec["size"]
            c.check(0 <= n <= n_leaves and
                    bytes.fromhex(rec["hash"]) == tree.mth(0, n),
                    "root of size %d" % n)
        elif rec["type"] == "inclusion":
            check_inclusion(c, tree, n_leaves, rec)
        else:
            check_consistency(c, tree, n_leaves, rec)
    print("merkle_check: %d leaves, %d roots, %d inclusion and %d "
          "consistency proofs" % (n_leaves, counts["root"],
                                  counts["inclusion"], counts["consistency"]))


def main(argv):
    args = argv[1:]
    expect_failures = False
    if args and args[0] == "--expect-failures":
        expect_failures = True
        args = args[1:]
    if len(args) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        self_test()
        c = Checker()
        if args[0] == "-":
            run(sys.stdin, c)
        else:
            with open(args[0]) as f:
                run(f, c)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError, OSError) as e:
        print("merkle_check: bad input: %r" % (e,), file=sys.stderr)
        return 2
    print("%d passed, %d failed" % (c.passed, c.failed))
    if expect_failures:
        return 0 if c.failed > 0 else 1
    return 1 if c.failed > 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
