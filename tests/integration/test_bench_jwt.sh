#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# custody-bench jwt and x509 still work end to end: a short run of every algorithm
# (custodyd on a SoftHSM2 token made by the benchmark, its one-thread load
# generator, the baselines and the p11-kit pair) exits 0, which it does only
# when every answer was a right token, custodyd counted as many tokens as
# were received and exited 0; and its JSON holds a measured rate for every
# run. Nothing about time is asserted.
#
# usage: test_bench_jwt.sh CUSTODY-BENCH CUSTODYD CUSTODY
set -euo pipefail

bench=$1
custodyd=$2
custody=$3
work=$(mktemp -d /tmp/test_bench_jwt.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! "$bench" jwt --conns 1,4 --seconds 0.5 --dir "$work" \
	--custodyd "$custodyd" --custody "$custody" --json \
	>"$work/out.json" 2>"$work/err"; then
	echo "FAIL: custody-bench jwt exited non-zero" >&2
	cat "$work/err" >&2
	exit 1
fi
/usr/bin/python3 - "$work/out.json" <<'PY'
import json, sys

d = json.load(open(sys.argv[1]))
algs = {a["alg"]: a for a in d["algs"]}
assert set(algs) == {"ed25519", "ecdsa-p256", "rsa-pss-3072"}, algs.keys()
for name, a in algs.items():
    runs = a["jwt"] + [a["jwt_paced_half_peak"]]
    assert [r["connections"] for r in a["jwt"]] == [1, 4], (name, a["jwt"])
    for r in runs:
        assert r["n"] > 0 and r["errors"] == 0, (name, r)
        assert r["latency"]["p50_us"] > 0, (name, r)
        assert r["custodyd_cpu_us_per_request"] > 0, (name, r)
    print("ok: %s: %s JWT/s at 1 and 4 connections, %d paced"
          % (name, [round(r["per_second"]) for r in a["jwt"]],
             a["jwt_paced_half_peak"]["n"]))
assert d["custodyd"] == {"exit": "exit status 0", "error_lines": 0}, d["custodyd"]
print("ok: custodyd exited 0")
PY

# custody-bench x509, with the runs over TCP and mutual TLS
if ! "$bench" x509 --algs ecdsa-p256 --conns 2 --seconds 0.5 --tls \
	--dir "$work" --custodyd "$custodyd" --custody "$custody" --json \
	>"$work/x509.json" 2>"$work/x509.err"; then
	echo "FAIL: custody-bench x509 --tls exited non-zero" >&2
	cat "$work/x509.err" >&2
	exit 1
fi
/usr/bin/python3 - "$work/x509.json" <<'PY'
import json, sys

d = json.load(open(sys.argv[1]))
assert d["credential"] == "x509", d.get("credential")
(a,) = d["algs"]
for r in a["jwt"] + a["tls"] + [a["jwt_paced_half_peak"]]:
    assert r["n"] > 0 and r["errors"] == 0, r
assert [r["connections"] for r in a["tls"]] == [2], a["tls"]
assert d["custodyd"] == {"exit": "exit status 0", "error_lines": 0}, d["custodyd"]
print("ok: x509: %d certificates/s over the Unix socket, %d over mutual TLS"
      % (round(a["jwt"][0]["per_second"]), round(a["tls"][0]["per_second"])))
PY
