#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check custody's X.509 certificates with code custody did not write.

Run by Debian's interpreter (/usr/bin/python3) with Debian's
python3-cryptography only. Each command prints what it found and exits 1
with the reason when something is wrong (the batch commands print one
"ok - ..." or "not ok - ..." line per item instead).

  x509_check.py mkcsrs DIR AGENT KEY OTHER_KEY
      requests built here, DER by hand, signed by KEY (PEM, P-256) unless
      said otherwise, into DIR/NAME.csr: good (SAN = AGENT, clientAuth,
      digitalSignature: must be accepted), dup-ku, dup-san (an extension
      twice), bc-pathlen (CA:FALSE with a pathLenConstraint), other-key-sig
      (signed by OTHER_KEY), flipped-sig (a bit of the signature flipped),
      two-extreq (a second extensionRequest attribute asking CA:TRUE, an
      extension 1.2.3.4.5 and the SAN),
      ms-extreq (Microsoft's extensionRequest asking CA:TRUE), ber-length
      (good, with a BER length on the outer SEQUENCE);
      ed25519-order1, -order2, -order4, -order8: an Ed25519 public key of
      small order (the identity, y = p - 1, y = 0, an 8-torsion point) with
      a signature forged for it (R the identity, S = 0), which verifies
  x509_check.py ca CA.pem KEY.json ALG SUBJECT TTL
      a self-signed CA certificate of custody ca init: for the key's SPKI,
      subject = issuer = SUBJECT (RFC 4514), validity TTL seconds, its
      signature by hand, and exactly the extensions basicConstraints
      (critical, CA:TRUE, pathlen 0), keyUsage (critical, digitalSignature
      keyCertSign cRLSign), SKI (RFC 5280 method 1), AKI = SKI
  x509_check.py leaf ANSWER.json CSR.pem ISSUER.pem ISSUER_ALG AGENT TTL EKU KU CHAIN.pem...
      an answer of POST /v1/credentials/x509: {certificate, chain, serial,
      expires_at, log_index}; the chain is the CHAIN files in order; the
      leaf: v3, empty subject, issuer = ISSUER's subject, the signature
      algorithm of ISSUER_ALG (RSA-PSS: SHA-256, MGF1-SHA-256, salt 32) in
      both places, verified by hand with ISSUER's key, the CSR's public key,
      a positive serial of 64 bits or more, notBefore now, notAfter -
      notBefore = TTL ("=N"), at most N ("<=N"), or ISSUER's notAfter
      ("ca"), and exactly the extensions basicConstraints (critical,
      CA:FALSE), keyUsage (critical, KU), extKeyUsage (EKU), SAN (critical,
      one URI: AGENT), SKI (method 1), AKI (ISSUER's SKI only); nothing of
      the CSR's subject
  x509_check.py cacsr CSR.pem KEY.json SUBJECT
      a request of custody ca csr: signed by the key, its SPKI, SUBJECT,
      and it asks for exactly basicConstraints (critical, CA:TRUE, pathlen
      0), keyUsage (critical, digitalSignature keyCertSign cRLSign) and SKI
  x509_check.py expired CSR.pem ROOT.pem ROOT.key OUT.pem
      a certificate for the request's key and with its extensions, signed
      by the root, that expired yesterday
  x509_check.py record DB ANSWER.json CSR.pem AGENT KEY_ID PRINCIPAL RULE POLICY CSR_KEY
      the certificate's credential.x509 decision leaf, found by the SHA-256
      of its TBSCertificate: the only one, at seq log_index, allow,
      principal, key, the policy's SHA-256 and rule, detail {serial,
      subject "", sans [AGENT], not_after, csr_sha256 (of the CSR's DER),
      csr_key}
  x509_check.py caleaf DB EVENT FILE KEY_ID RULE POLICY
      ca.init (FILE a certificate: tbs_sha256 of its TBSCertificate),
      ca.csr (FILE a request: of its CertificationRequestInfo) or
      ca.install (FILE the certificates: cert_sha256 of the first, the
      chain length, self_signed) leaf, allow, of that key, rule and policy
  x509_check.py denies DB POLICY LIST
      each line of LIST, "NAME|EVENT|PRINCIPAL|RULE|KEY_ID|BODY", is a
      refused request: one deny leaf holds the SHA-256 of BODY, of that
      event, principal, rule (with the policy's SHA-256), key, a reason and
      no tbs_sha256
  x509_check.py problem FILE STATUS TYPE
      FILE is an RFC 9457 problem of that status and type
"""

import base64
import datetime
import hashlib
import json
import os
import re
import sqlite3
import sys
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID


class Bad(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Bad(what)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def spki_of(pub):
    return pub.public_bytes(DER, SPKI)


# ---- DER, by hand ------------------------------------------------------------


def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        ln = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        ln = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + ln + content


def seq(*items):
    return tlv(0x30, b"".join(items))


def set_of(*items):
    return tlv(0x31, b"".join(sorted(items)))


def oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    out = bytes([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, out)


def integer(n):
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


NULL = b"\x05\x00"
TRUE = b"\x01\x01\xff"


def parse(b, i=0):
    """(tag, content start, end) of the TLV at i."""
    tag = b[i]
    n = b[i + 1]
    j = i + 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(b[j:j + k], "big")
        j += k
    return tag, j, j + n


def children(b, start, end):
    out = []
    i = start
    while i < end:
        t, s, e = parse(b, i)
        out.append((t, s, e, b[i:e]))
        i = e
    return out


# ---- mkcsrs --------------------------------------------------------------------

EXT_REQ = "1.2.840.113549.1.9.14"
MS_EXT_REQ = "1.3.6.1.4.1.311.2.1.14"


def ext(dotted, value, critical=False):
    return seq(oid(dotted), TRUE if critical else b"", tlv(0x04, value))


def ext_of(e, critical=False):
    return ext(e.oid.dotted_string, e.public_bytes(), critical)


def attr(dotted, *values):
    return seq(oid(dotted), set_of(*values))


def csr_der(key, name, attrs, signer=None, flip=False):
    cri = seq(integer(0), name.public_bytes(), spki_of(key.public_key()),
              tlv(0xA0, b"".join(sorted(attrs))))  # a SET OF: in DER order
    signer = signer or key
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        sig = signer.sign(cri, ec.ECDSA(hashes.SHA256()))
        alg = seq(oid("1.2.840.10045.4.3.2"))
    else:
        sig = signer.sign(cri)
        alg = seq(oid("1.3.101.112"))
    if flip:
        sig = sig[:-1] + bytes([sig[-1] ^ 1])
    return seq(cri, alg, tlv(0x03, b"\x00" + sig))


def pem(label, der):
    b = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


ED_L = 2**252 + 27742317777372353535851937790883648493
ED_P = 2**255 - 19


def small_order_csr(y, order):
    """A request for the Ed25519 point of that y and order, with a
    signature that verifies: R the identity, S = 0, a subject chosen so that
    k = SHA-512(R || A || M) is a multiple of the order ([S]B = R + [k]A)."""
    a = y.to_bytes(32, "little")
    r = (1).to_bytes(32, "little")
    for i in range(4096):
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "small %d" % i)])
        spki = seq(seq(oid("1.3.101.112")), tlv(0x03, b"\x00" + a))
        cri = seq(integer(0), name.public_bytes(), spki, tlv(0xA0, b""))
        k = int.from_bytes(hashlib.sha512(r + a + cri).digest(), "little") % ED_L
        if k % order == 0:
            return seq(cri, seq(oid("1.3.101.112")), tlv(0x03, b"\x00" + r + bytes(32)))
    raise Bad("no subject found for the point of order %d" % order)


def cmd_mkcsrs(d, agent, key_path, other_path):
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
    other = serialization.load_pem_private_key(open(other_path, "rb").read(), None)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "evil"),
                      x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, "Victim")])
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(agent)])
    ku = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    good = [ext_of(san, True), ext_of(eku), ext_of(ku, True)]
    ca = ext(ExtensionOID.BASIC_CONSTRAINTS.dotted_string, seq(b"\x01\x01\xff"), True)
    made = {
        "good": csr_der(key, name, [attr(EXT_REQ, seq(*good))]),
        "dup-ku": csr_der(key, name, [attr(EXT_REQ, seq(ext_of(ku, True), ext_of(ku, True)))]),
        "dup-san": csr_der(key, name, [attr(EXT_REQ, seq(ext_of(san, True), ext_of(eku),
                                                         ext_of(san, True)))]),
        "bc-pathlen": csr_der(key, name, [attr(EXT_REQ, seq(
            ext(ExtensionOID.BASIC_CONSTRAINTS.dotted_string, seq(integer(0)), True)))]),
        "other-key-sig": csr_der(key, name, [attr(EXT_REQ, seq(*good))], signer=other),
        "flipped-sig": csr_der(key, name, [attr(EXT_REQ, seq(*good))], flip=True),
        # the shorter attribute first in DER order: the one OpenSSL reads
        "two-extreq": csr_der(key, name, [attr(EXT_REQ, seq(ext_of(ku, True))), attr(
            EXT_REQ, seq(ca, ext("1.2.3.4.5", tlv(0x0C, b"hidden" * 4)), ext_of(san, True)))]),
        "ms-extreq": csr_der(key, name, [attr(MS_EXT_REQ, seq(ca))]),
    }
    # the good request with a BER length (one byte more than DER needs) on
    # its outer SEQUENCE, which no signature covers
    g = made["good"]
    _, start, end = parse(g)
    k = start - 2
    made["ber-length"] = bytes([0x30, 0x81 + k]) + b"\x00" + g[2:start] + g[start:end]
    # Ed25519 keys of small order: their "proof of possession" is forged
    small = {"ed25519-order1": (1, 1), "ed25519-order2": (ED_P - 1, 2), "ed25519-order4": (0, 4),
             "ed25519-order8": (int.from_bytes(bytes.fromhex(
                 "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"), 8)}
    for n, (y, order) in small.items():
        open(os.path.join(d, n + ".csr"), "w").write(
            pem("CERTIFICATE REQUEST", small_order_csr(y, order)))
    # the by-hand builder is right: what it signs parses and verifies
    for n, der in made.items():
        if n == "ber-length":
            need(len(der) == len(g) + 1 and der[-len(g) + 4:] == g[4:], "mkcsrs: ber-length")
            open(os.path.join(d, n + ".csr"), "w").write(pem("CERTIFICATE REQUEST", der))
            continue
        c = x509.load_der_x509_csr(der)
        need(c.is_signature_valid == (n not in ("other-key-sig", "flipped-sig")),
             "mkcsrs: %s: signature validity" % n)
        open(os.path.join(d, n + ".csr"), "w").write(pem("CERTIFICATE REQUEST", der))
    print("%d requests in %s" % (len(made), d))


# ---- certificates --------------------------------------------------------------

SIG_OID = {"ecdsa-p256": "1.2.840.10045.4.3.2", "ecdsa-p384": "1.2.840.10045.4.3.3",
           "ed25519": "1.3.101.112", "rsa-pss-3072": "1.2.840.113549.1.1.10"}
SHA256 = "2.16.840.1.101.3.4.2.1"
MGF1 = "1.2.840.113549.1.1.8"


def check_sigalg(alg_der, alg):
    """alg_der, an AlgorithmIdentifier, is custody's for alg."""
    _, s, e = parse(alg_der)
    kids = children(alg_der, s, e)
    need(kids and kids[0][3] == oid(SIG_OID[alg]), "signature algorithm %s for %s" %
         (alg_der.hex(), alg))
    if alg in ("ecdsa-p256", "ecdsa-p384", "ed25519"):
        need(len(kids) == 1, "%s: parameters in the AlgorithmIdentifier" % alg)
        return
    # RSASSA-PSS-params (RFC 4055): SHA-256, MGF1 with SHA-256, salt 32
    need(len(kids) == 2 and kids[1][0] == 0x30, "RSA-PSS without parameters")
    p = {t: raw for t, _, _, raw in children(alg_der, kids[1][1], kids[1][2])}
    need(set(p) == {0xA0, 0xA1, 0xA2} or set(p) == {0xA0, 0xA1, 0xA2, 0xA3},
         "RSA-PSS parameters %s" % sorted(p))

    def inner(raw):
        _, s, e = parse(raw)
        return raw[s:e]

    def hash_alg(raw):  # AlgorithmIdentifier with NULL or absent parameters
        return raw in (seq(oid(SHA256)), seq(oid(SHA256), NULL))

    need(hash_alg(inner(p[0xA0])), "RSA-PSS hash is not SHA-256")
    m = inner(p[0xA1])
    _, s, e = parse(m)
    mk = children(m, s, e)
    need(mk[0][3] == oid(MGF1) and hash_alg(mk[1][3]), "RSA-PSS MGF is not MGF1-SHA-256")
    need(inner(p[0xA2]) == integer(32), "RSA-PSS salt length is not 32")
    if 0xA3 in p:
        need(inner(p[0xA3]) == integer(1), "RSA-PSS trailer field")


def cert_parts(der):
    """TBSCertificate, the outer signatureAlgorithm and the TBS's one."""
    _, s, e = parse(der)
    tbs, alg, sig = children(der, s, e)
    need(sig[0] == 0x03 and der[sig[1]] == 0, "signature BIT STRING")
    _, ts, te = parse(tbs[3])
    tk = children(tbs[3], ts, te)
    # [0] version, serial, signature
    return tbs[3], alg[3], tk[2][3]


def verify_by_hand(pub, alg, sig, data):
    try:
        if alg == "ed25519":
            need(isinstance(pub, ed25519.Ed25519PublicKey), "the issuer's key is not Ed25519")
            pub.verify(sig, data)
        elif alg in ("ecdsa-p256", "ecdsa-p384"):
            need(isinstance(pub, ec.EllipticCurvePublicKey), "the issuer's key is not EC")
            h = hashes.SHA256() if alg == "ecdsa-p256" else hashes.SHA384()
            pub.verify(sig, data, ec.ECDSA(h))
        else:
            need(isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 3072,
                 "the issuer's key is not RSA-3072")
            pub.verify(sig, data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                              salt_length=32), hashes.SHA256())
    except InvalidSignature:
        raise Bad("the signature does not verify by hand (%s)" % alg)


def exts_of(cert):
    out = {}
    for e in cert.extensions:
        need(e.oid not in out, "extension %s twice" % e.oid.dotted_string)
        out[e.oid] = e
    return out


def load_cert(path):
    return x509.load_pem_x509_certificate(open(path, "rb").read())


def utc(dt):
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp())


def rfc4514_name(s):
    """CN=a,O=b as custody reads it (the last RDN first in the DER)."""
    attrs = {"CN": x509.oid.NameOID.COMMON_NAME, "O": x509.oid.NameOID.ORGANIZATION_NAME,
             "OU": x509.oid.NameOID.ORGANIZATIONAL_UNIT_NAME, "C": x509.oid.NameOID.COUNTRY_NAME}
    rdns = [x509.RelativeDistinguishedName([x509.NameAttribute(attrs[t], v)])
            for t, v in (p.split("=", 1) for p in s.split(","))]
    return x509.Name(list(reversed(rdns)))


def cmd_ca(ca_path, key_path, alg, subject, ttl):
    c = load_cert(ca_path)
    k = json.load(open(key_path))
    der = c.public_bytes(DER)
    need(c.version == x509.Version.v3, "not v3")
    need(spki_of(c.public_key()) == base64.b64decode(k["spki"]), "not the key's SPKI")
    want = rfc4514_name(subject)
    need(c.subject == want and c.issuer == want,
         "subject %s issuer %s, not %s" % (c.subject.rfc4514_string(),
                                             c.issuer.rfc4514_string(), subject))
    tbs, alg_der, tbs_alg = cert_parts(der)
    need(tbs == c.tbs_certificate_bytes, "TBSCertificate")
    need(alg_der == tbs_alg, "the two signature algorithms differ")
    check_sigalg(alg_der, alg)
    verify_by_hand(c.public_key(), alg, c.signature, c.tbs_certificate_bytes)
    nb, na = utc(c.not_valid_before), utc(c.not_valid_after)
    need(abs(nb - time.time()) < 60, "notBefore is not now")
    need(na - nb == int(ttl), "validity %d s, not %s" % (na - nb, ttl))
    need(c.serial_number > 0 and c.serial_number.bit_length() >= 64, "serial")
    e = exts_of(c)
    ski = x509.SubjectKeyIdentifier.from_public_key(c.public_key())
    need(set(e) == {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE,
                    ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER},
         "extensions %s" % [o.dotted_string for o in e])
    bc = e[ExtensionOID.BASIC_CONSTRAINTS]
    need(bc.critical and bc.value.ca and bc.value.path_length == 0, "basicConstraints %s" % bc)
    ku = e[ExtensionOID.KEY_USAGE]
    need(ku.critical and ku.value.digital_signature and ku.value.key_cert_sign and
         ku.value.crl_sign and not (ku.value.content_commitment or ku.value.key_encipherment
                                    or ku.value.data_encipherment or ku.value.key_agreement),
         "keyUsage %s" % ku)
    need(not e[ExtensionOID.SUBJECT_KEY_IDENTIFIER].critical and
         e[ExtensionOID.SUBJECT_KEY_IDENTIFIER].value == ski, "SKI")
    aki = e[ExtensionOID.AUTHORITY_KEY_IDENTIFIER]
    need(not aki.critical and aki.value.key_identifier == ski.digest and
         aki.value.authority_cert_issuer is None, "AKI")
    print("CA %s: %s, %d s" % (subject, alg, na - nb))


EKU_OID = {"clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
           "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH}
KU_ATTR = {"digitalSignature": "digital_signature", "keyEncipherment": "key_encipherment",
           "keyAgreement": "key_agreement"}


def cmd_leaf(ans_path, csr_path, issuer_path, alg, agent, ttl, eku, ku, *chain):
    a = json.load(open(ans_path))
    need(sorted(a) == ["certificate", "chain", "expires_at", "log_index", "serial"],
         "answer members %s" % sorted(a))
    need(isinstance(a["log_index"], int) and a["log_index"] >= 0, "log_index")
    want_chain = [load_cert(p).public_bytes(DER) for p in chain]
    got_chain = [x509.load_pem_x509_certificate(p.encode()).public_bytes(DER)
                 for p in a["chain"]]
    need(got_chain == want_chain, "the chain is not %s" % list(chain))
    c = x509.load_pem_x509_certificate(a["certificate"].encode())
    der = c.public_bytes(DER)
    ca = load_cert(issuer_path)
    csr = x509.load_pem_x509_csr(open(csr_path, "rb").read())
    need(c.version == x509.Version.v3, "not v3")
    need(c.subject.public_bytes() == b"\x30\x00", "the subject is not empty: %s" % c.subject)
    need(c.issuer.public_bytes() == ca.subject.public_bytes(), "the issuer is not the CA")
    tbs, alg_der, tbs_alg = cert_parts(der)
    need(tbs == c.tbs_certificate_bytes, "TBSCertificate")
    need(alg_der == tbs_alg, "the two signature algorithms differ")
    check_sigalg(alg_der, alg)
    verify_by_hand(ca.public_key(), alg, c.signature, c.tbs_certificate_bytes)
    need(spki_of(c.public_key()) == spki_of(csr.public_key()), "not the CSR's public key")
    need(c.serial_number > 0 and c.serial_number.bit_length() >= 64,
         "serial %x" % c.serial_number)
    need(re.fullmatch(r"[0-9a-f]+", a["serial"]) and int(a["serial"], 16) == c.serial_number,
         "serial %s in the answer" % a["serial"])
    nb, na = utc(c.not_valid_before), utc(c.not_valid_after)
    need(abs(nb - time.time()) < 60, "notBefore is not now")
    need(utc(ca.not_valid_before) <= nb and na <= utc(ca.not_valid_after),
         "outside the CA's validity")
    need(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(na)) == a["expires_at"],
         "expires_at %s" % a["expires_at"])
    if ttl.startswith("<="):
        need(0 < na - nb <= int(ttl[2:]), "validity %d s, more than %s" % (na - nb, ttl[2:]))
    elif ttl == "ca":
        need(na == utc(ca.not_valid_after), "notAfter is not the CA's")
    else:
        need(na - nb == int(ttl.lstrip("=")), "validity %d s, not %s" % (na - nb, ttl))
    e = exts_of(c)
    need(set(e) == {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE,
                    ExtensionOID.EXTENDED_KEY_USAGE, ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
                    ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER},
         "extensions %s" % [o.dotted_string for o in e])
    bc = e[ExtensionOID.BASIC_CONSTRAINTS]
    need(bc.critical and not bc.value.ca and bc.value.path_length is None,
         "basicConstraints %s" % bc)
    k = e[ExtensionOID.KEY_USAGE]
    need(k.critical, "keyUsage not critical")
    want_ku = {KU_ATTR[u] for u in ku.split(",")}
    for at in ("digital_signature", "content_commitment", "key_encipherment",
               "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign"):
        need(getattr(k.value, at) == (at in want_ku), "keyUsage %s: %s" % (at, k.value))
    need(set(e[ExtensionOID.EXTENDED_KEY_USAGE].value) == {EKU_OID[u] for u in eku.split(",")}
         and len(e[ExtensionOID.EXTENDED_KEY_USAGE].value) == len(eku.split(",")),
         "extKeyUsage %s" % e[ExtensionOID.EXTENDED_KEY_USAGE].value)
    san = e[ExtensionOID.SUBJECT_ALTERNATIVE_NAME]
    need(san.critical and list(san.value) == [x509.UniformResourceIdentifier(agent)],
         "subjectAltName %s" % san)
    ski = e[ExtensionOID.SUBJECT_KEY_IDENTIFIER]
    need(not ski.critical and
         ski.value == x509.SubjectKeyIdentifier.from_public_key(c.public_key()), "SKI")
    aki = e[ExtensionOID.AUTHORITY_KEY_IDENTIFIER]
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    need(not aki.critical and aki.value.key_identifier == ca_ski and
         aki.value.authority_cert_issuer is None and
         aki.value.authority_cert_serial_number is None, "AKI %s" % aki)
    for a_ in csr.subject:
        need(a_.value.encode() not in der, "the CSR's subject %r is in the certificate" % a_.value)
    print("leaf %s: %s, %d s, for %s" % (a["serial"], alg, na - nb, agent))


def cmd_cacsr(csr_path, key_path, subject):
    csr = x509.load_pem_x509_csr(open(csr_path, "rb").read())
    k = json.load(open(key_path))
    need(csr.is_signature_valid, "the request's signature does not verify")
    need(spki_of(csr.public_key()) == base64.b64decode(k["spki"]), "not the key's SPKI")
    need(csr.subject == rfc4514_name(subject), "subject %s" % csr.subject.rfc4514_string())
    e = exts_of(csr)
    need(set(e) == {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE,
                    ExtensionOID.SUBJECT_KEY_IDENTIFIER},
         "extensions asked %s" % [o.dotted_string for o in e])
    bc, ku = e[ExtensionOID.BASIC_CONSTRAINTS], e[ExtensionOID.KEY_USAGE]
    need(bc.critical and bc.value.ca and bc.value.path_length == 0, "basicConstraints %s" % bc)
    need(ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and
         ku.value.digital_signature and not ku.value.key_encipherment, "keyUsage %s" % ku)
    need(e[ExtensionOID.SUBJECT_KEY_IDENTIFIER].value ==
         x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), "SKI")
    print("CA request %s" % subject)


def cmd_expired(csr_path, root_path, root_key_path, out):
    """A CA certificate for the CSR's key, signed by the root, expired."""
    csr = x509.load_pem_x509_csr(open(csr_path, "rb").read())
    root = load_cert(root_path)
    rk = serialization.load_pem_private_key(open(root_key_path, "rb").read(), None)
    now = datetime.datetime.utcnow()
    c = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(root.subject)
         .public_key(csr.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=3))
         .not_valid_after(now - datetime.timedelta(days=1)))
    for e in csr.extensions:
        c = c.add_extension(e.value, e.critical)
    c = c.sign(rk, hashes.SHA256())
    open(out, "wb").write(c.public_bytes(serialization.Encoding.PEM))


# ---- the audit leaves ------------------------------------------------------------


def all_leaves(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    return [json.loads(d) for (d,) in c.execute("SELECT data FROM audit_leaves ORDER BY seq")]


def cmd_record(db, ans_path, csr_path, agent, key_id, principal, rule, policy, csr_key):
    a = json.load(open(ans_path))
    c = x509.load_pem_x509_certificate(a["certificate"].encode())
    csr = x509.load_pem_x509_csr(open(csr_path, "rb").read())
    h = sha256_hex(c.tbs_certificate_bytes)
    found = [l for l in all_leaves(db) if l.get("tbs_sha256") == h]
    need(len(found) == 1, "%d leaves with the TBSCertificate's SHA-256" % len(found))
    l = found[0]
    need(l["seq"] == a["log_index"], "seq %s, log_index %s" % (l["seq"], a["log_index"]))
    need(l["event"] == "credential.x509" and l["decision"] == "allow", l)
    need(l["principal"] == principal, "principal %s" % l["principal"])
    need(l["key"]["id"] == key_id, "key %s" % l["key"])
    need(l["policy"] == {"sha256": sha256_hex(open(policy, "rb").read()), "rule": rule},
         "policy %s" % l["policy"])
    need("reason" not in l, "a reason on an allow leaf")
    na = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(utc(c.not_valid_after)))
    want = {"serial": a["serial"], "subject": "", "sans": [agent], "not_after": na,
            "csr_sha256": sha256_hex(csr.public_bytes(DER)), "csr_key": csr_key}
    need(l["detail"] == want, "detail %s, not %s" % (l["detail"], want))
    print("leaf %d: credential.x509 of serial %s" % (l["seq"], a["serial"]))


def cmd_caleaf(db, event, path, key_id, rule, policy):
    ls = [l for l in all_leaves(db) if l["event"] == event and l.get("key", {}).get("id") == key_id
          and l.get("decision") == "allow"]
    data = open(path, "rb").read()
    if event == "ca.csr":
        csr = x509.load_pem_x509_csr(data)
        ls = [l for l in ls if l.get("tbs_sha256") == sha256_hex(csr.tbs_certrequest_bytes)]
        need(len(ls) == 1, "%d ca.csr leaves with the request's SHA-256" % len(ls))
        need(ls[0]["detail"] == {"subject": "/" + "/".join(
            "%s=%s" % (a.rfc4514_attribute_name, a.value) for a in csr.subject)},
            "detail %s" % ls[0]["detail"])
    else:
        certs = [x509.load_pem_x509_certificate(b"-----BEGIN" + p)
                 for p in data.split(b"-----BEGIN")[1:]]
        c = certs[0]
        if event == "ca.init":
            ls = [l for l in ls if l.get("tbs_sha256") == sha256_hex(c.tbs_certificate_bytes)]
            need(len(ls) == 1, "%d ca.init leaves with the TBSCertificate's SHA-256" % len(ls))
            nb, na = utc(c.not_valid_before), utc(c.not_valid_after)
            need(ls[0]["detail"].get("ttl") == na - nb, "detail %s" % ls[0]["detail"])
        else:
            h = sha256_hex(c.public_bytes(DER))
            ls = [l for l in ls if l.get("detail", {}).get("cert_sha256") == h]
            need(len(ls) == 1, "%d ca.install leaves with the certificate's SHA-256" % len(ls))
            d = ls[0]["detail"]
            na = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(utc(c.not_valid_after)))
            need(d["serial"] == "%x" % c.serial_number or int(d["serial"], 16) == c.serial_number,
                 "serial %s" % d)
            need(d["not_after"] == na and d["chain_length"] == len(certs) - 1 and
                 d["self_signed"] == (len(certs) == 1 and c.issuer == c.subject),
                 "detail %s" % d)
            need("tbs_sha256" not in ls[0], "a tbs_sha256 on an install leaf")
    need(ls[0]["policy"] == {"sha256": sha256_hex(open(policy, "rb").read()), "rule": rule},
         "policy %s" % ls[0]["policy"])
    print("%s leaf %d" % (event, ls[0]["seq"]))


def cmd_denies(db, policy, listf):
    ls = all_leaves(db)
    polsha = sha256_hex(open(policy, "rb").read())
    for line in open(listf):
        name, event, principal, rule, key, body = line.rstrip("\n").split("|")
        h = sha256_hex(open(body, "rb").read())
        try:
            f = [l for l in ls if l.get("request_sha256") == h]
            need(len(f) == 1, "%d leaves with the request's SHA-256" % len(f))
            l = f[0]
            need(l["event"] == event and l["decision"] == "deny", "%s %s" % (l["event"], l["decision"]))
            need(l["principal"] == principal, "principal %s" % l["principal"])
            need(l["policy"] == {"sha256": polsha, "rule": rule}, "policy %s" % l["policy"])
            need(isinstance(l.get("reason"), str) and l["reason"], "no reason")
            need("tbs_sha256" not in l and "detail" not in l, "a tbs_sha256 or detail")
            need(l.get("key", {}).get("id") == key, "key %s" % l.get("key"))
            print("ok - %s: its %s deny leaf (%s, %s): %s" % (name, event, principal, rule,
                                                              l["reason"]))
        except Bad as e:
            print("not ok - %s: its %s deny leaf: %s" % (name, event, e))


def cmd_problem(path, status, typ):
    d = json.load(open(path))
    need(isinstance(d, dict), "not an object")
    need(d.get("status") == int(status) and d.get("type") == typ,
         "status %s type %s, not %s %s" % (d.get("status"), d.get("type"), status, typ))
    need(isinstance(d.get("title"), str) and isinstance(d.get("detail"), str) and d["detail"],
         "title, detail")


def main(argv):
    cmds = {"mkcsrs": cmd_mkcsrs, "ca": cmd_ca, "cacsr": cmd_cacsr, "expired": cmd_expired,
            "leaf": cmd_leaf, "record": cmd_record, "caleaf": cmd_caleaf,
            "denies": cmd_denies, "problem": cmd_problem}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        cmds[argv[1]](*argv[2:])
    except Bad as e:
        print("%s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
