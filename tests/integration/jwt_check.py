#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check what custodyd's HTTP API gives with code custody did not write.

Run by Debian's interpreter (/usr/bin/python3) with Debian's python3-jwcrypto
and python3-cryptography only (FORMATS.md section 7). Each command prints
what it found and exits 1 with the reason when something is wrong.

  jwt_check.py jwks JWKS.json KEY.json...
      every key (POST /v1/keys answers) is in the JWKS once: kid is the
      RFC 7638 thumbprint (computed by jwcrypto), use "sig", the JWS alg of
      its algorithm, and the same public key as its SPKI
  jwt_check.py verify JWKS.json TOKEN ALG ISS AUD
      python3-jwcrypto, pinned to ALG, with the key of the header's kid:
      signature, iss, aud, exp, nbf; the header is exactly {alg, kid, typ:
      "JWT"}; prints the payload (compact JSON)
  jwt_check.py byhand JWKS.json TOKEN
      the signature checked with python3-cryptography alone (EdDSA: Ed25519;
      ES256: 64 bytes of raw r||s, made DER), and refused once altered
  jwt_check.py leaf DB ANSWER.json BODY POLICY PRINCIPAL RULE KEY_ID
      the credential.jwt leaf of the token of a JWT answer, found by the
      SHA-256 of its signing input: at seq log_index, allow, principal, key,
      the SHA-256 of the request BODY's bytes and of the POLICY file, the
      rule, and a detail that matches the token (claim values only hashed)
  jwt_check.py problems LIST
      each line of LIST, "FILE STATUS LABEL", names an answer that must be
      an RFC 9457 problem of that status; FILE.text, if it exists, holds a
      text its detail must mention
  jwt_check.py absent DB TEXT...
      no leaf of the log holds any TEXT (claim values never reach the log)
  jwt_check.py inclusion PROOF.json DB
      an answer of /v1/log/proof/inclusion checked with RFC 6962 hashing
      written here: the leaf is the log's leaf at that index, and leaf hash
      plus audit path give the root of the checkpoint the answer carries
  jwt_check.py tiles DB SIZE TILE ENTRIES
      tile/0/000[.p/SIZE] holds the leaf hashes of the first SIZE leaves,
      tile/entries/... their bytes (C2SP tlog-tiles, SIZE <= 256)
  jwt_check.py slow SOCKET SECONDS
      clients that send half their headers, half a body, a byte at a time,
      or nothing after an answer: the server must close each after about
      SECONDS (the request-timeout), and answer another client meanwhile
  jwt_check.py maxconn SOCKET MAX
      MAX connections open and answered; more are closed by the server at
      once while the first MAX still work; once all are closed,
      custody_connections_open goes back down and MAX new ones work
"""

import base64
import hashlib
import json
import socket
import sqlite3
import sys
import threading
import time

# python3-jwcrypto and python3-cryptography are imported by the commands
# that use them (they take most of a run's start-up time)


class Bad(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Bad(what)


def b64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def split_token(token):
    parts = token.split(".")
    need(len(parts) == 3, "not a JWS compact serialisation")
    return parts, json.loads(b64u(parts[0])), json.loads(b64u(parts[1])), b64u(parts[2])


JWS_ALG = {"ed25519": "EdDSA", "ecdsa-p256": "ES256", "ecdsa-p384": "ES384",
           "rsa-pss-3072": "PS256"}


def load_jwks(path):
    d = json.load(open(path))
    need(isinstance(d, dict) and list(d) == ["keys"], "a JWKS is {\"keys\": [...]}")
    return d["keys"]


def public_of_jwk(j):
    from jwcrypto import jwk
    return jwk.JWK(**j).get_op_key("verify")


# ---- jwks --------------------------------------------------------------------


def cmd_jwks(jwks_path, *key_paths):
    from cryptography.hazmat.primitives import serialization
    from jwcrypto import jwk
    keys = load_jwks(jwks_path)
    for j in keys:
        need(j.get("use") == "sig", "a JWK without use sig: %s" % j)
        need(j.get("kid") == jwk.JWK(**j).thumbprint(),
             "kid %s is not the RFC 7638 thumbprint" % j.get("kid"))
        need(not any(p in j for p in ("d", "p", "q", "dp", "dq", "qi")),
             "a JWK with private members")
    for kp in key_paths:
        k = json.load(open(kp))
        found = [j for j in keys if j["kid"] == k["kid"]]
        need(len(found) == 1, "key %s (kid %s) is in the JWKS %d times" %
             (k["id"], k["kid"], len(found)))
        j = found[0]
        need(j["alg"] == JWS_ALG[k["alg"]], "key %s: alg %s" % (k["id"], j["alg"]))
        spki = serialization.load_der_public_key(base64.b64decode(k["spki"]))
        raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        need(public_of_jwk(j).public_bytes(*raw) == spki.public_bytes(*raw),
             "key %s: the JWK is not its SPKI" % k["id"])
    print("%d JWKs, %d keys found in them" % (len(keys), len(key_paths)))


# ---- verify (jwcrypto) --------------------------------------------------------


def cmd_verify(jwks_path, token, alg, iss, aud):
    from jwcrypto import jwk, jwt
    _, header, _, _ = split_token(token)
    need(sorted(header) == ["alg", "kid", "typ"], "header members %s" % sorted(header))
    need(header["alg"] == alg and header["typ"] == "JWT", "header %s" % header)
    ks = jwk.JWKSet()
    for j in load_jwks(jwks_path):
        ks.add(jwk.JWK(**j))
    t = jwt.JWT(jwt=token, key=ks, algs=[alg],
                check_claims={"iss": iss, "aud": aud, "exp": None, "nbf": None,
                              "iat": None, "jti": None, "sub": None})
    payload = json.loads(t.claims)
    need(json.loads(t.header) == header, "jwcrypto saw another header")
    # the pin is real: the same token under another alg is refused
    other = "ES256" if alg != "ES256" else "EdDSA"
    try:
        jwt.JWT(jwt=token, key=ks, algs=[other])
        raise Bad("jwcrypto accepted it under alg %s" % other)
    except Bad:
        raise
    except Exception:
        pass
    print(json.dumps(payload, separators=(",", ":"), sort_keys=True))


# ---- byhand (python3-cryptography) ----------------------------------------------


def cmd_byhand(jwks_path, token):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    parts, header, _, sig = split_token(token)
    tbs = (parts[0] + "." + parts[1]).encode()
    found = [j for j in load_jwks(jwks_path) if j["kid"] == header["kid"]]
    need(len(found) == 1, "kid %s not in the JWKS" % header["kid"])
    j = found[0]

    if header["alg"] == "EdDSA":
        need(j["kty"] == "OKP" and j["crv"] == "Ed25519", "not an Ed25519 JWK")
        pub = ed25519.Ed25519PublicKey.from_public_bytes(b64u(j["x"]))
        need(len(sig) == 64, "an Ed25519 signature of %d bytes" % len(sig))

        def verify(s, m):
            pub.verify(s, m)
    elif header["alg"] == "ES256":
        need(j["kty"] == "EC" and j["crv"] == "P-256", "not a P-256 JWK")
        x, y = b64u(j["x"]), b64u(j["y"])
        need(len(x) == 32 and len(y) == 32, "P-256 coordinates")
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
        need(len(sig) == 64, "ES256 is raw r||s of 64 bytes, not %d" % len(sig))

        def verify(s, m):
            r, s_ = int.from_bytes(s[:32], "big"), int.from_bytes(s[32:], "big")
            pub.verify(encode_dss_signature(r, s_), m, ec.ECDSA(hashes.SHA256()))
    else:
        raise Bad("byhand knows EdDSA and ES256, not %s" % header["alg"])
    try:
        verify(sig, tbs)
    except InvalidSignature:
        raise Bad("the signature does not verify")
    for bad_sig, bad_tbs in ((sig[:10] + bytes([sig[10] ^ 1]) + sig[11:], tbs),
                             (sig, tbs[:-1] + b"A" if tbs[-1:] != b"A" else tbs[:-1] + b"B")):
        try:
            verify(bad_sig, bad_tbs)
            raise Bad("an altered token verifies")
        except InvalidSignature:
            pass
    print("%s signature of kid %s verified by hand" % (header["alg"], header["kid"]))


# ---- the log -------------------------------------------------------------------


def leaves(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return [(seq, bytes(data)) for seq, data in
                c.execute("SELECT seq, data FROM audit_leaves ORDER BY seq")]
    finally:
        c.close()


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def cmd_leaf(db, answer_path, body_path, policy_path, principal, rule, key_id):
    answer = json.load(open(answer_path))
    token, log_index = answer["token"], answer["log_index"]
    parts, header, payload, _ = split_token(token)
    tbs = sha256_hex((parts[0] + "." + parts[1]).encode())
    found = []
    for seq, data in leaves(db):
        l = json.loads(data)
        if l.get("tbs_sha256") == tbs:
            found.append((seq, l))
    need(len(found) == 1, "%d leaves with tbs_sha256 %s" % (len(found), tbs))
    seq, l = found[0]
    need(seq == int(log_index) and l["seq"] == seq,
         "the leaf is seq %d, the answer said log_index %s" % (seq, log_index))
    need(l["event"] == "credential.jwt", "event %s" % l["event"])
    need(l["decision"] == "allow" and "reason" not in l, "decision %s" % l["decision"])
    need(l["principal"] == principal, "principal %s" % l["principal"])
    need(l["key"] == {"id": key_id, "kid": header["kid"]}, "key %s" % l["key"])
    need(l["request_sha256"] == sha256_hex(open(body_path, "rb").read()),
         "request_sha256 is not the SHA-256 of the body sent")
    need(l["policy"] == {"sha256": sha256_hex(open(policy_path, "rb").read()),
                         "rule": rule}, "policy %s" % l["policy"])
    d = l["detail"]
    for k in ("sub", "aud", "iat", "exp", "jti"):
        need(d.get(k) == payload[k], "detail %s: %r, the token has %r" % (k, d.get(k), payload[k]))
    need(d.get("ttl") == payload["exp"] - payload["iat"], "detail ttl %s" % d.get("ttl"))
    custom = {k: v for k, v in payload.items()
              if k not in ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "act")}
    want = {k: sha256_hex(compact(v)) for k, v in custom.items()}
    need(d.get("claims_sha256", {}) == want,
         "claims_sha256 %s, want %s" % (d.get("claims_sha256"), want))
    if "act" in payload:
        need(d.get("act_sha256") == sha256_hex(compact(payload["act"])),
             "act_sha256 %s" % d.get("act_sha256"))
    else:
        need("act_sha256" not in d, "act_sha256 without act")
    print("leaf %d: credential.jwt allow by %s, rule %s" % (seq, principal, rule))


def cmd_problems(list_path):
    bad = []
    n = 0
    for line in open(list_path):
        path, status, label = line.rstrip("\n").split(" ", 2)
        n += 1
        try:
            d = json.load(open(path))
            need(isinstance(d, dict), "not an object")
            need(d.get("status") == int(status), "status %r" % d.get("status"))
            need(isinstance(d.get("type"), str) and d["type"].startswith("urn:custody:problem:"),
                 "type %r" % d.get("type"))
            need(isinstance(d.get("title"), str) and d["title"], "no title")
            need(isinstance(d.get("detail"), str) and d["detail"], "no detail")
            need(set(d) <= {"type", "title", "status", "detail", "rule"},
                 "members %s" % sorted(d))
            try:
                text = open(path + ".text").read()
            except FileNotFoundError:
                text = ""
            need(text in d["detail"], "the detail does not mention %r" % text)
        except (Bad, ValueError, OSError) as e:
            bad.append("%s: %s" % (label, e))
    for b in bad:
        print("# %s" % b, file=sys.stderr)
    need(not bad, "%d of %d answers are not the problem expected" % (len(bad), n))
    print("%d problem answers checked" % n)


def cmd_absent(db, *texts):
    for seq, data in leaves(db):
        for t in texts:
            need(t.encode() not in data, "leaf %d holds %r" % (seq, t))
    print("none of %d values is in the log" % len(texts))


# ---- RFC 6962 (section 2.1), written here --------------------------------------


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index, size, lh, path):
    """RFC 9162 section 2.1.3.2."""
    need(0 <= index < size, "index %d not in a tree of size %d" % (index, size))
    fn, sn, r = index, size - 1, lh
    for p in path:
        need(sn != 0, "the audit path is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    need(sn == 0, "the audit path is too short")
    return r


def mth(hashes_):
    """Merkle tree hash of a list of leaf hashes (RFC 6962 2.1)."""
    if len(hashes_) == 1:
        return hashes_[0]
    k = 1
    while k * 2 < len(hashes_):
        k *= 2
    return node_hash(mth(hashes_[:k]), mth(hashes_[k:]))


def cmd_inclusion(proof_path, db):
    p = json.load(open(proof_path))
    note = p["checkpoint"]
    text = note.split("\n\n", 1)[0].split("\n")
    size, root = int(text[1]), base64.b64decode(text[2])
    need(p["size"] == size, "proof size %s, checkpoint size %d" % (p["size"], size))
    index = p["index"]
    all_leaves = leaves(db)
    need(len(all_leaves) >= size, "the checkpoint covers more than the log")
    need(p["leaf"].encode() == all_leaves[index][1], "the leaf is not the log's leaf %d" % index)
    lh = leaf_hash(p["leaf"].encode())
    need(base64.b64decode(p["leaf_hash"]) == lh, "leaf_hash")
    path = [base64.b64decode(x) for x in p["inclusion"]]
    need(root_from_inclusion(index, size, lh, path) == root,
         "the inclusion proof does not give the checkpoint's root")
    need(mth([leaf_hash(d) for _, d in all_leaves[:size]]) == root,
         "the checkpoint's root is not that of the log's first %d leaves" % size)
    # an altered path must fail
    if path:
        bad = [bytes([path[0][0] ^ 1]) + path[0][1:]] + path[1:]
        need(root_from_inclusion(index, size, lh, bad) != root, "an altered path verifies")
    print("leaf %d is in the checkpoint of size %d (RFC 6962, recomputed)" % (index, size))


def cmd_tiles(db, size, tile_path, entries_path):
    size = int(size)
    need(0 < size <= 256, "tiles: size %d" % size)
    data = [d for _, d in leaves(db)[:size]]
    need(len(data) == size, "the log is shorter than %d" % size)
    need(open(tile_path, "rb").read() == b"".join(leaf_hash(d) for d in data),
         "tile/0 is not the leaf hashes")
    bundle = b"".join(len(d).to_bytes(2, "big") + d for d in data)
    need(open(entries_path, "rb").read() == bundle, "tile/entries is not the leaves")
    print("tiles of %d leaves match the log" % size)


# ---- sockets --------------------------------------------------------------------


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def http_get(s, path):
    """One GET on an open connection (keep-alive); returns (status, body)."""
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise Bad("closed before an answer to %s" % path)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for h in lines[1:]:
        k, v = h.split(":", 1)
        if k.strip().lower() == "content-length":
            length = int(v)
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise Bad("closed in the middle of an answer")
        rest += chunk
    return status, rest[:length]


def closed_by_server(s, within):
    """True if the server closes s (EOF or reset) within `within` seconds."""
    s.settimeout(within)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def slow_half_headers(path, seconds):
    s = connect(path)
    t0 = time.monotonic()
    s.sendall(b"POST /v1/credentials/jwt HTTP/1.1\r\nHost: x\r\nContent-Ty")
    need(closed_by_server(s, seconds + 5), "half the headers: still open after %.1f s" % (seconds + 5))
    return time.monotonic() - t0


def slow_half_body(path, seconds):
    s = connect(path)
    t0 = time.monotonic()
    s.sendall(b"POST /v1/credentials/jwt HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ag")
    need(closed_by_server(s, seconds + 5), "half a body: still open after %.1f s" % (seconds + 5))
    return time.monotonic() - t0


def slow_trickle(path, seconds):
    """A byte every 0.25 s, never a whole request."""
    s = connect(path)
    t0 = time.monotonic()
    for ch in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
        try:
            s.sendall(bytes([ch]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        if closed_by_server(s, 0.25):
            return time.monotonic() - t0
        need(time.monotonic() - t0 < seconds + 5, "a trickle: never closed")
    raise Bad("a trickle: never closed")


def slow_idle(path, seconds):
    """A request answered, then nothing: closed about SECONDS after the answer."""
    s = connect(path)
    status, _ = http_get(s, "/healthz")
    need(status == 200, "keep-alive: /healthz %d" % status)
    t0 = time.monotonic()
    need(closed_by_server(s, seconds + 5), "an idle keep-alive connection: still open")
    return time.monotonic() - t0


def cmd_slow(path, seconds):
    """Four slow clients at once; each must be closed after about SECONDS,
    while others are served at once."""
    seconds = float(seconds)
    kinds = [("half the headers", slow_half_headers), ("half a body", slow_half_body),
             ("a trickle", slow_trickle), ("idle after an answer", slow_idle)]
    took, errors = {}, []

    def run(name, fn):
        try:
            took[name] = fn(path, seconds)
        except Exception as e:  # reported below
            errors.append("%s: %s" % (name, e))

    threads = [threading.Thread(target=run, args=k) for k in kinds]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    s = connect(path)
    status, _ = http_get(s, "/healthz")
    s.close()
    served = time.monotonic() - t0
    for t in threads:
        t.join()
    need(status == 200 and served < 1, "while the slow clients wait, /healthz: %d after %.2f s"
         % (status, served))
    need(not errors, "; ".join(errors))
    for name, t in took.items():
        need(t >= seconds - 0.5, "%s: closed after %.2f s, before the request-timeout" % (name, t))
    print("slow clients closed after " +
          ", ".join("%s %.1f s" % (n, took[n]) for n, _ in kinds) +
          "; another client served meanwhile in %.3f s" % served)


def metric(path, name):
    s = connect(path)
    try:
        status, body = http_get(s, "/metrics")
    finally:
        s.close()
    need(status == 200, "/metrics: %d" % status)
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise Bad("no metric %s" % name)


def metric_soon(path, name, secs=5):
    """metric(), asked again for up to secs while the server refuses the
    connection (it learns of closed connections asynchronously, so it may
    still count them against max-connections for a moment)"""
    deadline = time.monotonic() + secs
    while True:
        try:
            return metric(path, name)
        except (Bad, ConnectionResetError, BrokenPipeError) as e:
            need(time.monotonic() < deadline, "%s unread for %ds: %s" % (name, secs, e))
            time.sleep(0.1)


def cmd_maxconn(path, maxc):
    maxc = int(maxc)
    first = []
    for i in range(maxc):
        s = connect(path)
        status, _ = http_get(s, "/healthz")
        need(status == 200, "connection %d: %d" % (i, status))
        first.append(s)
    extra = [connect(path) for _ in range(3)]
    for i, s in enumerate(extra):
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            continue
        s.settimeout(3)
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise Bad("connection %d over the limit is neither closed nor answered" % (maxc + i))
        need(data == b"" or closed_by_server(s, 3),
             "connection %d over the limit was served and left open: %r" % (maxc + i, data[:80]))
        need(not data.startswith(b"HTTP/1.1 200"),
             "connection %d over the limit was served: %r" % (maxc + i, data[:80]))
    for i, s in enumerate(first):
        status, _ = http_get(s, "/healthz")
        need(status == 200, "connection %d stopped working after the refusals" % i)
    for s in first + extra:
        s.close()
    # every slot is free again: the gauge goes back down, MAX new ones work
    deadline = time.monotonic() + 5
    while True:
        n = metric_soon(path, "custody_connections_open")
        if n <= 1:
            break
        need(time.monotonic() < deadline, "custody_connections_open stays at %g" % n)
        time.sleep(0.1)
    # the server learns of each close asynchronously (the gauge's own
    # connection may still hold a slot for a moment): MAX new connections
    # must all be served within 5 s
    deadline = time.monotonic() + 5
    while True:
        again, why = [], None
        try:
            for i in range(maxc):
                s = connect(path)
                again.append(s)
                status, _ = http_get(s, "/healthz")
                need(status == 200, "a new connection %d after the release: %d" % (i, status))
        except (Bad, ConnectionResetError, BrokenPipeError) as e:
            why = e
        for s in again:
            s.close()
        if why is None:
            break
        need(time.monotonic() < deadline,
             "%d new connections are not all served after the release: %s" % (maxc, why))
        time.sleep(0.1)
    refused = metric_soon(path, "custody_connections_refused_total")
    need(refused >= 3, "custody_connections_refused_total %g" % refused)
    print("%d connections served, 3 more closed by the server, slots freed" % maxc)


COMMANDS = {
    "jwks": (cmd_jwks, 1, None),
    "verify": (cmd_verify, 5, 5),
    "byhand": (cmd_byhand, 2, 2),
    "leaf": (cmd_leaf, 7, 7),
    "problems": (cmd_problems, 1, 1),
    "absent": (cmd_absent, 2, None),
    "inclusion": (cmd_inclusion, 2, 2),
    "tiles": (cmd_tiles, 4, 4),
    "slow": (cmd_slow, 2, 2),
    "maxconn": (cmd_maxconn, 2, 2),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    fn, lo, hi = COMMANDS[argv[1]]
    args = argv[2:]
    if len(args) < lo or (hi is not None and len(args) > hi):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        fn(*args)
    except (Bad, ValueError, KeyError, IndexError, TypeError, OSError) as e:
        print("FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    except Exception as e:  # jwcrypto's and cryptography's refusals
        print("FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
