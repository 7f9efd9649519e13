/* SPDX-License-Identifier: Apache-2.0 */
/*
 * custody-bench jwt: JWT issuance by custodyd over its Unix socket, with
 * every decision durable in the audit log before the token signs
 * (ARCHITECTURE.md section 6), next to what the token alone can do.
 *
 * In a work directory of its own it makes a SoftHSM2 token, PIN files, a
 * policy and a configuration, runs 'custody init', starts custodyd and makes
 * one key per algorithm over the API. Then, for each algorithm:
 *
 *   - JWT requests in a closed loop on N keep-alive connections, for each N
 *     of --conns, after a warm-up, all driven by one thread with epoll
 *     (hload_run);
 *   - the same at 16 connections, paced (open loop) at half the best rate:
 *     one request due every 1/rate s, sent on an idle connection or queued
 *     until one is, its latency counted from when it was due;
 *
 *   - right after, while custodyd is idle, three baselines on the same
 *     token with as many threads as custodyd has workers: raw C_SignInit +
 *     C_Sign (the mechanism custody uses, over a signing input custodyd
 *     signed in this run), the same + custody's OpenSSL verify, and the raw
 *     loop through a p11-kit server/client pair (p11-kit 0.24's RPC carries
 *     neither CKM_EDDSA nor CKM_SHA256_RSA_PKCS_PSS: the first baseline is
 *     then missing, the second made with CKM_RSA_PKCS_PSS over a SHA-256
 *     made here).
 *
 * The PKCS#11 types appear here because the baselines must bypass custody
 * to measure the token. Each run also says how many cores other processes
 * took meanwhile (/proc/stat less the two sides of the run): on a shared
 * machine that is what moves the numbers.
 *
 * It measures and prints. It fails (exit 1) on any incorrect result: an
 * answer that is not a 200 with a token of the right alg and kid (the first
 * token of each connection is also verified), a count of issued tokens that
 * differs from custodyd's metrics, a baseline signature that does not
 * verify, or a custodyd that dies or does not exit 0 on SIGTERM.
 */
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>

#include "alg.h"
#include "bench.h"
#include "err.h"
#include "httpc.h"
#include "pubkey.h"
#include "secret.h"
#include "token-priv.h" /* token_rv_name */
#include "util.h"

#ifndef CUSTODY_BENCH_CUSTODY
#define CUSTODY_BENCH_CUSTODY "custody"
#endif
#ifndef CUSTODY_BENCH_CUSTODYD
#define CUSTODY_BENCH_CUSTODYD "custodyd"
#endif

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define DEFAULT_P11KIT_CLIENT                                                  \
	"/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
#define TOKEN_LABEL	       "bench"
#define AGENT_PREFIX	       "spiffe://bench.test/agent/"
#define AUDIENCE	       "bench"
#define JWT_TTL		       300
#define MAX_CONN_LEVELS	       8
#define MAX_CONNS	       1024
#define MAX_WORKERS	       64
#define PACED_CONNS	       16
#define PACED_SHARE	       0.5 /* of the best closed-loop rate */
#define WARMUP_SECONDS	       1.0
#define READY_TIMEOUT_S	       60
#define STOP_TIMEOUT_S	       30
#define MAX_CONSECUTIVE_ERRORS 50 /* a connection gives up after these */
#define REPORTED_ERRORS	       5  /* answers printed per run */
#define GOAL_SIGN_VERIFY       0.8
#define GOAL_P11KIT	       1.0
#define GOAL_P99_MS	       1.0

static volatile sig_atomic_t interrupted;

/* ---- the algorithms ------------------------------------------------------
 */

static const struct bench_alg {
	const char *name; /* custody's */
	enum custody_alg alg;
	const char *jws; /* the header's alg */
	CK_MECHANISM_TYPE mech;
	const char *mech_name;
} bench_algs[] = {
    {"ed25519", CUSTODY_ALG_ED25519, "EdDSA", CKM_EDDSA, "CKM_EDDSA"},
    {"ecdsa-p256", CUSTODY_ALG_ECDSA_P256, "ES256", CKM_ECDSA,
	"CKM_ECDSA over SHA-256"},
    {"ecdsa-p384", CUSTODY_ALG_ECDSA_P384, "ES384", CKM_ECDSA,
	"CKM_ECDSA over SHA-384"},
    {"rsa-pss-3072", CUSTODY_ALG_RSA_PSS_3072, "PS256", CKM_SHA256_RSA_PKCS_PSS,
	"CKM_SHA256_RSA_PKCS_PSS"},
};

#define NALGS (sizeof(bench_algs) / sizeof(bench_algs[0]))

/*
 * custody-bench x509 runs the same program for certificates: x509-ca keys
 * with a self-signed CA certificate made over the API, one P-256 CSR sent
 * by every request, and the certificate's TBSCertificate as the baselines'
 * message. Set once, by the command.
 */
static int x509_mode;
static char *bench_csr; /* x509: the request's PEM */
/* --tls: the client's TLS context and custodyd's listen-tcp port */
static SSL_CTX *bench_tls;
static int bench_port;

#define BENCH_BROKER "spiffe://bench.test/broker"

/* A certificate for key signed by ikey (itself when ikey is key), with the
 * extensions of exts ("name", "value" pairs). */
static X509 *
tls_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
    const char *const *exts)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	size_t i;
	int ok;

	ok = x != NULL && X509_set_version(x, X509_VERSION_3) == 1 &&
	     ASN1_INTEGER_set(X509_get_serialNumber(x),
		 (long)(now_ns() & 0xffffff) + 1) == 1 &&
	     X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
		 MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) == 1 &&
	     X509_set_issuer_name(x, issuer != NULL
					 ? X509_get_subject_name(issuer)
					 : X509_get_subject_name(x)) == 1 &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
	     X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL &&
	     X509_set_pubkey(x, key) == 1;
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	for (i = 0; ok && exts[i] != NULL; i += 2) {
		ok = (e = X509V3_EXT_conf(NULL, &ctx, exts[i], exts[i + 1])) !=
		     NULL;
		if (ok)
			ok = X509_add_ext(x, e, -1) == 1;
		X509_EXTENSION_free(e);
	}
	if (!ok || X509_sign(x, ikey, EVP_sha256()) <= 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int
write_pem_x509(const char *path, X509 *x, EVP_PKEY *k)
{
	FILE *f;
	int fd, ok;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) ==
		-1 ||
	    (f = fdopen(fd, "w")) == NULL) {
		errorx("%s: %s", path, strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return CUSTODY_E_IO;
	}
	ok = x != NULL
		 ? PEM_write_X509(f, x) == 1
		 : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
	if (fclose(f) != 0 || !ok) {
		errorx("writing %s failed", path);
		return CUSTODY_E_IO;
	}
	return 0;
}

/*
 * --tls: a test PKI in dir (a CA, custodyd's certificate for 127.0.0.1 and
 * its key, files), the client's context (its certificate names
 * BENCH_BROKER) and a free port on 127.0.0.1.
 */
static int
tls_setup(const char *dir, char **certp, char **keyp, char **cap)
{
	static const char *const ca_ext[] = {"basicConstraints",
	    "critical,CA:TRUE", "keyUsage", "critical,keyCertSign", NULL};
	static const char *const srv_ext[] = {"subjectAltName", "IP:127.0.0.1",
	    "extendedKeyUsage", "serverAuth", NULL};
	static const char *const cli_ext[] = {"subjectAltName",
	    "URI:" BENCH_BROKER, "extendedKeyUsage", "clientAuth", NULL};
	EVP_PKEY *cak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
		 *sk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
		 *ck = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *ca = NULL, *srv = NULL, *cli = NULL;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int r = CUSTODY_E_CRYPTO, fd;

	if ((*certp = path_join(dir, "tls-server.pem")) == NULL ||
	    (*keyp = path_join(dir, "tls-server.key")) == NULL ||
	    (*cap = path_join(dir, "tls-ca.pem")) == NULL)
		return CUSTODY_E_NOMEM;
	if (cak == NULL || sk == NULL || ck == NULL ||
	    (ca = tls_cert(cak, "custody-bench CA", NULL, cak, ca_ext)) ==
		NULL ||
	    (srv = tls_cert(sk, "127.0.0.1", ca, cak, srv_ext)) == NULL ||
	    (cli = tls_cert(ck, "broker", ca, cak, cli_ext)) == NULL) {
		errorx("making the test PKI failed");
		goto out;
	}
	if ((r = write_pem_x509(*cap, ca, NULL)) != 0 ||
	    (r = write_pem_x509(*certp, srv, NULL)) != 0 ||
	    (r = write_pem_x509(*keyp, NULL, sk)) != 0)
		goto out;
	r = CUSTODY_E_CRYPTO;
	if ((bench_tls = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_use_certificate(bench_tls, cli) != 1 ||
	    SSL_CTX_use_PrivateKey(bench_tls, ck) != 1 ||
	    X509_STORE_add_cert(SSL_CTX_get_cert_store(bench_tls), ca) != 1) {
		errorx("the client's TLS context failed");
		goto out;
	}
	SSL_CTX_set_verify(bench_tls, SSL_VERIFY_PEER, NULL);
	/* a port the kernel says is free now */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
		errorx("finding a free port: %s", strerror(errno));
		if (fd != -1)
			(void)close(fd);
		r = CUSTODY_E_IO;
		goto out;
	}
	(void)close(fd);
	bench_port = ntohs(sin.sin_port);
	r = 0;
out:
	ERR_clear_error();
	X509_free(ca);
	X509_free(srv);
	X509_free(cli);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(sk);
	EVP_PKEY_free(ck);
	return r;
}

static const char *
cred(void)
{
	return x509_mode ? "X.509" : "JWT";
}

static const char *
cmd_name(void)
{
	return x509_mode ? "x509" : "jwt";
}

static const struct bench_alg *
bench_alg_find(const char *name)
{
	size_t i;

	for (i = 0; i < NALGS; i++)
		if (strcmp(bench_algs[i].name, name) == 0)
			return &bench_algs[i];
	return NULL;
}

/* ---- options --------------------------------------------------------------
 */

struct jwt_opts {
	const struct bench_alg *algs[NALGS];
	size_t nalgs;
	unsigned conns[MAX_CONN_LEVELS];
	size_t nconns;
	double seconds;
	unsigned workers;
	const char *dir, *module, *p11kit_client, *custodyd, *custody;
	int keep, json;
	int tls; /* also over TCP with mutual TLS */
};

static const char x509_help[] =
    "usage: custody-bench x509 [options]\n"
    "\n"
    "X.509 issuance by custodyd (POST /v1/credentials/x509 on its Unix\n"
    "socket; each decision durable in the audit log before the token\n"
    "signs), as custody-bench jwt measures JWTs: an x509-ca key per\n"
    "algorithm with a self-signed CA certificate made over the API, one\n"
    "P-256 CSR made here and sent by every request, the baselines signing\n"
    "a certificate's TBSCertificate. Every answer must be a 200 with a\n"
    "certificate (the first of each connection is verified with the CA's\n"
    "key). The options are custody-bench jwt's; see its --help.\n";

static const char jwt_help[] =
    "usage: custody-bench jwt [options]\n"
    "\n"
    "JWT issuance by custodyd (POST /v1/credentials/jwt on its Unix socket;\n"
    "each decision durable in the audit log before the token signs) in a\n"
    "closed loop at each number of keep-alive connections, then at 16\n"
    "connections paced at half the best rate (a request due every 1/rate\n"
    "s; its latency counts from then). One thread drives all connections.\n"
    "Next to baselines measured in the same run on the same SoftHSM2 token,\n"
    "with as many threads as custodyd has workers: raw C_SignInit + C_Sign,\n"
    "the same + OpenSSL verify, and C_Sign through a p11-kit server/client\n"
    "pair; ratios and the goals of ARCHITECTURE.md section 6. Token, data\n"
    "directory, policy and custodyd are made in a work directory and\n"
    "removed at the end. p11-kit 0.24's RPC carries neither CKM_EDDSA (that\n"
    "baseline is then missing) nor CKM_SHA256_RSA_PKCS_PSS (CKM_RSA_PKCS_PSS\n"
    "over a SHA-256 made here stands in for it).\n"
    "\n"
    "Every answer must be a 200 with a token of the right alg and kid (the\n"
    "first of each connection is verified); any other answer, a baseline\n"
    "signature that does not verify, or a custodyd that dies or does not\n"
    "exit 0 on SIGTERM makes the exit status 1. Nothing about time is\n"
    "asserted: a goal not met is printed as such.\n"
    "\n"
    "Options:\n"
    "  --algs LIST           algorithms, comma-separated\n"
    "                        [ed25519,ecdsa-p256,rsa-pss-3072]\n"
    "  --conns LIST          concurrent connections, comma-separated "
    "[1,16,64]\n"
    "  --seconds S           measured seconds per run, after 1 s of warm-up "
    "[5]\n"
    "  --workers N           custodyd's workers and the baselines' threads\n"
    "                        [the cores online]\n"
    "  --dir DIR             make the work directory in DIR [/var/tmp]\n"
    "  --module PATH         the SoftHSM2 PKCS#11 module\n"
    "                        [" DEFAULT_MODULE "]\n"
    "  --p11-kit-client PATH the p11-kit client module\n"
    "                        [" DEFAULT_P11KIT_CLIENT "]\n"
    "  --custodyd PATH       [" CUSTODY_BENCH_CUSTODYD "]\n"
    "  --custody PATH        [" CUSTODY_BENCH_CUSTODY "]\n"
    "  --keep                keep the work directory (custodyd's log, the\n"
    "                        audit log)\n"
    "  --json                print the results as one JSON object\n"
    "  --tls                 also the closed-loop runs over TCP with mutual\n"
    "                        TLS (listen-tcp on 127.0.0.1; a test PKI made\n"
    "                        here; the client's SPIFFE ID is the principal)\n"
    "  --help                this text\n";

static int jwt_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
jwt_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "custody-bench %s: ", cmd_name());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'custody-bench %s --help'.\n", cmd_name());
	return EXIT_USAGE;
}

static int
parse_algs(const char *s, struct jwt_opts *o)
{
	char buf[256], *tok, *save = NULL;
	const struct bench_alg *a;
	size_t i;

	if (strlen(s) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	o->nalgs = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if ((a = bench_alg_find(tok)) == NULL)
			return -1;
		for (i = 0; i < o->nalgs; i++)
			if (o->algs[i] == a)
				return -1;
		o->algs[o->nalgs++] = a;
	}
	return o->nalgs > 0 ? 0 : -1;
}

static int
parse_conns(const char *s, struct jwt_opts *o)
{
	return parse_u64_list(
	    s, MAX_CONNS, o->conns, MAX_CONN_LEVELS, &o->nconns);
}

static int
jwt_parse(int argc, char **argv, struct jwt_opts *o)
{
	enum {
		O_ALGS = 256,
		O_CONNS,
		O_SECONDS,
		O_WORKERS,
		O_DIR,
		O_MODULE,
		O_P11KIT,
		O_CUSTODYD,
		O_CUSTODY,
		O_KEEP,
		O_JSON,
		O_TLS,
		O_HELP
	};
	static const struct option opts[] = {
	    {"algs", required_argument, NULL, O_ALGS},
	    {"conns", required_argument, NULL, O_CONNS},
	    {"seconds", required_argument, NULL, O_SECONDS},
	    {"workers", required_argument, NULL, O_WORKERS},
	    {"dir", required_argument, NULL, O_DIR},
	    {"module", required_argument, NULL, O_MODULE},
	    {"p11-kit-client", required_argument, NULL, O_P11KIT},
	    {"custodyd", required_argument, NULL, O_CUSTODYD},
	    {"custody", required_argument, NULL, O_CUSTODY},
	    {"keep", no_argument, NULL, O_KEEP},
	    {"json", no_argument, NULL, O_JSON},
	    {"tls", no_argument, NULL, O_TLS},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	char *end;
	long ncpu;
	int ch;

	memset(o, 0, sizeof(*o));
	(void)parse_algs("ed25519,ecdsa-p256,rsa-pss-3072", o);
	(void)parse_conns("1,16,64", o);
	o->seconds = 5;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	o->workers = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS : ncpu;
	o->dir = "/var/tmp";
	o->module = DEFAULT_MODULE;
	o->p11kit_client = DEFAULT_P11KIT_CLIENT;
	o->custodyd = CUSTODY_BENCH_CUSTODYD;
	o->custody = CUSTODY_BENCH_CUSTODY;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case O_ALGS:
			if (parse_algs(optarg, o) != 0)
				return jwt_usage_error(
				    "--algs: distinct names among "
				    "ed25519,ecdsa-p256,ecdsa-p384,rsa-pss-"
				    "3072, comma-separated");
			break;
		case O_CONNS:
			if (parse_conns(optarg, o) != 0)
				return jwt_usage_error(
				    "--conns: up to %d numbers from 1 to %d, "
				    "comma-separated",
				    MAX_CONN_LEVELS, MAX_CONNS);
			break;
		case O_SECONDS:
			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !(o->seconds >= 0.5 && o->seconds <= 3600))
				return jwt_usage_error(
				    "--seconds: a number of seconds from 0.5 "
				    "to 3600");
			break;
		case O_WORKERS:
			if (parse_u64(optarg, 1, MAX_WORKERS, &v) != 0)
				return jwt_usage_error(
				    "--workers: a number from 1 to %d",
				    MAX_WORKERS);
			o->workers = (unsigned)v;
			break;
		case O_DIR:
			o->dir = optarg;
			break;
		case O_MODULE:
			o->module = optarg;
			break;
		case O_P11KIT:
			o->p11kit_client = optarg;
			break;
		case O_CUSTODYD:
			o->custodyd = optarg;
			break;
		case O_CUSTODY:
			o->custody = optarg;
			break;
		case O_KEEP:
			o->keep = 1;
			break;
		case O_JSON:
			o->json = 1;
			break;
		case O_TLS:
			o->tls = 1;
			break;
		case O_HELP:
			fputs(x509_mode ? x509_help : jwt_help, stdout);
			return -1;
		default:
			fputs(x509_mode ? x509_help : jwt_help, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return jwt_usage_error(
		    "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* ---- files ----------------------------------------------------------------
 */

static int write_file(const char *path, mode_t mode, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Create path (it must not exist) with mode and the formatted text. */
static int
write_file(const char *path, mode_t mode, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int fd, n, r = CUSTODY_E_IO;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		errorx("out of memory");
		return CUSTODY_E_NOMEM;
	}
	if ((fd = open(path,
		 O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)) ==
	    -1) {
		errorx("create %s: %s", path, strerror(errno));
		goto out;
	}
	if (util_write_all(fd, s, (size_t)n) != 0 || fsync(fd) == -1) {
		errorx("write %s: %s", path, strerror(errno));
		(void)close(fd);
		goto out;
	}
	if (close(fd) == -1) {
		errorx("close %s: %s", path, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (s != NULL)
		OPENSSL_cleanse(s, (size_t)n); /* a PIN file's text */
	free(s);
	return r;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) == -1 && errno != ENOENT) {
		errorx("remove %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Remove dir and everything under it (no symlink is followed). */
static int
rm_tree(const char *dir)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0
								: CUSTODY_E_IO;
}

/* The last lines of a child's stderr, on ours. */
static void
print_tail(const char *what, const char *path)
{
	char buf[4096];
	ssize_t n;
	off_t size;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		(void)lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		(void)lseek(fd, 0, SEEK_SET);
	if ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		fprintf(stderr, "---- the end of %s (%s):\n%s%s----\n", what,
		    path, buf, buf[n - 1] == '\n' ? "" : "\n");
	}
	(void)close(fd);
}

/* Lines of path that contain needle; -1 if it cannot be read. */
static long
count_lines(const char *path, const char *needle)
{
	char line[1024];
	long n = 0;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	(void)fclose(f);
	return n;
}

/* ---- child processes ------------------------------------------------------
 */

struct child {
	const char *name;
	pid_t pid; /* 0: none */
	int reaped;
	int status;
	char errpath[PATH_MAX];
};

/*
 * Start argv (argv[0] looked up in PATH) with stdin from /dev/null and
 * stdout and stderr into files. It gets SIGTERM if this thread exits first
 * (PR_SET_PDEATHSIG), so an aborted benchmark leaves no server behind. It
 * makes no PKCS#11 call between fork and exec.
 */
static int
child_spawn(struct child *c, const char *name, char *const argv[],
    const char *outpath, const char *errpath)
{
	pid_t parent = getpid(), pid;
	int fd;

	memset(c, 0, sizeof(*c));
	c->name = name;
	snprintf(c->errpath, sizeof(c->errpath), "%s", errpath);
	(void)fflush(stdout);
	(void)fflush(stderr);
	if ((pid = fork()) == -1) {
		errorx("fork: %s", strerror(errno));
		return CUSTODY_E_IO;
	}
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		if ((fd = open("/dev/null", O_RDONLY)) == -1 ||
		    dup2(fd, STDIN_FILENO) == -1)
			_exit(127);
		if ((fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600)) ==
			-1 ||
		    dup2(fd, STDOUT_FILENO) == -1)
			_exit(127);
		if ((fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600)) ==
			-1 ||
		    dup2(fd, STDERR_FILENO) == -1)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(
		    STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	c->pid = pid;
	return 0;
}

/* Has it exited? Reaps it if so. */
static int
child_gone(struct child *c)
{
	pid_t p;

	if (c->pid == 0 || c->reaped)
		return 1;
	while (
	    (p = waitpid(c->pid, &c->status, WNOHANG)) == -1 && errno == EINTR)
		;
	if (p == c->pid || (p == -1 && errno == ECHILD)) {
		c->reaped = 1;
		return 1;
	}
	return 0;
}

static void
status_text(int status, char *buf, size_t bufsz)
{
	if (WIFEXITED(status))
		snprintf(buf, bufsz, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, bufsz, "killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, bufsz, "wait status 0x%x", status);
}

/* Wait up to timeout_s for it to exit; 0 if it did. */
static int
child_wait(struct child *c, double timeout_s)
{
	uint64_t t0 = now_ns();

	while (!child_gone(c)) {
		if (secs_since(t0) >= timeout_s)
			return CUSTODY_E_TIMEOUT;
		sleep_ms(20);
	}
	return 0;
}

/* Send sig, wait up to timeout_s, then SIGKILL. 0 if it exited in time. */
static int
child_stop(struct child *c, int sig, double timeout_s)
{
	int r;

	if (c->pid == 0 || child_gone(c))
		return 0;
	(void)kill(c->pid, sig);
	if ((r = child_wait(c, timeout_s)) != 0) {
		errorx("%s (pid %ld) did not exit within %.0f s of signal %d: "
		       "killed",
		    c->name, (long)c->pid, timeout_s, sig);
		(void)kill(c->pid, SIGKILL);
		(void)child_wait(c, 10);
	}
	return r;
}

/* utime + stime + cutime + cstime of /proc/PID/stat, in clock ticks. */
static int
proc_ticks(pid_t pid, uint64_t *ticksp)
{
	char path[64], buf[1024], *p;
	unsigned long long v[4];
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return CUSTODY_E_IO;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return CUSTODY_E_IO;
	buf[n] = '\0';
	/* after the command name in parentheses: field 3 (state) on */
	if ((p = strrchr(buf, ')')) == NULL)
		return CUSTODY_E_PARSE;
	p++;
	for (i = 3; i < 14; i++) /* to field 14, utime */
		if ((p = strchr(p + 1, ' ')) == NULL)
			return CUSTODY_E_PARSE;
	if (sscanf(p, " %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3]) != 4)
		return CUSTODY_E_PARSE;
	*ticksp = v[0] + v[1] + v[2] + v[3];
	return 0;
}

/*
 * CPU seconds of pid and of its children alive now (a p11-kit server
 * serves each connection in a child process of its own; the time of the
 * children it has reaped is in its cutime and cstime).
 */
static double
proc_cpu(pid_t pid)
{
	char path[320], kids[4096], *tok, *save = NULL;
	struct dirent *de;
	uint64_t ticks = 0, t;
	DIR *d;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return 0;
	if (proc_ticks(pid, &t) == 0)
		ticks += t;
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path),
			    "/proc/%ld/task/%s/children", (long)pid,
			    de->d_name);
			if ((f = fopen(path, "re")) == NULL)
				continue;
			n = fread(kids, 1, sizeof(kids) - 1, f);
			kids[n] = '\0';
			(void)fclose(f);
			save = NULL;
			for (tok = strtok_r(kids, " \n", &save); tok != NULL;
			     tok = strtok_r(NULL, " \n", &save))
				if (proc_ticks((pid_t)atol(tok), &t) == 0)
					ticks += t;
		}
		(void)closedir(d);
	}
	return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/*
 * CPU seconds the whole machine spent busy (all but idle and iowait in
 * /proc/stat), so that a run can say how much of the machine others took.
 */
static double
machine_busy(void)
{
	unsigned long long v[8] = {0};
	char line[256];
	FILE *f;

	if ((f = fopen("/proc/stat", "re")) == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		&v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 8) {
		(void)fclose(f);
		return 0;
	}
	(void)fclose(f);
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
	       (double)sysconf(_SC_CLK_TCK);
}

/* ---- small codecs ---------------------------------------------------------
 */

/* Base64, standard or URL-safe alphabet, padding optional. 0 or -1. */
static int
b64_decode(
    const char *s, size_t len, uint8_t *out, size_t outsz, size_t *outlenp)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, n = 0;
	int v;

	for (i = 0; i < len && s[i] != '='; i++) {
		char ch = s[i];

		if (ch >= 'A' && ch <= 'Z')
			v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			v = ch - '0' + 52;
		else if (ch == '+' || ch == '-')
			v = 62;
		else if (ch == '/' || ch == '_')
			v = 63;
		else
			return -1;
		acc = ((acc << 6) | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == outsz)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	for (; i < len; i++)
		if (s[i] != '=')
			return -1;
	*outlenp = n;
	return 0;
}

/* The value of the metric line "name value" in a /metrics text. */
static int
metric_get(const char *text, const char *name, double *vp)
{
	size_t nl = strlen(name);
	const char *p = text;
	char *end;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[nl] == ' ') {
			errno = 0;
			*vp = strtod(p + nl + 1, &end);
			if (errno == 0 && end != p + nl + 1)
				return 0;
		}
		p += nl;
	}
	return CUSTODY_E_PARSE;
}

/* ---- talking to custodyd -------------------------------------------------
 */

struct metrics {
	double issued, log_size, commits, sign_failures;
};

/* One request on a fresh connection; *resp as httpc_request's. */
static int
api_call(const char *sock, int timeout_ms, const char *method,
    const char *target, const char *body, struct httpc_response *resp)
{
	struct httpc *c = NULL;
	int r;

	if ((r = httpc_connect_unix(sock, timeout_ms, &c)) != 0)
		return r;
	r = httpc_request(c, method, target, NULL,
	    body != NULL ? "application/json" : NULL, (const uint8_t *)body,
	    body != NULL ? strlen(body) : 0, resp);
	httpc_close(c);
	return r;
}

static int
metrics_get(const char *sock, const struct bench_alg *a, struct metrics *m)
{
	struct httpc_response resp;
	char name[128];
	const char *t;
	int r;

	memset(m, 0, sizeof(*m));
	if ((r = api_call(sock, 0, "GET", "/metrics", NULL, &resp)) != 0)
		return fail("GET /metrics", r);
	t = (const char *)resp.body;
	snprintf(name, sizeof(name),
	    "custody_credentials_issued_total{type=\"%s\",alg=\"%s\"}",
	    cmd_name(), a->name);
	if (resp.status != 200 || metric_get(t, name, &m->issued) != 0 ||
	    metric_get(t, "custody_audit_log_size", &m->log_size) != 0 ||
	    metric_get(t, "custody_audit_commits_total", &m->commits) != 0 ||
	    metric_get(t, "custody_sign_failures_total", &m->sign_failures) !=
		0) {
		errorx("GET /metrics: status %d, or %s, "
		       "custody_audit_log_size, custody_audit_commits_total "
		       "or custody_sign_failures_total missing",
		    resp.status, name);
		r = CUSTODY_E_PROTOCOL;
	}
	httpc_response_cleanup(&resp);
	return r;
}

/* Wait until custodyd answers GET /healthz with 200, or dies. */
static int
custodyd_ready(struct child *d, const char *sock)
{
	struct httpc_response resp;
	uint64_t t0 = now_ns();
	char st[64];
	int r, last = 0;

	for (;;) {
		if (interrupted)
			return CUSTODY_E_INTERNAL;
		if (child_gone(d)) {
			status_text(d->status, st, sizeof(st));
			errorx("custodyd exited before it was ready (%s)", st);
			print_tail("custodyd's stderr", d->errpath);
			return CUSTODY_E_NOT_RUNNING;
		}
		if ((r = api_call(
			 sock, 2000, "GET", "/healthz", NULL, &resp)) == 0) {
			last = resp.status;
			httpc_response_cleanup(&resp);
			if (last == 200)
				return 0;
		}
		if (secs_since(t0) > READY_TIMEOUT_S) {
			errorx("custodyd not ready after %d s (last: %s, "
			       "status %d)",
			    READY_TIMEOUT_S,
			    r != 0 ? custody_strerror(r) : "answered", last);
			print_tail("custodyd's stderr", d->errpath);
			return CUSTODY_E_TIMEOUT;
		}
		sleep_ms(50);
	}
}

/* One key of custody's, as POST /v1/keys answered. */
struct bench_key {
	char id[32];
	char kid[64];
	uint8_t spki[1024];
	size_t spki_len;
	struct pubkey *pk;
	EVP_PKEY *ca_pub; /* x509: the key's, to verify certificates */
};

/* x509: the self-signed CA certificate of key k, made over the API. */
static int
ca_make(const char *sock, struct bench_key *k)
{
	struct httpc_response resp;
	char target[96];
	const unsigned char *p = k->spki;
	int r;

	snprintf(target, sizeof(target), "/v1/keys/%s/ca/self-signed", k->id);
	if ((r = api_call(sock, 120000, "POST", target, "{}", &resp)) != 0)
		return fail(target, r);
	if (resp.status != 201) {
		errorx("POST %s: status %d: %.300s", target, resp.status,
		    (const char *)resp.body);
		r = CUSTODY_E_PROTOCOL;
	} else if ((k->ca_pub = d2i_PUBKEY(NULL, &p, (long)k->spki_len)) ==
		   NULL) {
		errorx("the key's spki does not parse");
		r = CUSTODY_E_PARSE;
	}
	httpc_response_cleanup(&resp);
	return r;
}

/* x509: one P-256 request, made here, that every request sends. */
static int
csr_make(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509_REQ *req = X509_REQ_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int r = CUSTODY_E_CRYPTO;

	if (k != NULL && req != NULL && b != NULL &&
	    X509_REQ_set_pubkey(req, k) == 1 &&
	    X509_REQ_sign(req, k, EVP_sha256()) > 0 &&
	    PEM_write_bio_X509_REQ(b, req) == 1 &&
	    (n = BIO_get_mem_data(b, &data)) > 0 &&
	    (bench_csr = strndup(data, (size_t)n)) != NULL)
		r = 0;
	else
		errorx("making the CSR failed");
	BIO_free(b);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return r;
}

static int
key_create(const char *sock, const struct bench_alg *a, struct bench_key *k)
{
	struct httpc_response resp;
	char body[256];
	const char *id, *kid, *spki, *alg;
	json_t *o = NULL;
	int r;

	memset(k, 0, sizeof(*k));
	snprintf(body, sizeof(body),
	    "{\"agent\":\"" AGENT_PREFIX "%s\",\"owner\":\"bench\","
	    "\"purpose\":\"%s\",\"alg\":\"%s\"}",
	    a->name, x509_mode ? "x509-ca" : "jwt", a->name);
	/* RSA key generation in SoftHSM2 can take seconds */
	if ((r = api_call(sock, 120000, "POST", "/v1/keys", body, &resp)) != 0)
		return fail("POST /v1/keys", r);
	r = CUSTODY_E_PROTOCOL;
	if (resp.status != 201) {
		errorx("POST /v1/keys %s: status %d: %.300s", body, resp.status,
		    (const char *)resp.body);
		goto out;
	}
	if ((o = json_loadb((const char *)resp.body, resp.len,
		 JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    json_unpack(o, "{s:s, s:s, s:s, s:s}", "id", &id, "kid", &kid,
		"spki", &spki, "alg", &alg) != 0 ||
	    strcmp(alg, a->name) != 0 || strlen(id) != 18 ||
	    strncmp(id, "k_", 2) != 0 || strlen(kid) >= sizeof(k->kid) ||
	    b64_decode(spki, strlen(spki), k->spki, sizeof(k->spki),
		&k->spki_len) != 0) {
		errorx("POST /v1/keys %s: unexpected answer: %.300s", body,
		    (const char *)resp.body);
		goto out;
	}
	snprintf(k->id, sizeof(k->id), "%s", id);
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	if ((r = pubkey_from_spki(a->alg, k->spki, k->spki_len, &k->pk)) != 0) {
		(void)fail("the key's spki", r);
		goto out;
	}
	if (x509_mode && (r = ca_make(sock, k)) != 0)
		goto out;
	r = 0;
out:
	json_decref(o);
	httpc_response_cleanup(&resp);
	return r;
}

/* ---- a measured run --------------------------------------------------------
 */

/*
 * threads threads call op in a loop: as fast as they can (closed loop), or
 * each at a fixed period so that all of them together send `rate` per
 * second (open loop; a request's latency then counts from its scheduled
 * send time, so a late answer also delays what was due after it). The
 * first `warmup` seconds are not recorded; the next `seconds` are. A
 * request belongs to the window in which it was sent (scheduled).
 */
struct load_spec {
	const char *what; /* for messages */
	unsigned threads;
	double warmup, seconds;
	double rate; /* 0: closed loop */
	pid_t server;
	int stop_on_error; /* the baselines: any error ends the run */
	int (*init)(void *arg, unsigned id, void **wp);
	int (*op)(void *arg, void *w);
	void (*fini)(void *arg, void *w);
	void *arg;
};

struct load_result {
	unsigned threads;
	double rate_asked; /* paced runs */
	uint64_t n, errors, late, reconnects;
	int mismatch; /* custodyd's counts differ from the answers */
	double secs, rate, server_cpu_us, client_cpu_us;
	double leaves_per_commit; /* JWT runs */
	double others; /* cores busy with other processes during the run */
	struct dist lat;
};

struct load;

struct loader {
	struct load *ld;
	pthread_t t;
	unsigned id;
	void *w;
	uint64_t n, errors, late;
	struct samples lat;
	int r;
};

struct load {
	const struct load_spec *spec;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready;
	int go;
	atomic_int stop;
	uint64_t t_go, t_meas, t_end, period;
};

static void
sleep_until(uint64_t t)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(t / 1000000000u);
	ts.tv_nsec = (long)(t % 1000000000u);
	while (
	    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *
loader_main(void *arg)
{
	struct loader *l = arg;
	struct load *ld = l->ld;
	const struct load_spec *sp = ld->spec;
	uint64_t sched = 0, t0, t1, now;
	unsigned bad = 0;
	int r;

	r = sp->init(sp->arg, l->id, &l->w);
	pthread_mutex_lock(&ld->lock);
	l->r = r;
	ld->ready++;
	pthread_cond_broadcast(&ld->cond);
	while (!ld->go)
		pthread_cond_wait(&ld->cond, &ld->lock);
	pthread_mutex_unlock(&ld->lock);
	if (r != 0)
		goto out;
	if (ld->period > 0) /* spread the threads over one period */
		sched = ld->t_go + ld->period * l->id / sp->threads;
	while (!atomic_load(&ld->stop)) {
		if (ld->period > 0) {
			if (sched >= ld->t_end)
				break;
			now = now_ns();
			if (now < sched)
				sleep_until(sched);
			else if (now > ld->t_end + 1000000000u) {
				/* hopelessly behind: what is left is late */
				l->late +=
				    (ld->t_end - sched + ld->period - 1) /
				    ld->period;
				break;
			}
			t0 = sched;
			sched += ld->period;
		} else if ((t0 = now_ns()) >= ld->t_end)
			break;
		r = sp->op(sp->arg, l->w);
		t1 = now_ns();
		if (r != 0) {
			l->errors++;
			if (sp->stop_on_error ||
			    ++bad >= MAX_CONSECUTIVE_ERRORS) {
				if (!atomic_exchange(&ld->stop, 1) &&
				    !sp->stop_on_error)
					errorx("%s: %u errors in a row on one "
					       "connection: the run stops",
					    sp->what, bad);
				l->r = r;
				break;
			}
			continue;
		}
		bad = 0;
		if (t0 < ld->t_meas)
			continue;
		l->n++;
		if ((r = samples_add(&l->lat, t1 - t0)) != 0) {
			l->r = fail("recording a latency", r);
			atomic_store(&ld->stop, 1);
			break;
		}
	}
out:
	if (sp->fini != NULL)
		sp->fini(sp->arg, l->w);
	return NULL;
}

/* Sleep until t, in slices, returning early when the run must stop. */
static void
load_wait(struct load *ld, uint64_t t)
{
	uint64_t now;

	while ((now = now_ns()) < t && !atomic_load(&ld->stop)) {
		if (interrupted) {
			atomic_store(&ld->stop, 1);
			break;
		}
		sleep_until(t - now > 100000000u ? now + 100000000u : t);
	}
}

static int
load_run(const struct load_spec *sp, struct load_result *res)
{
	struct load ld;
	struct loader *ls;
	struct samples all = {NULL, 0, 0};
	struct usage u0 = {0, 0}, u1 = {0, 0};
	double s0 = 0, s1 = 0, m0 = 0, m1 = 0;
	unsigned i, started = 0;
	int r = 0, rc;

	memset(&ld, 0, sizeof(ld));
	memset(res, 0, sizeof(*res));
	ld.spec = sp;
	atomic_init(&ld.stop, 0);
	if (sp->rate > 0)
		ld.period = (uint64_t)((double)sp->threads * 1e9 / sp->rate);
	if ((ls = calloc(sp->threads, sizeof(*ls))) == NULL)
		return fail(sp->what, CUSTODY_E_NOMEM);
	if ((rc = pthread_mutex_init(&ld.lock, NULL)) != 0 ||
	    (rc = pthread_cond_init(&ld.cond, NULL)) != 0) {
		errorx("pthread init: %s", strerror(rc));
		free(ls);
		return CUSTODY_E_INTERNAL;
	}
	for (i = 0; i < sp->threads; i++) {
		ls[i].ld = &ld;
		ls[i].id = i;
		if ((rc = pthread_create(
			 &ls[i].t, NULL, loader_main, &ls[i])) != 0) {
			errorx("pthread_create: %s", strerror(rc));
			r = CUSTODY_E_INTERNAL;
			break;
		}
		started++;
	}
	/* every thread connected (or failed to), then all go at once */
	pthread_mutex_lock(&ld.lock);
	while (ld.ready < started)
		pthread_cond_wait(&ld.cond, &ld.lock);
	for (i = 0; i < started; i++)
		if (ls[i].r != 0 && r == 0)
			r = ls[i].r;
	if (r != 0)
		atomic_store(&ld.stop, 1);
	ld.t_go = now_ns() + 1000000u;
	ld.t_meas = ld.t_go + (uint64_t)(sp->warmup * 1e9);
	ld.t_end = ld.t_meas + (uint64_t)(sp->seconds * 1e9);
	ld.go = 1;
	pthread_cond_broadcast(&ld.cond);
	pthread_mutex_unlock(&ld.lock);

	if (r == 0) {
		load_wait(&ld, ld.t_meas);
		m0 = machine_busy();
		s0 = proc_cpu(sp->server);
		(void)usage_get(&u0);
		load_wait(&ld, ld.t_end);
		m1 = machine_busy();
		s1 = proc_cpu(sp->server);
		(void)usage_get(&u1);
	}
	for (i = 0; i < started; i++) {
		if ((rc = pthread_join(ls[i].t, NULL)) != 0) {
			errorx("pthread_join: %s", strerror(rc));
			r = CUSTODY_E_INTERNAL;
			continue;
		}
		if (ls[i].r != 0 && r == 0)
			r = ls[i].r;
		res->n += ls[i].n;
		res->errors += ls[i].errors;
		res->late += ls[i].late;
		if (r == 0 && (r = samples_merge(&all, &ls[i].lat)) != 0)
			(void)fail("latencies", r);
	}
	if (r == 0 && interrupted) {
		errorx("interrupted");
		r = CUSTODY_E_INTERNAL;
	}
	res->threads = sp->threads;
	res->rate_asked = sp->rate;
	res->secs = sp->seconds;
	res->rate = (double)res->n / sp->seconds;
	if (res->n > 0) {
		res->server_cpu_us = (s1 - s0) * 1e6 / (double)res->n;
		res->client_cpu_us = (u1.cpu - u0.cpu) * 1e6 / (double)res->n;
	}
	/* what neither side of the run used: other processes' */
	res->others = (m1 - m0 - (s1 - s0) - (u1.cpu - u0.cpu)) / sp->seconds;
	if (res->others < 0)
		res->others = 0;
	res->lat = samples_dist(&all);
	for (i = 0; i < sp->threads; i++)
		samples_cleanup(&ls[i].lat);
	samples_cleanup(&all);
	free(ls);
	pthread_mutex_destroy(&ld.lock);
	pthread_cond_destroy(&ld.cond);
	return r;
}

/* ---- HTTP load from one thread ---------------------------------------------
 */

/*
 * The JWT runs drive custodyd from one thread with epoll, however many
 * connections: the load generator shares the machine's cores with custodyd,
 * and a thread per connection would cost it a context switch per request
 * (expensive in these virtual machines) and, in paced runs, a wake-up
 * delay that would be counted as custodyd's latency. Every connection sends
 * the same prepared request; answers are framed by Content-Length (what
 * custodyd sends) and handed to check.
 */
struct hload_spec {
	const char *what;
	const char *sock;
	unsigned conns;
	double warmup, seconds;
	double rate; /* 0: closed loop */
	pid_t server;
	const char *req; /* the whole request, head and body */
	size_t reqlen;
	SSL_CTX *tls; /* not NULL: TCP to 127.0.0.1:port with mutual TLS */
	int port;
	/* 0 for a right answer; verify: check the signature too */
	int (*check)(void *arg, const struct httpc_response *resp, int verify);
	void *arg;
};

#define HLOAD_IN_MAX	(64u << 10) /* an answer's head and body */
#define HLOAD_QUEUE_MAX 65536u	    /* paced sends waiting for a connection */
#define HLOAD_DRAIN_S	30	    /* answers still due after the end */

struct hconn {
	int fd;
	SSL *ssl;    /* TLS connections */
	int busy;    /* a request is out */
	int idle;    /* on the idle list (paced) */
	int wantout; /* EPOLLOUT is set */
	int verified;
	uint64_t t0; /* when it was due (paced) or sent */
	size_t sent;
	char *in;
	size_t inlen;
	struct hconn *next_idle;
};

struct hload {
	const struct hload_spec *sp;
	int ep;
	struct hconn *c;
	struct hconn *idle;
	uint64_t *queue; /* due times of paced sends, a ring */
	size_t qhead, qlen;
	uint64_t t_meas, t_end;
	uint64_t n, errors, late, reconnects;
	unsigned bad; /* consecutive errors */
	struct samples lat;
	int r;
};

/* A TCP connection to 127.0.0.1:port with its TLS handshake done
 * (blocking, before it is made non-blocking). */
static int
tls_open(struct hload *h, struct hconn *c)
{
	struct sockaddr_in sin;
	int fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)h->sp->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    (c->ssl = SSL_new(h->sp->tls)) == NULL ||
	    SSL_set_fd(c->ssl, fd) != 1 || SSL_connect(c->ssl) != 1) {
		errorx("%s: TLS to 127.0.0.1:%d: %s", h->sp->what, h->sp->port,
		    ERR_peek_error() != 0
			? ERR_reason_error_string(ERR_peek_error())
			: strerror(errno));
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
		(void)close(fd);
		return -1;
	}
	return fd;
}

static int
hconn_open(struct hload *h, struct hconn *c)
{
	struct sockaddr_un sa;
	struct epoll_event ev;
	int fd;

	if (h->sp->tls != NULL) {
		if ((fd = tls_open(h, c)) == -1)
			return CUSTODY_E_IO;
		if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1) {
			SSL_free(c->ssl);
			c->ssl = NULL;
			(void)close(fd);
			return CUSTODY_E_IO;
		}
		goto add;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(h->sp->sock) >= sizeof(sa.sun_path))
		return CUSTODY_E_INVALID_ARG;
	strcpy(sa.sun_path, h->sp->sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return CUSTODY_E_IO;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) == -1) {
		errorx("%s: connecting to %s: %s", h->sp->what, h->sp->sock,
		    strerror(errno));
		(void)close(fd);
		return CUSTODY_E_IO;
	}
add:
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
		errorx("epoll_ctl: %s", strerror(errno));
		(void)close(fd);
		return CUSTODY_E_IO;
	}
	c->fd = fd;
	c->busy = 0;
	c->inlen = 0;
	c->wantout = 0;
	c->verified = 0; /* the first answer of each connection is verified */
	return 0;
}

static void
hconn_close(struct hconn *c)
{
	SSL_free(c->ssl); /* no close_notify: the socket goes */
	c->ssl = NULL;
	if (c->fd != -1)
		(void)close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->busy = 0;
	c->inlen = 0;
}

/* Write what is left of the request; wait for EPOLLOUT if the socket is full.
 */
static int
hconn_flush(struct hload *h, struct hconn *c)
{
	struct epoll_event ev;
	ssize_t n;
	int want;

	while (c->sent < h->sp->reqlen) {
		if (c->ssl != NULL) {
			int w = SSL_write(c->ssl, h->sp->req + c->sent,
			    (int)(h->sp->reqlen - c->sent));

			if (w > 0) {
				c->sent += (size_t)w;
				continue;
			}
			if (SSL_get_error(c->ssl, w) == SSL_ERROR_WANT_WRITE ||
			    SSL_get_error(c->ssl, w) == SSL_ERROR_WANT_READ)
				break;
			ERR_clear_error();
			return CUSTODY_E_IO;
		}
		n = send(c->fd, h->sp->req + c->sent, h->sp->reqlen - c->sent,
		    MSG_NOSIGNAL);
		if (n > 0) {
			c->sent += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return CUSTODY_E_IO;
	}
	/* EPOLLOUT while a part is left, and off again once it is sent (a
	 * level-triggered EPOLLOUT left on would spin the loop) */
	want = c->sent < h->sp->reqlen;
	if (want != c->wantout) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
		ev.data.ptr = c;
		if (epoll_ctl(h->ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
			return CUSTODY_E_IO;
		c->wantout = want;
	}
	return 0;
}

/* A failed request on c: counted, c reconnected; too many in a row stop. */
static void
hconn_failed(struct hload *h, struct hconn *c, const char *why)
{
	int r;

	if (c->busy && c->t0 >= h->t_meas && c->t0 < h->t_end)
		h->errors++;
	hconn_close(c);
	if (++h->bad >= MAX_CONSECUTIVE_ERRORS) {
		errorx("%s: %u errors in a row (last: %s): the run stops",
		    h->sp->what, h->bad, why);
		h->r = CUSTODY_E_PROTOCOL;
		return;
	}
	if ((r = hconn_open(h, c)) != 0)
		h->r = r;
}

static int
hconn_send(struct hload *h, struct hconn *c, uint64_t t0)
{
	c->busy = 1;
	c->t0 = t0;
	c->sent = 0;
	c->inlen = 0;
	if (hconn_flush(h, c) != 0) {
		hconn_failed(h, c, strerror(errno));
		return -1;
	}
	return 0;
}

/* The header value of name in head (lines after the first), or NULL. */
static const char *
head_value(const char *head, const char *name, size_t *lenp)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n"), *e;

	while (p != NULL && p[2] != '\r') {
		p += 2;
		e = strstr(p, "\r\n");
		if (e == NULL)
			return NULL;
		if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 &&
		    p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			*lenp = (size_t)(e - p);
			return p;
		}
		p = e;
	}
	return NULL;
}

/*
 * A complete answer in c->in? 1 (and *resp, its body in c->in), 0 for
 * more bytes, -1 for a malformed one.
 */
static int
hconn_parse(struct hconn *c, struct httpc_response *resp)
{
	char *end, *cl;
	const char *v;
	size_t vlen, head, clen;
	unsigned long long ull;

	c->in[c->inlen] = '\0';
	if ((end = strstr(c->in, "\r\n\r\n")) == NULL)
		return c->inlen >= HLOAD_IN_MAX ? -1 : 0;
	head = (size_t)(end - c->in) + 4;
	end[2] = '\0'; /* the head ends with its last line's CRLF */
	memset(resp, 0, sizeof(*resp));
	if (strncmp(c->in, "HTTP/1.1 ", 9) != 0 ||
	    sscanf(c->in + 9, "%3d", &resp->status) != 1 ||
	    (v = head_value(c->in, "Content-Length", &vlen)) == NULL)
		return -1;
	errno = 0;
	ull = strtoull(v, &cl, 10);
	if (cl == v || errno != 0 || ull > HLOAD_IN_MAX)
		return -1;
	clen = (size_t)ull;
	v = head_value(c->in, "Connection", &vlen);
	resp->closing =
	    v != NULL && vlen == 5 && strncasecmp(v, "close", 5) == 0;
	end[2] = '\r';
	if (head + clen > HLOAD_IN_MAX)
		return -1;
	if (c->inlen < head + clen)
		return 0;
	if (c->inlen > head + clen)
		return -1; /* nothing was asked for */
	resp->body = (uint8_t *)c->in + head;
	resp->len = clen;
	c->in[c->inlen] = '\0';
	return 1;
}

/* Bytes arrived on c; an answer ends its request. */
static void
hconn_read(struct hload *h, struct hconn *c)
{
	struct httpc_response resp;
	ssize_t n;
	uint64_t t1;
	int p;

	for (;;) {
		if (c->ssl != NULL) {
			int rd = SSL_read(c->ssl, c->in + c->inlen,
			    (int)(HLOAD_IN_MAX - c->inlen));
			int e =
			    rd > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rd);

			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				return;
			ERR_clear_error();
			n = rd > 0 ? rd : (e == SSL_ERROR_ZERO_RETURN ? 0 : -1);
			if (n == -1)
				errno = EIO;
		} else
			n = read(
			    c->fd, c->in + c->inlen, HLOAD_IN_MAX - c->inlen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || !c->busy) {
			hconn_failed(h, c,
			    n == 0 ? "connection closed by custodyd"
				   : (n > 0 ? "bytes nobody asked for"
					    : strerror(errno)));
			return;
		}
		c->inlen += (size_t)n;
		if ((p = hconn_parse(c, &resp)) == 0)
			continue;
		if (p < 0) {
			hconn_failed(h, c, "a malformed answer");
			return;
		}
		break;
	}
	t1 = now_ns();
	if (h->sp->check(h->sp->arg, &resp, !c->verified) != 0) {
		hconn_failed(h, c, "a wrong answer");
		return;
	}
	c->verified = 1;
	h->bad = 0;
	if (c->t0 >= h->t_meas && c->t0 < h->t_end) {
		h->n++;
		if ((p = samples_add(&h->lat, t1 - c->t0)) != 0)
			h->r = fail("recording a latency", p);
	}
	c->busy = 0;
	c->inlen = 0;
	if (resp.closing) { /* custodyd closed a keep-alive connection */
		h->reconnects++;
		hconn_close(c);
		if ((p = hconn_open(h, c)) != 0)
			h->r = p;
	}
}

/* Paced: the due sends that found no connection wait here. */
static void
queue_push(struct hload *h, uint64_t t)
{
	if (h->qlen == HLOAD_QUEUE_MAX) {
		h->late++; /* hopelessly behind */
		return;
	}
	h->queue[(h->qhead + h->qlen++) % HLOAD_QUEUE_MAX] = t;
}

/*
 * c has no request out: closed loop, it sends the next one at once; paced,
 * it takes the oldest due send, or waits on the idle list.
 */
static void
hconn_free(struct hload *h, struct hconn *c)
{
	uint64_t t;

	while (h->r == 0 && c->fd != -1 && !c->busy && !c->idle) {
		if (h->sp->rate > 0) {
			if (h->qlen == 0) {
				c->idle = 1;
				c->next_idle = h->idle;
				h->idle = c;
				return;
			}
			t = h->queue[h->qhead];
			h->qhead = (h->qhead + 1) % HLOAD_QUEUE_MAX;
			h->qlen--;
		} else if ((t = now_ns()) >= h->t_end)
			return;
		(void)hconn_send(h, c, t);
	}
}

static int
hload_run(const struct hload_spec *sp, struct load_result *res)
{
	struct hload h;
	struct epoll_event evs[64];
	struct itimerspec its;
	struct usage u0 = {0, 0}, u1 = {0, 0};
	double s0 = 0, s1 = 0, m0 = 0, m1 = 0;
	uint64_t t_go, now, next_due = 0, period = 0, exp;
	struct hconn *c;
	int tfd = -1, measuring = 0, i, n, timeout;
	unsigned k;
	char *bufs = NULL;

	memset(&h, 0, sizeof(h));
	memset(res, 0, sizeof(*res));
	h.sp = sp;
	h.ep = -1;
	if ((h.c = calloc(sp->conns, sizeof(*h.c))) == NULL ||
	    (bufs = malloc((size_t)sp->conns * (HLOAD_IN_MAX + 1))) == NULL ||
	    (sp->rate > 0 && (h.queue = calloc(HLOAD_QUEUE_MAX,
				  sizeof(*h.queue))) == NULL)) {
		h.r = fail(sp->what, CUSTODY_E_NOMEM);
		goto out;
	}
	for (k = 0; k < sp->conns; k++) {
		h.c[k].fd = -1;
		h.c[k].in = bufs + (size_t)k * (HLOAD_IN_MAX + 1);
	}
	if ((h.ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		errorx("epoll_create1: %s", strerror(errno));
		h.r = CUSTODY_E_IO;
		goto out;
	}
	for (k = 0; k < sp->conns; k++)
		if ((h.r = hconn_open(&h, &h.c[k])) != 0)
			goto out;
	t_go = now_ns() + 1000000u;
	h.t_meas = t_go + (uint64_t)(sp->warmup * 1e9);
	h.t_end = h.t_meas + (uint64_t)(sp->seconds * 1e9);
	if (sp->rate > 0) {
		/* one send every period from t_go, each on an idle connection,
		 * or queued until one is idle (its latency counts from when it
		 * was due) */
		period = (uint64_t)(1e9 / sp->rate);
		next_due = t_go;
		for (k = 0; k < sp->conns; k++)
			hconn_free(&h, &h.c[k]);
		if ((tfd = timerfd_create(
			 CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) == -1) {
			errorx("timerfd_create: %s", strerror(errno));
			h.r = CUSTODY_E_IO;
			goto out;
		}
		memset(&its, 0, sizeof(its));
		its.it_value.tv_sec = (time_t)(t_go / 1000000000u);
		its.it_value.tv_nsec = (long)(t_go % 1000000000u);
		its.it_interval.tv_sec = (time_t)(period / 1000000000u);
		its.it_interval.tv_nsec = (long)(period % 1000000000u);
		memset(&evs[0], 0, sizeof(evs[0]));
		evs[0].events = EPOLLIN;
		evs[0].data.ptr = NULL; /* the timer */
		if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) == -1 ||
		    epoll_ctl(h.ep, EPOLL_CTL_ADD, tfd, &evs[0]) == -1) {
			errorx("timerfd: %s", strerror(errno));
			h.r = CUSTODY_E_IO;
			goto out;
		}
	} else {
		while ((now = now_ns()) < t_go)
			sleep_until(t_go);
		for (k = 0; k < sp->conns; k++)
			hconn_free(&h, &h.c[k]);
	}

	while (h.r == 0) {
		now = now_ns();
		if (interrupted) {
			errorx("interrupted");
			h.r = CUSTODY_E_INTERNAL;
			break;
		}
		if (!measuring && now >= h.t_meas) {
			measuring = 1;
			m0 = machine_busy();
			s0 = proc_cpu(sp->server);
			(void)usage_get(&u0);
		}
		if (measuring == 1 && now >= h.t_end) {
			measuring = 2;
			m1 = machine_busy();
			s1 = proc_cpu(sp->server);
			(void)usage_get(&u1);
		}
		if (now >= h.t_end) {
			for (k = 0; k < sp->conns && !h.c[k].busy; k++)
				;
			if (k == sp->conns)
				break; /* every answer is in */
			if (now >= h.t_end + HLOAD_DRAIN_S * 1000000000ull) {
				errorx("%s: answers still missing %d s after "
				       "the end",
				    sp->what, HLOAD_DRAIN_S);
				h.r = CUSTODY_E_TIMEOUT;
				break;
			}
		}
		timeout =
		    now < h.t_meas  ? (int)((h.t_meas - now) / 1000000u) + 1
		    : now < h.t_end ? (int)((h.t_end - now) / 1000000u) + 1
				    : 100;
		if ((n = epoll_wait(h.ep, evs, 64, timeout)) == -1) {
			if (errno == EINTR)
				continue;
			errorx("epoll_wait: %s", strerror(errno));
			h.r = CUSTODY_E_IO;
			break;
		}
		for (i = 0; i < n && h.r == 0; i++) {
			if ((c = evs[i].data.ptr) == NULL) {
				if (read(tfd, &exp, sizeof(exp)) !=
				    (ssize_t)sizeof(exp))
					continue;
				for (; exp > 0; exp--, next_due += period)
					if (next_due < h.t_end)
						queue_push(&h, next_due);
				continue;
			}
			if (c->fd == -1)
				continue; /* closed by an earlier event */
			if ((evs[i].events & EPOLLOUT) && c->busy &&
			    c->sent < sp->reqlen && hconn_flush(&h, c) != 0)
				hconn_failed(&h, c, strerror(errno));
			else if (evs[i].events &
				 (EPOLLIN | EPOLLERR | EPOLLHUP))
				hconn_read(&h, c);
			hconn_free(&h, c);
		}
		/* paced: what is due goes out on the idle connections */
		while (h.qlen > 0 && h.idle != NULL) {
			c = h.idle;
			h.idle = c->next_idle;
			c->idle = 0;
			hconn_free(&h, c);
		}
	}
	if (sp->rate > 0)
		h.late += h.qlen; /* due, never sent */
	res->n = h.n;
	res->errors = h.errors;
	res->late = h.late;
	res->reconnects = h.reconnects;
	res->threads = sp->conns;
	res->rate_asked = sp->rate;
	res->secs = sp->seconds;
	res->rate = (double)h.n / sp->seconds;
	if (measuring == 2 && h.n > 0) {
		res->server_cpu_us = (s1 - s0) * 1e6 / (double)h.n;
		res->client_cpu_us = (u1.cpu - u0.cpu) * 1e6 / (double)h.n;
	}
	res->others = (m1 - m0 - (s1 - s0) - (u1.cpu - u0.cpu)) / sp->seconds;
	if (res->others < 0)
		res->others = 0;
	res->lat = samples_dist(&h.lat);
out:
	if (h.c != NULL)
		for (k = 0; k < sp->conns; k++)
			hconn_close(&h.c[k]);
	if (tfd != -1)
		(void)close(tfd);
	if (h.ep != -1)
		(void)close(h.ep);
	samples_cleanup(&h.lat);
	free(h.queue);
	free(bufs);
	free(h.c);
	return h.r;
}

/* ---- JWT requests ----------------------------------------------------------
 */

/* What every connection of one run asks and expects. */
struct jwt_target {
	const struct bench_alg *alg;
	const struct bench_key *key;
	const char *sock;
	const char *what;
	char *body;
	size_t bodylen;
	atomic_uint reported;
	atomic_uint_fast64_t ok; /* 200s with a right token, warm-up too */
	pthread_mutex_t lock;
	char *tbs; /* the first signing input verified, for the baselines */
	size_t tbslen;
};

static void jwt_complain(struct jwt_target *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The first few wrong answers of a run, with the request. */
static void
jwt_complain(struct jwt_target *t, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (atomic_fetch_add(&t->reported, 1) >= REPORTED_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	flockfile(stderr); /* one line, whatever the other threads print */
	errorx("%s: POST /v1/credentials/jwt %s: %s", t->what, t->body, msg);
	funlockfile(stderr);
}

/*
 * A 200 whose token has three parts, a header with the key's alg and kid,
 * and (verify) a signature that verifies with the key's SPKI over the
 * first two parts.
 */
static int
jwt_check(struct jwt_target *t, const struct httpc_response *resp, int verify)
{
	uint8_t hdr[1024], sig[1024];
	size_t hlen, slen;
	const char *tok, *d1, *d2, *alg, *kid;
	json_t *o = NULL, *h = NULL;
	int r = CUSTODY_E_PROTOCOL;

	if (resp->status != 200) {
		jwt_complain(t, "status %d (%s): %.300s", resp->status,
		    resp->content_type != NULL ? resp->content_type : "-",
		    (const char *)resp->body);
		return r;
	}
	if ((o = json_loadb((const char *)resp->body, resp->len,
		 JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    (tok = json_string_value(json_object_get(o, "token"))) == NULL ||
	    (d1 = strchr(tok, '.')) == NULL ||
	    (d2 = strchr(d1 + 1, '.')) == NULL || strchr(d2 + 1, '.') != NULL) {
		jwt_complain(t, "200 without a compact JWS: %.300s",
		    (const char *)resp->body);
		goto out;
	}
	if (b64_decode(tok, (size_t)(d1 - tok), hdr, sizeof(hdr) - 1, &hlen) !=
		0 ||
	    (h = json_loadb((const char *)hdr, hlen, JSON_REJECT_DUPLICATES,
		 NULL)) == NULL ||
	    (alg = json_string_value(json_object_get(h, "alg"))) == NULL ||
	    (kid = json_string_value(json_object_get(h, "kid"))) == NULL ||
	    strcmp(alg, t->alg->jws) != 0 || strcmp(kid, t->key->kid) != 0) {
		jwt_complain(t,
		    "a token whose header is not {alg: %s, kid: %s}: "
		    "%.300s",
		    t->alg->jws, t->key->kid, tok);
		goto out;
	}
	if (verify) {
		if (b64_decode(
			d2 + 1, strlen(d2 + 1), sig, sizeof(sig), &slen) != 0 ||
		    pubkey_verify(t->key->pk, (const uint8_t *)tok,
			(size_t)(d2 - tok), sig, slen) != 0) {
			jwt_complain(t,
			    "a token whose signature does not "
			    "verify with key %s: %.300s",
			    t->key->id, tok);
			goto out;
		}
		pthread_mutex_lock(&t->lock);
		if (t->tbs == NULL &&
		    (t->tbs = strndup(tok, (size_t)(d2 - tok))) != NULL)
			t->tbslen = (size_t)(d2 - tok);
		pthread_mutex_unlock(&t->lock);
	}
	r = 0;
out:
	json_decref(h);
	json_decref(o);
	return r;
}

/*
 * x509: a 200 with a certificate, which (verify) the key's public key
 * verifies; its TBSCertificate is kept for the baselines.
 */
static int
x509_check(struct jwt_target *t, const struct httpc_response *resp, int verify)
{
	const char *pem;
	json_t *o = NULL;
	X509 *x = NULL;
	BIO *b = NULL;
	unsigned char *tbs = NULL;
	int n, r = CUSTODY_E_PROTOCOL;

	if (resp->status != 200) {
		jwt_complain(t, "status %d (%s): %.300s", resp->status,
		    resp->content_type != NULL ? resp->content_type : "-",
		    (const char *)resp->body);
		return r;
	}
	if ((o = json_loadb((const char *)resp->body, resp->len,
		 JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    (pem = json_string_value(json_object_get(o, "certificate"))) ==
		NULL ||
	    (b = BIO_new_mem_buf(pem, -1)) == NULL ||
	    (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		jwt_complain(t, "200 without a PEM certificate: %.300s",
		    (const char *)resp->body);
		goto out;
	}
	if (verify) {
		if (X509_verify(x, t->key->ca_pub) != 1) {
			jwt_complain(t,
			    "a certificate that the key %s does not verify",
			    t->key->id);
			goto out;
		}
		pthread_mutex_lock(&t->lock);
		if (t->tbs == NULL && (n = i2d_re_X509_tbs(x, &tbs)) > 0 &&
		    (t->tbs = malloc((size_t)n)) != NULL) {
			memcpy(t->tbs, tbs, (size_t)n);
			t->tbslen = (size_t)n;
		}
		pthread_mutex_unlock(&t->lock);
	}
	r = 0;
out:
	ERR_clear_error();
	OPENSSL_free(tbs);
	X509_free(x);
	BIO_free(b);
	json_decref(o);
	return r;
}

/* hload's check: a right answer is a credential custodyd issued */
static int
answer_check(void *arg, const struct httpc_response *resp, int verify)
{
	struct jwt_target *t = arg;
	int r;

	r = x509_mode ? x509_check(t, resp, verify)
		      : jwt_check(t, resp, verify);
	if (r == 0)
		atomic_fetch_add(&t->ok, 1);
	return r;
}

/*
 * One run of JWT requests for key k: conns connections, closed loop
 * (rate 0) or paced. Checks custodyd's count of issued tokens against the
 * answers. *tbsp gets a signing input custodyd signed (if NULL before).
 */
static int
jwt_run(const char *sock, struct child *d, const struct bench_alg *a,
    const struct bench_key *k, unsigned conns, double rate, double seconds,
    int tls, char **tbsp, size_t *tbslenp, struct load_result *res)
{
	struct jwt_target t;
	struct hload_spec sp;
	struct metrics m0, m1;
	char what[96], st[64], *req = NULL;
	json_t *bo = NULL;
	size_t cap;
	int r, rm;

	memset(&t, 0, sizeof(t));
	t.alg = a;
	t.key = k;
	t.sock = sock;
	snprintf(what, sizeof(what), "%s, %u connection%s%s%s", a->name, conns,
	    conns == 1 ? "" : "s", rate > 0 ? ", paced" : "",
	    tls ? ", mutual TLS" : "");
	t.what = what;
	if (x509_mode) {
		char agent[128], *body = NULL;

		snprintf(agent, sizeof(agent), AGENT_PREFIX "%s", a->name);
		if ((bo = json_pack("{s:s, s:s, s:i}", "agent", agent, "csr",
			 bench_csr, "ttl", JWT_TTL)) == NULL ||
		    (body = json_dumps(bo, JSON_COMPACT)) == NULL) {
			json_decref(bo);
			return fail(what, CUSTODY_E_NOMEM);
		}
		json_decref(bo);
		t.body = body;
		t.bodylen = strlen(body);
	} else {
		if ((t.body = malloc(256)) == NULL)
			return fail(what, CUSTODY_E_NOMEM);
		t.bodylen = (size_t)snprintf(t.body, 256,
		    "{\"agent\":\"" AGENT_PREFIX "%s\",\"audience\":\"" AUDIENCE
		    "\",\"ttl\":%d}",
		    a->name, JWT_TTL);
	}
	atomic_init(&t.reported, 0);
	atomic_init(&t.ok, 0);
	pthread_mutex_init(&t.lock, NULL);
	memset(&sp, 0, sizeof(sp));
	sp.what = what;
	sp.sock = sock;
	sp.conns = conns;
	sp.warmup = WARMUP_SECONDS;
	sp.seconds = seconds;
	sp.rate = rate;
	sp.server = d->pid;
	cap = t.bodylen + 256;
	if ((req = malloc(cap)) == NULL) {
		r = fail(what, CUSTODY_E_NOMEM);
		goto out;
	}
	sp.reqlen = (size_t)snprintf(req, cap,
	    "POST /v1/credentials/%s HTTP/1.1\r\nHost: custody\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n"
	    "%s",
	    cmd_name(), t.bodylen, t.body);
	sp.req = req;
	sp.check = answer_check;
	if (tls) {
		sp.tls = bench_tls;
		sp.port = bench_port;
	}
	sp.arg = &t;

	if ((r = metrics_get(sock, a, &m0)) != 0)
		goto out;
	r = hload_run(&sp, res);
	if (child_gone(d)) {
		status_text(d->status, st, sizeof(st));
		errorx("%s: custodyd died (%s)", what, st);
		print_tail("custodyd's stderr", d->errpath);
		r = CUSTODY_E_NOT_RUNNING;
		goto out;
	}
	if ((rm = metrics_get(sock, a, &m1)) != 0) {
		r = r == 0 ? rm : r;
		goto out;
	}
	if (m1.commits > m0.commits)
		res->leaves_per_commit =
		    (m1.log_size - m0.log_size) / (m1.commits - m0.commits);
	/* every token answered was issued, and nothing else was */
	if ((uint64_t)(m1.issued - m0.issued) != atomic_load(&t.ok)) {
		errorx("%s: %" PRIu64 " tokens received, custodyd counts "
		       "%.0f issued",
		    what, (uint64_t)atomic_load(&t.ok), m1.issued - m0.issued);
		res->mismatch = 1;
	}
	if (m1.sign_failures != m0.sign_failures) {
		errorx("%s: custodyd counts %.0f signing failures", what,
		    m1.sign_failures - m0.sign_failures);
		res->mismatch = 1;
	}
	if (res->errors > 0)
		errorx("%s: %" PRIu64 " requests failed", what, res->errors);
	if (r == 0 && t.tbs == NULL) {
		errorx("%s: no token was verified", what);
		r = CUSTODY_E_INTERNAL;
	}
	if (r == 0 && *tbsp == NULL) {
		*tbsp = t.tbs;
		*tbslenp = t.tbslen;
		t.tbs = NULL;
	}
out:
	free(req);
	free(t.body);
	free(t.tbs);
	pthread_mutex_destroy(&t.lock);
	return r;
}

/* ---- PKCS#11, bypassing custody --------------------------------------------
 */

struct p11 {
	const char *module;
	void *dl;
	CK_FUNCTION_LIST *f;
	int initialized;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE login; /* keeps the login; CK_INVALID_HANDLE: none */
};

static int
p11_fail(const struct p11 *p, const char *what, CK_RV rv)
{
	errorx("%s: %s: %s (0x%lx)", p->module, what, token_rv_name(rv),
	    (unsigned long)rv);
	return CUSTODY_E_TOKEN;
}

static void
p11_close(struct p11 *p)
{
	if (p->f != NULL && p->initialized) {
		if (p->login != CK_INVALID_HANDLE) {
			(void)p->f->C_Logout(p->login);
			(void)p->f->C_CloseSession(p->login);
		}
		(void)p->f->C_Finalize(NULL);
	}
	if (p->dl != NULL)
		(void)dlclose(p->dl);
	memset(p, 0, sizeof(*p));
	p->login = CK_INVALID_HANDLE;
}

/*
 * Load module, C_Initialize it with CKF_OS_LOCKING_OK, find the token
 * labelled TOKEN_LABEL and log in as the user with the PIN of pin_path (a
 * file of mode 0600; the PIN is wiped once used). Sessions opened later
 * share the login.
 */
static int
p11_open(struct p11 *p, const char *module, const char *pin_path)
{
	CK_C_GetFunctionList gfl;
	CK_C_INITIALIZE_ARGS args;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i, found = 0;
	CK_TOKEN_INFO ti;
	struct secret *pin = NULL;
	char label[sizeof(ti.label)];
	CK_RV rv;
	int r;

	memset(p, 0, sizeof(*p));
	p->module = module;
	p->login = CK_INVALID_HANDLE;
	if ((p->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		errorx("dlopen %s: %s", module, dlerror());
		return CUSTODY_E_MODULE_LOAD;
	}
	if ((gfl = (CK_C_GetFunctionList)dlsym(p->dl, "C_GetFunctionList")) ==
	    NULL) {
		errorx("%s: no C_GetFunctionList", module);
		r = CUSTODY_E_MODULE_LOAD;
		goto fail;
	}
	if ((rv = gfl(&p->f)) != CKR_OK || p->f == NULL) {
		r = p11_fail(p, "C_GetFunctionList", rv);
		goto fail;
	}
	/* never NULL arguments: SoftHSM2 then turns its locking off */
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	if ((rv = p->f->C_Initialize(&args)) != CKR_OK) {
		r = p11_fail(p, "C_Initialize", rv);
		goto fail;
	}
	p->initialized = 1;
	if ((rv = p->f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		r = p11_fail(p, "C_GetSlotList", rv);
		goto fail;
	}
	memset(label, ' ', sizeof(label));
	memcpy(label, TOKEN_LABEL, strlen(TOKEN_LABEL));
	for (i = 0; i < n && i < 64; i++)
		if (p->f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    memcmp(ti.label, label, sizeof(label)) == 0) {
			p->slot = slots[i];
			found++;
		}
	if (found != 1) {
		errorx("%s: %lu tokens labelled '%s'", module,
		    (unsigned long)found, TOKEN_LABEL);
		r = CUSTODY_E_TOKEN_NOT_FOUND;
		goto fail;
	}
	if ((rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION, NULL, NULL,
		 &p->login)) != CKR_OK) {
		p->login = CK_INVALID_HANDLE;
		r = p11_fail(p, "C_OpenSession", rv);
		goto fail;
	}
	if ((r = secret_read_file(pin_path, &pin)) != 0) {
		(void)fail(pin_path, r);
		goto fail;
	}
	rv = p->f->C_Login(
	    p->login, CKU_USER, (CK_UTF8CHAR_PTR)pin->data, pin->len);
	secret_free(pin);
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		r = p11_fail(p, "C_Login", rv);
		goto fail;
	}
	return 0;
fail:
	p11_close(p);
	return r;
}

/* The one private key whose CKA_ID the custody key id k_<16 hex> names. */
static int
p11_find_key(struct p11 *p, const char *id, CK_OBJECT_HANDLE *hp)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	uint8_t cka[8];
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_ID, cka, sizeof(cka)},
	};
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	CK_RV rv;

	if (strncmp(id, "k_", 2) != 0 ||
	    util_hex_decode(id + 2, cka, sizeof(cka)) != 0) {
		errorx("key id %s is not k_ and 16 hex digits", id);
		return CUSTODY_E_PARSE;
	}
	if ((rv = p->f->C_FindObjectsInit(p->login, tmpl, 2)) != CKR_OK)
		return p11_fail(p, "C_FindObjectsInit", rv);
	rv = p->f->C_FindObjects(p->login, h, 2, &n);
	(void)p->f->C_FindObjectsFinal(p->login);
	if (rv != CKR_OK)
		return p11_fail(p, "C_FindObjects", rv);
	if (n != 1) {
		errorx("%s: %lu private keys with the CKA_ID of %s", p->module,
		    (unsigned long)n, id);
		return CUSTODY_E_KEY_NOT_FOUND;
	}
	*hp = h[0];
	return 0;
}

/* A signing loop: the mechanism custody uses, over msg. */
struct sign_target {
	struct p11 *p;
	const struct bench_alg *alg;
	CK_OBJECT_HANDLE key;
	const uint8_t *msg;
	size_t len;
	const struct pubkey *pk;
	int verify;   /* verify each signature, as custody does */
	int may_lack; /* CKR_MECHANISM_INVALID is CUSTODY_E_UNSUPPORTED */
	int prehash;  /* RSA-PSS: CKM_RSA_PKCS_PSS over a SHA-256 made here */
};

struct sign_worker {
	CK_SESSION_HANDLE s;
	uint8_t sig[512];
};

/* C_SignInit + C_Sign (one call: the buffer is large enough) [+ verify]. */
static int
sign_once(const struct sign_target *t, struct sign_worker *w, int verify)
{
	CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM m = {t->alg->mech, NULL, 0};
	CK_ULONG siglen = sizeof(w->sig);
	uint8_t digest[64];
	const uint8_t *tbs;
	size_t tbslen;
	unsigned int mdlen = 0;
	CK_RV rv;
	int r;

	if (t->alg->mech == CKM_SHA256_RSA_PKCS_PSS) {
		m.pParameter = &pss;
		m.ulParameterLen = sizeof(pss);
	}
	if (t->prehash) {
		m.mechanism = CKM_RSA_PKCS_PSS;
		if (!EVP_Digest(
			t->msg, t->len, digest, &mdlen, EVP_sha256(), NULL))
			return fail("SHA-256", CUSTODY_E_CRYPTO);
		tbs = digest;
		tbslen = mdlen;
	} else if ((r = pubkey_tbs(t->alg->alg, t->msg, t->len, digest, &tbs,
			&tbslen)) != 0) /* ECDSA: the digest, as custody's */
		return fail("digest", r);
	if ((rv = t->p->f->C_SignInit(w->s, &m, t->key)) != CKR_OK) {
		/* p11-kit's RPC refuses mechanisms it cannot carry */
		if (rv == CKR_MECHANISM_INVALID && t->may_lack)
			return CUSTODY_E_UNSUPPORTED;
		return p11_fail(t->p, "C_SignInit", rv);
	}
	if ((rv = t->p->f->C_Sign(w->s, (CK_BYTE_PTR)tbs, (CK_ULONG)tbslen,
		 w->sig, &siglen)) != CKR_OK)
		return p11_fail(t->p, "C_Sign", rv);
	if (siglen != alg_sig_len(t->alg->alg)) {
		errorx("%s: a %lu-byte %s signature", t->p->module,
		    (unsigned long)siglen, t->alg->name);
		return CUSTODY_E_TOKEN;
	}
	if (verify && (r = pubkey_verify(t->pk, t->msg, t->len, w->sig,
			   (size_t)siglen)) != 0) {
		errorx("%s: a %s signature by the token does not verify",
		    t->p->module, t->alg->name);
		return r;
	}
	return 0;
}

static int
sign_init(void *arg, unsigned id, void **wp)
{
	struct sign_target *t = arg;
	struct sign_worker *w;
	CK_RV rv;

	(void)id;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return fail("signer", CUSTODY_E_NOMEM);
	w->s = CK_INVALID_HANDLE;
	*wp = w;
	if ((rv = t->p->f->C_OpenSession(t->p->slot, CKF_SERIAL_SESSION, NULL,
		 NULL, &w->s)) != CKR_OK) {
		w->s = CK_INVALID_HANDLE;
		return p11_fail(t->p, "C_OpenSession", rv);
	}
	/* untimed: the key signs, and what it signs verifies */
	return sign_once(t, w, 1);
}

static int
sign_op(void *arg, void *w)
{
	struct sign_target *t = arg;

	return sign_once(t, w, t->verify);
}

static void
sign_fini(void *arg, void *wv)
{
	struct sign_target *t = arg;
	struct sign_worker *w = wv;

	if (w != NULL && w->s != CK_INVALID_HANDLE)
		(void)t->p->f->C_CloseSession(w->s);
	free(w);
}

static int
sign_run(struct p11 *p, const struct bench_alg *a, const struct bench_key *k,
    const uint8_t *msg, size_t len, unsigned threads, double seconds,
    int verify, int prehash, pid_t server, const char *what,
    struct load_result *res)
{
	/* through p11-kit, a mechanism may be missing (CKM_EDDSA in p11-kit
	 * 0.24: p11-glue/p11-kit issue 668) */
	int may_lack = server != 0;
	struct sign_target t;
	struct load_spec sp;
	int r;

	memset(&t, 0, sizeof(t));
	t.p = p;
	t.alg = a;
	t.msg = msg;
	t.len = len;
	t.pk = k->pk;
	t.verify = verify;
	t.may_lack = may_lack;
	t.prehash = prehash;
	if ((r = p11_find_key(p, k->id, &t.key)) != 0)
		return r;
	memset(&sp, 0, sizeof(sp));
	sp.what = what;
	sp.threads = threads;
	sp.warmup = WARMUP_SECONDS;
	sp.seconds = seconds;
	sp.server = server;
	sp.stop_on_error = 1;
	sp.init = sign_init;
	sp.op = sign_op;
	sp.fini = sign_fini;
	sp.arg = &t;
	return load_run(&sp, res);
}

/* ---- the report -------------------------------------------------------------
 */

struct alg_report {
	const struct bench_alg *alg;
	struct bench_key key;
	char *tbs; /* a signing input custodyd signed: the baselines' message */
	size_t tbslen;
	struct load_result jwt[MAX_CONN_LEVELS];
	struct load_result tls[MAX_CONN_LEVELS]; /* --tls */
	struct load_result paced;
	struct load_result raw, verify, p11kit;
	int p11kit_lacks;   /* the pair cannot sign with this mechanism */
	int p11kit_prehash; /* RSA-PSS through it: CKM_RSA_PKCS_PSS instead */
	size_t best;	    /* index into jwt */
	int done;	    /* measured completely */
};

struct jwt_report {
	struct machine mach;
	char workdir[PATH_MAX];
	double loadavg;
	struct alg_report algs[NALGS];
	size_t nalgs;
	char custodyd_exit[64];
	long custodyd_errors; /* lines with "error" in its stderr */
};

struct goals {
	double x_raw, x_verify, x_p11kit, p99_diff_ms;
	int verify_met, p11kit_met, p99_met;
};

static void
goals_of(const struct alg_report *ar, struct goals *g)
{
	double best = ar->jwt[ar->best].rate;

	g->x_raw = ratio(best, ar->raw.rate);
	g->x_verify = ratio(best, ar->verify.rate);
	g->x_p11kit = ratio(best, ar->p11kit.rate);
	g->p99_diff_ms = (ar->paced.lat.p99 - ar->raw.lat.p99) / 1e3;
	g->verify_met = g->x_verify >= GOAL_SIGN_VERIFY;
	/* -1: no such baseline (the pair cannot sign with the mechanism) */
	g->p11kit_met = ar->p11kit_lacks ? -1 : g->x_p11kit >= GOAL_P11KIT;
	g->p99_met = ar->paced.n > 0 && ar->paced.late == 0 &&
		     g->p99_diff_ms <= GOAL_P99_MS;
}

static json_t *
result_json(const struct load_result *r, int jwt)
{
	json_t *o = json_pack("{s:i, s:I, s:f, s:f, s:o, s:f, s:I}", "threads",
	    (int)r->threads, "n", (json_int_t)r->n, "seconds", r->secs,
	    "per_second", r->rate, "latency", dist_json(&r->lat),
	    "client_cpu_us_per_op", r->client_cpu_us, "errors",
	    (json_int_t)r->errors);

	if (o != NULL)
		json_object_set_new(
		    o, "other_processes_cores", json_real(r->others));
	if (o == NULL)
		return NULL;
	if (jwt) {
		json_object_set_new(o, "connections", json_integer(r->threads));
		json_object_set_new(o, "custodyd_cpu_us_per_request",
		    json_real(r->server_cpu_us));
		json_object_set_new(
		    o, "leaves_per_commit", json_real(r->leaves_per_commit));
		json_object_set_new(
		    o, "reconnects", json_integer((json_int_t)r->reconnects));
	}
	if (r->rate_asked > 0) {
		json_object_set_new(
		    o, "per_second_asked", json_real(r->rate_asked));
		json_object_set_new(
		    o, "late", json_integer((json_int_t)r->late));
	}
	return o;
}

static json_t *
alg_json(const struct alg_report *ar, size_t nconns)
{
	struct goals g;
	json_t *runs, *p11, *p11x, *tls = NULL, *o;
	size_t i;

	goals_of(ar, &g);
	if ((runs = json_array()) == NULL)
		return NULL;
	/* no pair, no ratio: null rather than a 0 that reads as a miss */
	p11x = ar->p11kit_lacks ? json_null() : json_real(g.x_p11kit);
	for (i = 0; i < nconns; i++)
		json_array_append_new(runs, result_json(&ar->jwt[i], 1));
	if (ar->tls[0].threads > 0 && (tls = json_array()) != NULL)
		for (i = 0; i < nconns; i++)
			json_array_append_new(tls, result_json(&ar->tls[i], 1));
	if (ar->p11kit_lacks)
		p11 = json_pack("{s:s}", "unsupported",
		    "C_SignInit: CKR_MECHANISM_INVALID through p11-kit");
	else if ((p11 = result_json(&ar->p11kit, 0)) != NULL) {
		json_object_set_new(p11, "server_cpu_us_per_op",
		    json_real(ar->p11kit.server_cpu_us));
		json_object_set_new(p11, "mechanism",
		    json_string(ar->p11kit_prehash
				    ? "CKM_RSA_PKCS_PSS over a host SHA-256"
				    : ar->alg->mech_name));
	}
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o,"
		      " s:{s:o, s:o, s:o},"
		      " s:{s:i, s:f, s:f, s:f, s:o},"
		      " s:{s:{s:f, s:f, s:b}, s:{s:f, s:o, s:o},"
		      " s:{s:f, s:f, s:f, s:f, s:b}}}",
	    "alg", ar->alg->name, "jws_alg", ar->alg->jws, "mechanism",
	    ar->alg->mech_name, "key", ar->key.id, "kid", ar->key.kid,
	    "message_bytes", (json_int_t)ar->tbslen, "jwt", runs,
	    "jwt_paced_half_peak", result_json(&ar->paced, 1), "baselines",
	    "raw_sign", result_json(&ar->raw, 0), "sign_verify",
	    result_json(&ar->verify, 0), "p11kit_pair", p11, "ratios",
	    "best_connections", (int)ar->jwt[ar->best].threads,
	    "best_per_second", ar->jwt[ar->best].rate, "x_raw_sign", g.x_raw,
	    "x_sign_verify", g.x_verify, "x_p11kit_pair", p11x, "goals",
	    "sign_verify", "want_at_least", GOAL_SIGN_VERIFY, "value",
	    g.x_verify, "met", g.verify_met, "p11kit_pair", "want_at_least",
	    GOAL_P11KIT, "value", json_deep_copy(p11x), "met",
	    g.p11kit_met < 0 ? json_null() : json_boolean(g.p11kit_met),
	    "p99_half_peak", "p99_ms", ar->paced.lat.p99 / 1e3,
	    "raw_sign_p99_ms", ar->raw.lat.p99 / 1e3, "difference_ms",
	    g.p99_diff_ms, "want_at_most_ms", GOAL_P99_MS, "met", g.p99_met);
	if (o != NULL && tls != NULL)
		json_object_set_new(o, "tls", tls);
	else
		json_decref(tls);
	return o;
}

static int
report_json(const struct jwt_opts *o, const struct jwt_report *rep)
{
	json_t *root, *algs, *conns;
	size_t i;
	int r = CUSTODY_E_NOMEM;

	if ((algs = json_array()) == NULL || (conns = json_array()) == NULL) {
		json_decref(algs);
		return fail("the JSON report", r);
	}
	for (i = 0; i < o->nconns; i++)
		json_array_append_new(conns, json_integer(o->conns[i]));
	for (i = 0; i < rep->nalgs; i++)
		json_array_append_new(algs, alg_json(&rep->algs[i], o->nconns));
	root = json_pack("{s:s, s:s, s:{s:s, s:i, s:s, s:s, s:f, s:s},"
			 " s:{s:f, s:f, s:o, s:i, s:i, s:f, s:s, s:s, s:s,"
			 " s:s},"
			 " s:o, s:{s:s, s:i}}",
	    "custody", CUSTODY_VERSION, "openssl",
	    OpenSSL_version(OPENSSL_VERSION), "machine", "cpu", rep->mach.cpu,
	    "cores", (int)rep->mach.cores, "kernel", rep->mach.kernel,
	    "filesystem", rep->mach.fs, "loadavg_at_start", rep->loadavg, "dir",
	    rep->workdir, "params", "seconds", o->seconds, "warmup_seconds",
	    WARMUP_SECONDS, "connections", conns, "paced_connections",
	    PACED_CONNS, "workers", (int)o->workers, "paced_share_of_peak",
	    PACED_SHARE, "module", o->module, "p11kit_client", o->p11kit_client,
	    "custodyd", o->custodyd, "custody", o->custody, "algs", algs,
	    "custodyd", "exit", rep->custodyd_exit, "error_lines",
	    (int)rep->custodyd_errors);
	if (root != NULL)
		json_object_set_new(
		    root, "credential", json_string(cmd_name()));
	if (root == NULL)
		return fail("the JSON report", r);
	r = json_dumpf(root, stdout, JSON_INDENT(2)) == 0 &&
		    fputc('\n', stdout) != EOF
		? 0
		: CUSTODY_E_IO;
	json_decref(root);
	return r;
}

static const char *
met(int ok)
{
	return ok ? "met" : "NOT MET";
}

static void
print_row(const char *name, const char *conns, const struct load_result *r,
    int server, int jwt)
{
	char scpu[16] = "-", lpc[16] = "-";

	if (server)
		snprintf(scpu, sizeof(scpu), "%.0f", r->server_cpu_us);
	if (jwt)
		snprintf(lpc, sizeof(lpc), "%.1f", r->leaves_per_commit);
	printf("  %-31s %6s %8.0f %8.0f %8.0f %7s %7.0f %7s %6.2f %6" PRIu64
	       "\n",
	    name, conns, r->rate, r->lat.p50, r->lat.p99, scpu,
	    r->client_cpu_us, lpc, r->others, r->errors);
}

static void
report_text(const struct jwt_opts *o, const struct jwt_report *rep)
{
	const struct alg_report *ar;
	struct goals g;
	char name[64], conns[32];
	size_t i, j, ngoals = 0, nmet = 0;
	uint64_t errors = 0;

	printf("custody-bench %s: custody %s, %s\n", cmd_name(),
	    CUSTODY_VERSION, OpenSSL_version(OPENSSL_VERSION));
	printf("machine: %s, %ld cores, %s; load average %.2f at the "
	       "start\n",
	    rep->mach.cpu, rep->mach.cores, rep->mach.kernel, rep->loadavg);
	printf("token: %s, file object store in %s (%s), where the audit log "
	       "is too\n",
	    o->module, rep->workdir, rep->mach.fs);
	printf("custodyd: %u workers; runs of %.1f s after %.1f s of warm-up; "
	       "baselines with %u threads\n",
	    o->workers, o->seconds, WARMUP_SECONDS, o->workers);
	printf("p11-kit pair: p11-kit server --provider %s, client %s\n",
	    o->module, o->p11kit_client);

	for (i = 0; i < rep->nalgs; i++) {
		ar = &rep->algs[i];
		if (!ar->done)
			continue;
		goals_of(ar, &g);
		printf("\n%s (JWS %s; %s), key %s, signing input %zu "
		       "bytes:\n",
		    ar->alg->name, ar->alg->jws, ar->alg->mech_name, ar->key.id,
		    ar->tbslen);
		printf("  %-31s %6s %8s %8s %8s %7s %7s %7s %6s %6s\n", "",
		    "conns/", "per", "p50", "p99", "server", "client",
		    "leaves/", "others", "errors");
		printf("  %-31s %6s %8s %8s %8s %7s %7s %7s %6s %6s\n", "",
		    "thrds", "second", "us", "us", "CPU us", "CPU us", "commit",
		    "cores", "");
		for (j = 0; j < o->nconns; j++) {
			snprintf(
			    conns, sizeof(conns), "%u", ar->jwt[j].threads);
			snprintf(name, sizeof(name), "%s over the Unix socket",
			    cred());
			print_row(name, conns, &ar->jwt[j], 1, 1);
		}
		for (j = 0; o->tls && j < o->nconns; j++) {
			snprintf(
			    conns, sizeof(conns), "%u", ar->tls[j].threads);
			snprintf(name, sizeof(name), "%s over TCP+mutual TLS",
			    cred());
			print_row(name, conns, &ar->tls[j], 1, 1);
		}
		snprintf(name, sizeof(name), "%s paced, %.0f/s asked", cred(),
		    ar->paced.rate_asked);
		snprintf(conns, sizeof(conns), "%u", ar->paced.threads);
		print_row(name, conns, &ar->paced, 1, 1);
		snprintf(conns, sizeof(conns), "%u", ar->raw.threads);
		print_row("raw C_SignInit + C_Sign", conns, &ar->raw, 0, 0);
		print_row(
		    "raw C_Sign + OpenSSL verify", conns, &ar->verify, 0, 0);
		if (ar->p11kit_prehash)
			print_row("C_Sign via p11-kit pair (*)", conns,
			    &ar->p11kit, 1, 0);
		else if (ar->p11kit_lacks)
			printf("  %-31s %6s  cannot sign: C_SignInit says "
			       "CKR_MECHANISM_INVALID (p11-kit's RPC\n"
			       "  %-31s %6s  does not carry %s)\n",
			    "C_Sign through p11-kit pair", conns, "", "",
			    ar->alg->mech_name);
		else
			print_row("C_Sign through p11-kit pair", conns,
			    &ar->p11kit, 1, 0);
		if (ar->p11kit_prehash)
			printf("  (*) CKM_RSA_PKCS_PSS over a SHA-256 made "
			       "here: p11-kit's RPC does not carry %s\n",
			    ar->alg->mech_name);
		for (j = 0; j < o->nconns; j++)
			if (ar->jwt[j].reconnects > 0)
				printf("  note: custodyd closed %" PRIu64
				       " keep-alive connections at %u "
				       "connections\n",
				    ar->jwt[j].reconnects, ar->jwt[j].threads);
		if (ar->paced.late > 0)
			printf("  note: the paced run fell behind: %" PRIu64
			       " requests were never sent\n",
			    ar->paced.late);
		if (ar->p11kit_lacks)
			snprintf(name, sizeof(name), "no p11-kit pair");
		else
			snprintf(name, sizeof(name), "%.2f x p11-kit pair",
			    g.x_p11kit);
		printf("\n  best %s rate %.0f/s (%u connections) = %.2f x raw "
		       "C_Sign, %.2f x C_Sign + verify, %s\n",
		    cred(), ar->jwt[ar->best].rate, ar->jwt[ar->best].threads,
		    g.x_raw, g.x_verify, name);
		for (j = 0; o->tls && j < o->nconns; j++)
			errors += ar->tls[j].errors;
		if (x509_mode) /* ARCHITECTURE.md section 6 sets goals
				* for JWTs only */
			goto errors;
		printf("  goal: >= %.1f x C_Sign + verify        %5.2f      "
		       "%s\n",
		    GOAL_SIGN_VERIFY, g.x_verify, met(g.verify_met));
		if (g.p11kit_met < 0)
			printf("  goal: >= %.1f x p11-kit pair           n/a: "
			       "the pair cannot sign %s at all\n",
			    GOAL_P11KIT, ar->alg->name);
		else
			printf("  goal: >= %.1f x p11-kit pair           %5.2f "
			       "     %s\n",
			    GOAL_P11KIT, g.x_p11kit, met(g.p11kit_met));
		printf("  goal: p99 at half the peak <= raw C_Sign p99 + %.0f "
		       "ms: %.3f ms vs %.3f ms, %+.3f ms  %s\n",
		    GOAL_P99_MS, ar->paced.lat.p99 / 1e3, ar->raw.lat.p99 / 1e3,
		    g.p99_diff_ms, met(g.p99_met));
		ngoals += 2 + (g.p11kit_met >= 0);
		nmet += (size_t)g.verify_met + (size_t)(g.p11kit_met > 0) +
			(size_t)g.p99_met;
errors:
		for (j = 0; j < o->nconns; j++)
			errors += ar->jwt[j].errors;
		errors += ar->paced.errors;
	}
	if (!x509_mode)
		printf("\ngoals met: %zu of %zu.", nmet, ngoals);
	else
		printf("\n(ARCHITECTURE.md section 6 sets no goal for X.509.)");
	printf(" Requests failed: %" PRIu64 ". custodyd: %s after SIGTERM; "
	       "%ld error lines in its log.\n",
	    errors, rep->custodyd_exit, rep->custodyd_errors);
	printf("server CPU: custodyd's (p11-kit server's for the pair) per "
	       "request, from /proc; client CPU: this\n"
	       "process's (one thread for the credential runs); others: cores "
	       "busy "
	       "with other "
	       "processes during the run\n"
	       "(/proc/stat). Paced latency counts from each request's "
	       "scheduled send time.\n");
}

/* Did any request fail, or custodyd's counts differ from the answers? */
static int
wrong_answers(const struct jwt_report *rep, size_t nconns)
{
	const struct alg_report *ar;
	size_t i, j;

	for (i = 0; i < rep->nalgs; i++) {
		ar = &rep->algs[i];
		if (ar->paced.errors > 0 || ar->paced.mismatch)
			return 1;
		for (j = 0; j < nconns; j++)
			if (ar->jwt[j].errors > 0 || ar->jwt[j].mismatch ||
			    ar->tls[j].errors > 0 || ar->tls[j].mismatch)
				return 1;
	}
	return 0;
}

/* ---- jwt: the subcommand ----------------------------------------------------
 */

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct paths {
	char *sopin, *userpin, *hsmconf, *tokens, *data, *policy, *conf, *sock,
	    *p11sock;
};

static void
paths_free(struct paths *p)
{
	free(p->sopin);
	free(p->userpin);
	free(p->hsmconf);
	free(p->tokens);
	free(p->data);
	free(p->policy);
	free(p->conf);
	free(p->sock);
	free(p->p11sock);
	memset(p, 0, sizeof(*p));
}

/* PIN files, softhsm2.conf, the policy and custody.conf in dir. */
static int
setup_files(const struct jwt_opts *o, const char *dir, struct paths *p)
{
	uint8_t rnd[12];
	char pin[2 * sizeof(rnd) + 1], hsmdir[PATH_MAX], port[32] = "";
	char *tcert = NULL, *tkey = NULL, *tca = NULL;
	uid_t uid = getuid();
	int r;

	if ((p->sopin = path_join(dir, "so.pin")) == NULL ||
	    (p->userpin = path_join(dir, "user.pin")) == NULL ||
	    (p->data = path_join(dir, "data")) == NULL ||
	    (p->policy = path_join(dir, "policy.json")) == NULL ||
	    (p->conf = path_join(dir, "custody.conf")) == NULL ||
	    (p->sock = path_join(dir, "api.sock")) == NULL ||
	    (p->p11sock = path_join(dir, "p11-kit.sock")) == NULL)
		return CUSTODY_E_NOMEM;
	snprintf(hsmdir, sizeof(hsmdir), "%s/softhsm2", p->data);
	if ((p->hsmconf = path_join(hsmdir, "softhsm2.conf")) == NULL ||
	    (p->tokens = path_join(hsmdir, "tokens")) == NULL)
		return CUSTODY_E_NOMEM;
	if (mkdir(p->data, 0700) == -1 || mkdir(hsmdir, 0700) == -1 ||
	    mkdir(p->tokens, 0700) == -1) {
		errorx("mkdir in %s: %s", dir, strerror(errno));
		return CUSTODY_E_IO;
	}
	/* fresh PINs: in files of mode 0600 only, never in argv */
	if ((r = util_random(rnd, sizeof(rnd))) != 0)
		return fail("random PIN", r);
	util_hex_encode(rnd, sizeof(rnd), pin);
	r = write_file(p->userpin, 0600, "%s\n", pin);
	if (r == 0 && (r = util_random(rnd, sizeof(rnd))) == 0) {
		util_hex_encode(rnd, sizeof(rnd), pin);
		r = write_file(p->sopin, 0600, "%s\n", pin);
	}
	OPENSSL_cleanse(rnd, sizeof(rnd));
	OPENSSL_cleanse(pin, sizeof(pin));
	if (r != 0)
		return r;
	if ((r = write_file(p->hsmconf, 0600,
		 "directories.tokendir = %s\n"
		 "objectstore.backend = file\n"
		 "log.level = ERROR\n"
		 "slots.mechanisms = ALL\n",
		 p->tokens)) != 0)
		return r;
	if ((r = write_file(p->policy, 0600,
		 "{\"version\": 1,\n"
		 " \"description\": \"custody-bench jwt: this uid issues JWTs "
		 "for its agents\",\n"
		 " \"rules\": [\n"
		 "  {\"id\": \"bench-admin\", \"effect\": \"allow\", "
		 "\"principals\": [\"unix:uid=%lu\"],\n"
		 "   \"actions\": [\"key.create\", \"key.read\", "
		 "\"audit.read\", \"ca.manage\"]},\n"
		 "  {\"id\": \"bench-x509\", \"effect\": \"allow\", "
		 "\"principals\": [\"unix:uid=%lu\", \"" BENCH_BROKER "\"],\n"
		 "   \"actions\": [\"credential.x509\"],\n"
		 "   \"keys\": {\"agent\": [\"" AGENT_PREFIX "*\"], "
		 "\"purpose\": [\"x509-ca\"]},\n"
		 "   \"conditions\": {\"max_ttl\": \"15m\", \"x509\": "
		 "{\"csr_keys\": [\"ecdsa-p256\"]}}},\n"
		 "  {\"id\": \"bench-jwt\", \"effect\": \"allow\", "
		 "\"principals\": [\"unix:uid=%lu\", \"" BENCH_BROKER "\"],\n"
		 "   \"actions\": [\"credential.jwt\"],\n"
		 "   \"keys\": {\"agent\": [\"" AGENT_PREFIX "*\"], "
		 "\"purpose\": [\"jwt\"]},\n"
		 "   \"conditions\": {\"max_ttl\": \"15m\", \"audiences\": "
		 "[\"" AUDIENCE "\"]}}\n"
		 " ]}\n",
		 (unsigned long)uid, (unsigned long)uid, (unsigned long)uid)) !=
	    0)
		return r;
	if (o->tls) {
		if ((r = tls_setup(dir, &tcert, &tkey, &tca)) != 0) {
			free(tcert);
			free(tkey);
			free(tca);
			return r;
		}
		snprintf(port, sizeof(port), "127.0.0.1:%d", bench_port);
	}
	r = write_file(p->conf, 0600,
	    "# custody-bench\n"
	    "data-dir %s\n"
	    "pkcs11-module %s\n"
	    "token pkcs11:token=" TOKEN_LABEL "\n"
	    "pin-file %s\n"
	    "pkcs11-env SOFTHSM2_CONF=%s\n"
	    "log-origin bench.test/log\n"
	    "issuer https://bench.test\n"
	    "jwt-ed25519-alg EdDSA\n"
	    "policy %s\n"
	    "listen-unix %s\n"
	    "workers %u\n"
	    "%s%s%s%s%s%s%s%s%s",
	    p->data, o->module, p->userpin, p->hsmconf, p->policy, p->sock,
	    o->workers, o->tls ? "listen-tcp " : "", o->tls ? port : "",
	    o->tls ? "\ntls-cert " : "", o->tls ? tcert : "",
	    o->tls ? "\ntls-key " : "", o->tls ? tkey : "",
	    o->tls ? "\ntls-client-ca " : "", o->tls ? tca : "",
	    o->tls ? "\n" : "");
	free(tcert);
	free(tkey);
	free(tca);
	return r;
}

/* custody -c CONF init --so-pin-file FILE, to completion. */
static int
custody_init(const struct jwt_opts *o, const char *dir, const struct paths *p)
{
	struct child c;
	char *out = NULL, *err = NULL, st[64];
	char *argv[] = {(char *)o->custody, "-c", p->conf, "init",
	    "--so-pin-file", p->sopin, NULL};
	int r;

	if ((out = path_join(dir, "init.out")) == NULL ||
	    (err = path_join(dir, "init.err")) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if ((r = child_spawn(&c, "custody init", argv, out, err)) != 0)
		goto out;
	(void)child_wait(&c, 1e9);
	if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
		status_text(c.status, st, sizeof(st));
		errorx("%s -c %s init: %s", o->custody, p->conf, st);
		print_tail("custody init's stderr", err);
		r = CUSTODY_E_INTERNAL;
	}
out:
	free(out);
	free(err);
	return r;
}

/* Wait for a Unix socket to appear (p11-kit server). */
static int
socket_wait(struct child *c, const char *path)
{
	struct stat sb;
	uint64_t t0 = now_ns();
	char st[64];

	while (stat(path, &sb) == -1 || !S_ISSOCK(sb.st_mode)) {
		if (child_gone(c)) {
			status_text(c->status, st, sizeof(st));
			errorx("%s exited (%s)", c->name, st);
			print_tail(c->name, c->errpath);
			return CUSTODY_E_NOT_RUNNING;
		}
		if (interrupted || secs_since(t0) > READY_TIMEOUT_S) {
			errorx("%s: no socket %s", c->name, path);
			return CUSTODY_E_TIMEOUT;
		}
		sleep_ms(20);
	}
	return 0;
}

/*
 * The p11-kit pair: p11-kit server on the module (no PIN: the client logs
 * in), then the client module loaded here.
 */
static int
p11kit_start(const struct jwt_opts *o, const char *dir, const struct paths *p,
    struct child *srv, struct p11 *p11)
{
	char *out = NULL, *err = NULL, addr[PATH_MAX + 16];
	char *argv[] = {"p11-kit", "server", "--provider", (char *)o->module,
	    "-f", "-n", p->p11sock, "pkcs11:token=" TOKEN_LABEL, NULL};
	int r;

	if ((out = path_join(dir, "p11-kit.out")) == NULL ||
	    (err = path_join(dir, "p11-kit.err")) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	/* SOFTHSM2_CONF is in this process's environment, so in its */
	progress("starting p11-kit server on %s", p->p11sock);
	if ((r = child_spawn(srv, "p11-kit server", argv, out, err)) != 0 ||
	    (r = socket_wait(srv, p->p11sock)) != 0)
		goto out;
	/* the client module reads the address when it initialises */
	snprintf(addr, sizeof(addr), "unix:path=%s", p->p11sock);
	if (setenv("P11_KIT_SERVER_ADDRESS", addr, 1) == -1) {
		errorx("setenv: %s", strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	r = p11_open(p11, o->p11kit_client, p->userpin);
	(void)unsetenv("P11_KIT_SERVER_ADDRESS");
out:
	free(out);
	free(err);
	return r;
}

/*
 * The three baselines of one algorithm, while custodyd is idle: raw
 * C_Sign and C_Sign + verify on the module (direct), and raw C_Sign
 * through the p11-kit pair (remote), over a signing input custodyd signed.
 */
static int
baselines_alg(const struct jwt_opts *o, struct p11 *direct, struct p11 *remote,
    pid_t srv, struct alg_report *ar)
{
	const uint8_t *msg = (const uint8_t *)ar->tbs;
	char what[96];
	int r;

	snprintf(what, sizeof(what), "%s, raw C_Sign", ar->alg->name);
	progress("%s, %u threads, %.1f s", what, o->workers, o->seconds);
	if ((r = sign_run(direct, ar->alg, &ar->key, msg, ar->tbslen,
		 o->workers, o->seconds, 0, 0, 0, what, &ar->raw)) != 0)
		return r;
	snprintf(what, sizeof(what), "%s, C_Sign + verify", ar->alg->name);
	progress("%s, %u threads, %.1f s", what, o->workers, o->seconds);
	if ((r = sign_run(direct, ar->alg, &ar->key, msg, ar->tbslen,
		 o->workers, o->seconds, 1, 0, 0, what, &ar->verify)) != 0)
		return r;
	snprintf(
	    what, sizeof(what), "%s, C_Sign through p11-kit", ar->alg->name);
	progress("%s, %u threads, %.1f s", what, o->workers, o->seconds);
	r = sign_run(remote, ar->alg, &ar->key, msg, ar->tbslen, o->workers,
	    o->seconds, 0, 0, srv, what, &ar->p11kit);
	if (r == CUSTODY_E_UNSUPPORTED &&
	    ar->alg->mech == CKM_SHA256_RSA_PKCS_PSS) {
		/* the same RSA private operation, with the SHA-256 of the
		 * message made here: the PSS signature is the same kind */
		progress("%s: p11-kit does not carry %s: CKM_RSA_PKCS_PSS over "
			 "a SHA-256 made here instead",
		    what, ar->alg->mech_name);
		ar->p11kit_prehash = 1;
		r = sign_run(remote, ar->alg, &ar->key, msg, ar->tbslen,
		    o->workers, o->seconds, 0, 1, srv, what, &ar->p11kit);
	}
	if (r == CUSTODY_E_UNSUPPORTED) {
		progress("%s: p11-kit does not carry %s: no such baseline",
		    what, ar->alg->mech_name);
		memset(&ar->p11kit, 0, sizeof(ar->p11kit));
		ar->p11kit_lacks = 1;
		r = 0;
	}
	return r;
}

/* The closed-loop runs and the paced one, for one algorithm. */
static int
jwt_alg(const struct jwt_opts *o, const struct paths *p, struct child *d,
    struct alg_report *ar)
{
	double best;
	size_t j;
	int r;

	for (j = 0; j < o->nconns; j++) {
		progress("%s: %ss, %u connection%s, %.1f s", ar->alg->name,
		    cred(), o->conns[j], o->conns[j] == 1 ? "" : "s",
		    o->seconds);
		if ((r = jwt_run(p->sock, d, ar->alg, &ar->key, o->conns[j], 0,
			 o->seconds, 0, &ar->tbs, &ar->tbslen, &ar->jwt[j])) !=
		    0)
			return r;
		if (ar->jwt[j].rate > ar->jwt[ar->best].rate)
			ar->best = j;
	}
	for (j = 0; o->tls && j < o->nconns; j++) {
		progress(
		    "%s: %ss over TCP + mutual TLS, %u connection%s, %.1f s",
		    ar->alg->name, cred(), o->conns[j],
		    o->conns[j] == 1 ? "" : "s", o->seconds);
		if ((r = jwt_run(p->sock, d, ar->alg, &ar->key, o->conns[j], 0,
			 o->seconds, 1, &ar->tbs, &ar->tbslen, &ar->tls[j])) !=
		    0)
			return r;
	}
	best = ar->jwt[ar->best].rate;
	if (best <= 0) {
		errorx("%s: no %s was issued", ar->alg->name, cred());
		return CUSTODY_E_INTERNAL;
	}
	progress("%s: %ss, %d connections paced at %.0f/s (half of %.0f/s), "
		 "%.1f s",
	    ar->alg->name, cred(), PACED_CONNS, best * PACED_SHARE, best,
	    o->seconds);
	return jwt_run(p->sock, d, ar->alg, &ar->key, PACED_CONNS,
	    best * PACED_SHARE, o->seconds, 0, &ar->tbs, &ar->tbslen,
	    &ar->paced);
}

int
cmd_jwt(int argc, char **argv)
{
	struct jwt_opts o;
	struct jwt_report *rep = NULL;
	struct paths p;
	struct child d, srv;
	struct p11 direct, remote;
	struct sigaction sa, old_int, old_term, old_hup;
	char *out = NULL, *err = NULL;
	char *dargv[] = {NULL, "-c", NULL, NULL};
	double la[1];
	size_t i;
	int r, made = 0, ex = EXIT_FAILURE, sigs = 0;

	memset(&p, 0, sizeof(p));
	memset(&d, 0, sizeof(d));
	memset(&srv, 0, sizeof(srv));
	memset(&direct, 0, sizeof(direct));
	memset(&remote, 0, sizeof(remote));
	if ((r = jwt_parse(argc, argv, &o)) != 0)
		return r < 0 ? 0 : r;
	if (x509_mode && csr_make() != 0)
		return EXIT_FAILURE;
	if ((rep = calloc(1, sizeof(*rep))) == NULL) {
		errorx("out of memory");
		return EXIT_FAILURE;
	}
	snprintf(rep->custodyd_exit, sizeof(rep->custodyd_exit), "not run");
	rep->nalgs = o.nalgs;
	for (i = 0; i < o.nalgs; i++)
		rep->algs[i].alg = o.algs[i];
	if (getloadavg(la, 1) == 1)
		rep->loadavg = la[0];

	/* stop cleanly on ^C: the runs end, the children are stopped and
	 * the work directory removed */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, &old_int) == 0 &&
	    sigaction(SIGTERM, &sa, &old_term) == 0 &&
	    sigaction(SIGHUP, &sa, &old_hup) == 0)
		sigs = 1;

	if ((size_t)snprintf(rep->workdir, sizeof(rep->workdir),
		"%s/custody-bench-jwt.XXXXXX", o.dir) >= sizeof(rep->workdir) ||
	    mkdtemp(rep->workdir) == NULL) {
		errorx("mkdtemp in %s: %s", o.dir, strerror(errno));
		goto out;
	}
	made = 1;
	machine_get(rep->workdir, &rep->mach);
	progress("work directory %s (%s)", rep->workdir, rep->mach.fs);
	if (setup_files(&o, rep->workdir, &p) != 0)
		goto out;
	/* for the baselines' own C_Initialize and the p11-kit server */
	if (setenv("SOFTHSM2_CONF", p.hsmconf, 1) == -1) {
		errorx("setenv: %s", strerror(errno));
		goto out;
	}
	progress("custody init: token '%s' in %s", TOKEN_LABEL, p.tokens);
	if (custody_init(&o, rep->workdir, &p) != 0)
		goto out;
	if ((out = path_join(rep->workdir, "custodyd.out")) == NULL ||
	    (err = path_join(rep->workdir, "custodyd.err")) == NULL)
		goto out;
	dargv[0] = (char *)o.custodyd;
	dargv[2] = p.conf;
	progress("starting %s with %u workers", o.custodyd, o.workers);
	if (child_spawn(&d, "custodyd", dargv, out, err) != 0 ||
	    custodyd_ready(&d, p.sock) != 0)
		goto out;
	for (i = 0; i < rep->nalgs; i++) {
		progress("POST /v1/keys: a %s key", rep->algs[i].alg->name);
		if (key_create(p.sock, rep->algs[i].alg, &rep->algs[i].key) !=
		    0)
			goto out;
	}

	/* the p11-kit server before this process initialises the module
	 * (it forks); both stay idle while custodyd is loaded */
	if (p11kit_start(&o, rep->workdir, &p, &srv, &remote) != 0 ||
	    p11_open(&direct, o.module, p.userpin) != 0)
		goto out;
	/* each algorithm's baselines right after its JWT runs, so that both
	 * see the same machine (other load on it drifts) */
	for (i = 0; i < rep->nalgs; i++) {
		if (jwt_alg(&o, &p, &d, &rep->algs[i]) != 0 ||
		    baselines_alg(
			&o, &direct, &remote, srv.pid, &rep->algs[i]) != 0)
			goto out;
		rep->algs[i].done = 1;
	}
	p11_close(&remote);
	p11_close(&direct);

	progress("stopping custodyd (SIGTERM)");
	r = child_stop(&d, SIGTERM, STOP_TIMEOUT_S);
	status_text(d.status, rep->custodyd_exit, sizeof(rep->custodyd_exit));
	rep->custodyd_errors = count_lines(err, "error");
	if (r != 0 || !WIFEXITED(d.status) || WEXITSTATUS(d.status) != 0) {
		errorx("custodyd did not stop cleanly: %s", rep->custodyd_exit);
		print_tail("custodyd's stderr", err);
		goto out;
	}
	if (rep->custodyd_errors != 0)
		print_tail("custodyd's stderr (it logged errors)", err);
	if (o.json) {
		if (report_json(&o, rep) != 0)
			goto out;
	} else
		report_text(&o, rep);
	if (fflush(stdout) == EOF) {
		errorx("writing the report: %s", strerror(errno));
		goto out;
	}
	if (wrong_answers(rep, o.nconns)) {
		errorx("some answers were wrong (above): the measurements "
		       "stand, the run failed");
		goto out;
	}
	ex = 0;
out:
	p11_close(&remote);
	p11_close(&direct);
	/* every path: no server is left running */
	if (child_stop(&srv, SIGTERM, 10) != 0)
		ex = EXIT_FAILURE;
	if (d.pid != 0 && !d.reaped) {
		(void)child_stop(&d, SIGTERM, STOP_TIMEOUT_S);
		print_tail("custodyd's stderr", d.errpath);
	}
	for (i = 0; i < rep->nalgs; i++) {
		pubkey_free(rep->algs[i].key.pk);
		EVP_PKEY_free(rep->algs[i].key.ca_pub);
		free(rep->algs[i].tbs);
	}
	if (made && o.keep)
		progress("kept %s", rep->workdir);
	else if (made && rm_tree(rep->workdir) != 0)
		ex = EXIT_FAILURE;
	if (sigs) {
		(void)sigaction(SIGINT, &old_int, NULL);
		(void)sigaction(SIGTERM, &old_term, NULL);
		(void)sigaction(SIGHUP, &old_hup, NULL);
	}
	paths_free(&p);
	free(out);
	free(err);
	free(rep);
	free(bench_csr);
	bench_csr = NULL;
	return ex;
}

int
cmd_x509(int argc, char **argv)
{
	int ex;

	x509_mode = 1;
	ex = cmd_jwt(argc, argv);
	x509_mode = 0;
	return ex;
}
