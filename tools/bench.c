/* SPDX-License-Identifier: Apache-2.0 */
/*
 * custody-bench: the benchmark program (ARCHITECTURE.md section 6). It
 * measures and prints; it asserts nothing about time (timed tests are
 * forbidden). docs/PERFORMANCE.md records what it measured and where.
 *
 *   custody-bench audit   durable appends at several concurrencies, next to
 *                         raw fdatasync and one-row SQLite commits measured
 *                         on the same filesystem; then restart, root and
 *                         proof times on a log of a million leaves
 *   custody-bench policy  policy_eval() time for policies of 10 to 100,000
 *                         rules, next to a linear scan in the same run
 *   custody-bench jwt     JWT issuance by custodyd over its Unix socket at
 *                         several concurrencies, next to raw C_Sign, C_Sign
 *                         + verify and a p11-kit pair on the same token
 *                         (tools/bench_jwt.c)
 *
 * Only correctness is checked: every append must succeed, the big log must
 * hold exactly the leaves appended, and every proof must verify; any failure
 * exits non-zero.
 */
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "audit.h"
#include "bench.h"
#include "err.h"
#include "log.h"
#include "merkle.h"
#include "policy.h"
#include "store.h"
#include "util.h"

#define MAX_LEVELS     16	 /* entries of --appenders */
#define MAX_APPENDERS  1024	 /* threads per level */
#define FSYNC_WRITE    200	 /* bytes per write of the fdatasync baseline */
#define FSYNC_REGION   (1 << 20) /* the overwrite baseline cycles in here */
#define PROGRESS_EVERY 5	 /* seconds between progress lines */
#define ROOT_REPEATS   1000
#define WARM_RESTARTS  3
#define BENCH_SEED     0x637573746f6479ULL /* "custody": runs repeat */

static const char *progname = "custody-bench";
static int verbose;

/* ---- small helpers -------------------------------------------------------
 */

static void
log_stderr(int level, const char *func, const char *msg, void *arg)
{
	(void)arg;
	if (level >= LOG_DEBUG)
		fprintf(stderr, "%s: debug: %s: %s\n", progname, func, msg);
	else if (level >= LOG_NOTICE)
		fprintf(stderr, "%s: %s\n", progname, msg);
	else if (level >= LOG_WARNING)
		fprintf(stderr, "%s: warning: %s\n", progname, msg);
	else
		fprintf(stderr, "%s: error: %s: %s\n", progname, func, msg);
}

/* "custody-bench: " + prefix + message, on stderr. */
static void
vsay(const char *prefix, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s", progname, prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
errorx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("error: ", fmt, ap);
	va_end(ap);
}

/* Report a custody error; returns it. */
int
fail(const char *what, int r)
{
	errorx("%s: %s", what, custody_strerror(r));
	return r;
}

void
progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("", fmt, ap);
	va_end(ap);
}

uint64_t
now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double
secs_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e9;
}

void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* xorshift64*: reproducible, not secret (these are benchmark leaves). */
static uint64_t
rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void
rng_bytes(uint64_t *s, uint8_t *buf, size_t len)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (i % 8 == 0)
			v = rng_next(s);
		buf[i] = (uint8_t)v;
		v >>= 8;
	}
}

int
usage_get(struct usage *u)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1) {
		errorx("getrusage: %s", strerror(errno));
		return CUSTODY_E_IO;
	}
	u->cpu =
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
	u->csw = (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
	return 0;
}

/* ---- latency samples ------------------------------------------------------
 */

int
samples_add(struct samples *s, uint64_t ns)
{
	uint64_t *v;
	size_t cap;

	if (s->n == s->cap) {
		cap = s->cap == 0 ? 4096 : s->cap * 2;
		if ((v = realloc(s->v, cap * sizeof(*v))) == NULL)
			return CUSTODY_E_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
	return 0;
}

int
samples_merge(struct samples *dst, const struct samples *src)
{
	size_t i;
	int r;

	for (i = 0; i < src->n; i++)
		if ((r = samples_add(dst, src->v[i])) != 0)
			return r;
	return 0;
}

void
samples_cleanup(struct samples *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n), n > 0. */
static double
pct_us(const uint64_t *v, size_t n, double q)
{
	size_t k = (size_t)(q * (double)n + 0.999999);

	if (k == 0)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1e3;
}

/* Sorts s. */
struct dist
samples_dist(struct samples *s)
{
	struct dist d;
	double sum = 0;
	size_t i;

	memset(&d, 0, sizeof(d));
	if (s->n == 0)
		return d;
	qsort(s->v, s->n, sizeof(s->v[0]), cmp_u64);
	for (i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	d.n = s->n;
	d.mean = sum / (double)s->n / 1e3;
	d.p50 = pct_us(s->v, s->n, 0.50);
	d.p99 = pct_us(s->v, s->n, 0.99);
	d.max = (double)s->v[s->n - 1] / 1e3;
	return d;
}

/* ---- files ----------------------------------------------------------------
 */

/* dir/name, or NULL when out of memory (reported). */
char *
path_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) == -1) {
		errorx("out of memory");
		return NULL;
	}
	return p;
}

static int
unlink_quiet(const char *path)
{
	if (unlink(path) == -1 && errno != ENOENT) {
		errorx("unlink %s: %s", path, strerror(errno));
		return CUSTODY_E_IO;
	}
	return 0;
}

/* A SQLite database and its companions. */
static int
db_remove(const char *path)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	char buf[PATH_MAX];
	size_t i;
	int r = 0;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if ((size_t)snprintf(buf, sizeof(buf), "%s%s", path, sfx[i]) >=
		    sizeof(buf)) {
			errorx("path too long: %s", path);
			return CUSTODY_E_INVALID_ARG;
		}
		if (unlink_quiet(buf) != 0)
			r = CUSTODY_E_IO;
	}
	return r;
}

/* Remove dir/name (a database and its companions if db). */
static int
unlink_in(const char *dir, const char *name, int db)
{
	char *p;
	int r;

	if ((p = path_join(dir, name)) == NULL)
		return CUSTODY_E_NOMEM;
	r = db ? db_remove(p) : unlink_quiet(p);
	free(p);
	return r;
}

/* Bytes of path plus its -wal, if any. */
static int
db_size(const char *path, uint64_t *bytesp)
{
	char wal[PATH_MAX];
	struct stat sb;
	uint64_t n;

	if (stat(path, &sb) == -1) {
		errorx("stat %s: %s", path, strerror(errno));
		return CUSTODY_E_IO;
	}
	n = (uint64_t)sb.st_size;
	if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", path) < sizeof(wal) &&
	    stat(wal, &sb) == 0)
		n += (uint64_t)sb.st_size;
	*bytesp = n;
	return 0;
}

/*
 * If drop, evict path from this kernel's page cache: write back what is
 * dirty, then POSIX_FADV_DONTNEED (which drops only clean pages). *residentp
 * is the
 * fraction of the file still resident afterwards, measured with mincore(2),
 * so the report can say how cold the cache really was. A hypervisor's cache
 * below a virtual disk is out of reach and not claimed to be cold.
 */
static int
cache_drop(const char *path, int drop, double *residentp)
{
	struct stat sb;
	unsigned char *vec = NULL;
	void *map = MAP_FAILED;
	size_t pages, i, res = 0, pg = (size_t)sysconf(_SC_PAGESIZE);
	int fd, r = CUSTODY_E_IO;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		errorx("open %s: %s", path, strerror(errno));
		return CUSTODY_E_IO;
	}
	if (fstat(fd, &sb) == -1 || (drop && fdatasync(fd) == -1)) {
		errorx("sync %s: %s", path, strerror(errno));
		goto out;
	}
	if (drop &&
	    (errno = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) != 0) {
		errorx("posix_fadvise %s: %s", path, strerror(errno));
		goto out;
	}
	*residentp = 0;
	if (sb.st_size == 0) {
		r = 0;
		goto out;
	}
	pages = ((size_t)sb.st_size + pg - 1) / pg;
	if ((vec = malloc(pages)) == NULL) {
		errorx("out of memory");
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED || mincore(map, (size_t)sb.st_size, vec) == -1) {
		errorx("mincore %s: %s", path, strerror(errno));
		goto out;
	}
	for (i = 0; i < pages; i++)
		res += vec[i] & 1;
	*residentp = (double)res / (double)pages;
	r = 0;
out:
	if (map != MAP_FAILED)
		(void)munmap(map, (size_t)sb.st_size);
	free(vec);
	(void)close(fd);
	return r;
}

/* ---- leaves ---------------------------------------------------------------
 */

/*
 * A credential.jwt decision leaf as FORMATS.md section 2 shapes it; each
 * append gets fresh request and tbs hashes, exp and jti, as a broker's
 * requests would.
 */
struct leafgen {
	json_t *fields;
	json_t *detail; /* borrowed from fields */
	uint64_t rng;
};

static int
leafgen_init(struct leafgen *g, unsigned id)
{
	char principal[64];

	memset(g, 0, sizeof(*g));
	g->rng = BENCH_SEED ^ ((uint64_t)(id + 1) * 0x9E3779B97F4A7C15ULL);
	(void)rng_next(&g->rng);
	snprintf(principal, sizeof(principal),
	    "spiffe://example.org/broker/b%u", id % 8);
	g->fields = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:{s:s, s:s},"
			      " s:s, s:{s:s, s:s, s:I, s:s}}",
	    "event", "credential.jwt", "principal", principal, "key", "id",
	    "k_3c62dcbc22a2d4a4", "kid",
	    "nPvtBlInZJDn3aiBJATXyRe028zWWxuZsj-qfHW7jJM", "request_sha256", "",
	    "tbs_sha256", "", "policy", "sha256",
	    "5d41402abc4b2a76b9719d911017c592"
	    "a9e0a8b8e2f1c3d4e5f60718293a4b5c",
	    "rule", "brokers-issue-jwt", "decision", "allow", "detail", "sub",
	    "spiffe://example.org/agent/planner", "aud",
	    "https://api.example.com", "exp", (json_int_t)0, "jti", "");
	if (g->fields == NULL ||
	    (g->detail = json_object_get(g->fields, "detail")) == NULL) {
		json_decref(g->fields);
		g->fields = NULL;
		return CUSTODY_E_NOMEM;
	}
	return 0;
}

static int
set_hex(json_t *o, const char *key, uint64_t *rng, size_t nbytes)
{
	uint8_t b[32];
	char hex[65];

	rng_bytes(rng, b, nbytes);
	util_hex_encode(b, nbytes, hex);
	return json_object_set_new(o, key, json_string(hex)) == 0
		   ? 0
		   : CUSTODY_E_NOMEM;
}

static int
leafgen_next(struct leafgen *g)
{
	int r;

	if ((r = set_hex(g->fields, "request_sha256", &g->rng, 32)) != 0 ||
	    (r = set_hex(g->fields, "tbs_sha256", &g->rng, 32)) != 0 ||
	    (r = set_hex(g->detail, "jti", &g->rng, 16)) != 0)
		return r;
	if (json_object_set_new(g->detail, "exp",
		json_integer((json_int_t)time(NULL) + 300)) != 0)
		return CUSTODY_E_NOMEM;
	return 0;
}

static void
leafgen_cleanup(struct leafgen *g)
{
	json_decref(g->fields);
	g->fields = NULL;
}

/* ---- appenders ------------------------------------------------------------
 */

/*
 * One measured run of concurrent audit_append() callers: until stop is set
 * (a timed run), or until `target` appends have been claimed (building the
 * big log).
 */
struct run {
	struct audit *a;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int go;
	atomic_int stop;
	int counted;
	atomic_uint_fast64_t claimed;
	uint64_t target;
	int record; /* keep per-append latencies */
};

struct appender {
	struct run *run;
	pthread_t t;
	unsigned id;
	uint64_t n;
	struct samples lat;
	int r;
};

static void *
appender_main(void *arg)
{
	struct appender *ap = arg;
	struct run *run = ap->run;
	struct leafgen g;
	uint64_t seq, t0;
	int r;

	if ((r = leafgen_init(&g, ap->id)) != 0) {
		ap->r = fail("building a leaf", r);
		atomic_store(&run->stop, 1);
	}
	pthread_mutex_lock(&run->lock);
	while (!run->go)
		pthread_cond_wait(&run->cond, &run->lock);
	pthread_mutex_unlock(&run->lock);
	while (ap->r == 0 && !atomic_load(&run->stop)) {
		if (run->counted &&
		    atomic_fetch_add(&run->claimed, 1) >= run->target)
			break;
		if ((r = leafgen_next(&g)) != 0) {
			ap->r = fail("building a leaf", r);
			break;
		}
		t0 = now_ns();
		if ((r = audit_append(run->a, g.fields, NULL, NULL, &seq, NULL,
			 NULL)) != 0) {
			ap->r = fail("audit_append", r);
			break;
		}
		if (run->record &&
		    (r = samples_add(&ap->lat, now_ns() - t0)) != 0) {
			ap->r = fail("recording a latency", r);
			break;
		}
		ap->n++;
	}
	if (ap->r != 0)
		atomic_store(&run->stop, 1);
	leafgen_cleanup(&g);
	return NULL;
}

/* What one run of appenders measured. */
struct append_result {
	unsigned appenders;
	uint64_t n, commits;
	double secs, rate, batch, cpu_us, csw;
	struct dist lat;
};

/*
 * Run nthreads appenders on a: for `seconds`, or (target > 0) until target
 * leaves are appended, printing progress. Fills *res.
 */
static int
appenders_run(struct audit *a, unsigned nthreads, double seconds,
    uint64_t target, struct append_result *res)
{
	struct run run;
	struct appender *aps;
	struct samples all = {NULL, 0, 0};
	struct usage u0 = {0, 0}, u1 = {0, 0};
	uint64_t t0, c0, last, size0;
	unsigned i, started = 0;
	int r = 0, rc;

	memset(&run, 0, sizeof(run));
	memset(res, 0, sizeof(*res));
	run.a = a;
	run.counted = target > 0;
	run.target = target;
	run.record = target == 0;
	atomic_init(&run.stop, 0);
	atomic_init(&run.claimed, 0);
	if ((aps = calloc(nthreads, sizeof(*aps))) == NULL)
		return fail("appenders", CUSTODY_E_NOMEM);
	if ((rc = pthread_mutex_init(&run.lock, NULL)) != 0 ||
	    (rc = pthread_cond_init(&run.cond, NULL)) != 0) {
		errorx("pthread init: %s", strerror(rc));
		free(aps);
		return CUSTODY_E_INTERNAL;
	}
	for (i = 0; i < nthreads; i++) {
		aps[i].run = &run;
		aps[i].id = i;
		if ((rc = pthread_create(
			 &aps[i].t, NULL, appender_main, &aps[i])) != 0) {
			errorx("pthread_create: %s", strerror(rc));
			atomic_store(&run.stop, 1);
			r = CUSTODY_E_INTERNAL;
			break;
		}
		started++;
	}
	size0 = audit_size(a);
	c0 = audit_commits(a);
	if (r == 0 && (r = usage_get(&u0)) != 0)
		atomic_store(&run.stop, 1);
	t0 = now_ns();
	pthread_mutex_lock(&run.lock);
	run.go = 1;
	pthread_cond_broadcast(&run.cond);
	pthread_mutex_unlock(&run.lock);

	last = t0;
	while (!atomic_load(&run.stop)) {
		sleep_ms(100);
		if (!run.counted) {
			if (secs_since(t0) >= seconds)
				atomic_store(&run.stop, 1);
			continue;
		}
		if (audit_size(a) - size0 >= target)
			break;
		if (now_ns() - last >= PROGRESS_EVERY * 1000000000ULL) {
			uint64_t n = audit_size(a) - size0;
			double s = secs_since(t0);

			last = now_ns();
			progress("big log: %" PRIu64 " of %" PRIu64
				 " leaves, %.0f/s, about %.0f s left",
			    n, target, (double)n / s,
			    n > 0 ? (double)(target - n) * s / (double)n : 0);
		}
	}
	for (i = 0; i < started; i++) {
		if ((rc = pthread_join(aps[i].t, NULL)) != 0) {
			errorx("pthread_join: %s", strerror(rc));
			r = CUSTODY_E_INTERNAL;
			continue;
		}
		if (aps[i].r != 0 && r == 0)
			r = aps[i].r;
		res->n += aps[i].n;
		if (r == 0 && (r = samples_merge(&all, &aps[i].lat)) != 0)
			(void)fail("latencies", r);
	}
	res->secs = secs_since(t0);
	res->commits = audit_commits(a) - c0;
	if (r == 0 && (r = usage_get(&u1)) == 0) {
		res->appenders = nthreads;
		res->rate = (double)res->n / res->secs;
		res->batch = res->commits > 0
				 ? (double)res->n / (double)res->commits
				 : 0;
		res->cpu_us =
		    res->n > 0 ? (u1.cpu - u0.cpu) * 1e6 / (double)res->n : 0;
		res->csw =
		    res->n > 0 ? (double)(u1.csw - u0.csw) / (double)res->n : 0;
		res->lat = samples_dist(&all);
	}
	if (r == 0 && audit_size(a) - size0 != res->n) {
		errorx("%" PRIu64 " appends succeeded but the log grew by "
		       "%" PRIu64,
		    res->n, audit_size(a) - size0);
		r = CUSTODY_E_INTERNAL;
	}
	for (i = 0; i < nthreads; i++)
		samples_cleanup(&aps[i].lat);
	samples_cleanup(&all);
	free(aps);
	pthread_mutex_destroy(&run.lock);
	pthread_cond_destroy(&run.cond);
	return r;
}

/* ---- baselines ------------------------------------------------------------
 */

struct rate_result {
	uint64_t n;
	double secs, rate;
	struct dist lat;
};

/*
 * The physical limit of one commit: write FSYNC_WRITE bytes and fdatasync
 * (what SQLite calls on Linux for synchronous=FULL), in a loop. append: the
 * file grows at every write, so the file system journals its size too.
 * Otherwise the writes cycle through a region written and synced
 * beforehand, so only data goes to the disk (as when SQLite rewrites a WAL
 * from its start after a checkpoint).
 */
static int
bench_fdatasync(
    const char *path, int append, double seconds, struct rate_result *res)
{
	struct samples lat = {NULL, 0, 0};
	uint8_t buf[FSYNC_WRITE], *zero = NULL;
	uint64_t t0, t;
	off_t off = 0;
	int fd, r = CUSTODY_E_IO;

	memset(res, 0, sizeof(*res));
	memset(buf, 'x', sizeof(buf));
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) ==
	    -1) {
		errorx("open %s: %s", path, strerror(errno));
		return CUSTODY_E_IO;
	}
	if (!append) {
		if ((zero = calloc(1, FSYNC_REGION)) == NULL) {
			r = fail("fdatasync baseline", CUSTODY_E_NOMEM);
			goto out;
		}
		if (pwrite(fd, zero, FSYNC_REGION, 0) != FSYNC_REGION ||
		    fsync(fd) == -1) {
			errorx("preparing %s: %s", path, strerror(errno));
			goto out;
		}
	}
	t0 = now_ns();
	while (now_ns() - t0 < (uint64_t)(seconds * 1e9)) {
		t = now_ns();
		if (pwrite(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf) ||
		    fdatasync(fd) == -1) {
			errorx("write+fdatasync %s: %s", path, strerror(errno));
			goto out;
		}
		if (samples_add(&lat, now_ns() - t) != 0) {
			r = fail("fdatasync baseline", CUSTODY_E_NOMEM);
			goto out;
		}
		off += append ? (off_t)sizeof(buf) : 4096;
		if (!append && off + (off_t)sizeof(buf) > FSYNC_REGION)
			off = 0;
		res->n++;
	}
	res->secs = secs_since(t0);
	res->rate = (double)res->n / res->secs;
	res->lat = samples_dist(&lat);
	r = 0;
out:
	free(zero);
	samples_cleanup(&lat);
	if (close(fd) == -1 && r == 0) {
		errorx("close %s: %s", path, strerror(errno));
		r = CUSTODY_E_IO;
	}
	if (unlink_quiet(path) != 0 && r == 0)
		r = CUSTODY_E_IO;
	return r;
}

static int
sql_fail(sqlite3 *db, const char *what)
{
	errorx("%s: %s", what, db != NULL ? sqlite3_errmsg(db) : "no memory");
	return CUSTODY_E_STORE;
}

/* The first column of the one row sql returns, as text. */
static int
sql_text(sqlite3 *db, const char *sql, char *buf, size_t bufsz)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *t;
	int r = CUSTODY_E_STORE;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		r = sql_fail(db, sql);
		goto out;
	}
	if ((t = sqlite3_column_text(s, 0)) == NULL) {
		errorx("%s: no value", sql);
		goto out;
	}
	snprintf(buf, bufsz, "%s", (const char *)t);
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

/*
 * The naive log: a plain SQLite connection (WAL, synchronous=FULL) that
 * commits each leaf in a transaction of its own, from one thread. Each row
 * costs what the log's writer does per leaf (the leaf's bytes as compact
 * JSON, its leaf hash, one INSERT) except the Merkle nodes, so the
 * comparison flatters the naive log, if anything.
 */
static int
bench_sqlite(const char *path, double seconds, struct rate_result *res)
{
	struct samples lat = {NULL, 0, 0};
	struct leafgen g = {NULL, NULL, 0};
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	uint8_t hash[MERKLE_HASH_LEN];
	char mode[16], *s = NULL;
	json_t *o = NULL;
	uint64_t t0, t;
	int r;

	memset(res, 0, sizeof(*res));
	if (sqlite3_open_v2(path, &db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
		NULL) != SQLITE_OK) {
		r = sql_fail(db, "sqlite3_open_v2");
		goto out;
	}
	if ((r = sql_text(
		 db, "PRAGMA journal_mode = WAL", mode, sizeof(mode))) != 0)
		goto out;
	if (strcmp(mode, "wal") != 0) {
		errorx("%s: journal mode %s, not wal", path, mode);
		r = CUSTODY_E_STORE;
		goto out;
	}
	if (sqlite3_exec(db,
		"PRAGMA synchronous = FULL;"
		"CREATE TABLE leaves (seq INTEGER PRIMARY KEY NOT NULL,"
		" data BLOB NOT NULL, hash BLOB NOT NULL) STRICT;",
		NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
		"INSERT INTO leaves (seq, data, hash) VALUES (?1, ?2, ?3)", -1,
		&ins, NULL) != SQLITE_OK) {
		r = sql_fail(db, "preparing the naive log");
		goto out;
	}
	if ((r = sql_text(db, "PRAGMA synchronous", mode, sizeof(mode))) != 0)
		goto out;
	if (strcmp(mode, "2") != 0) {
		errorx("%s: synchronous is %s, not FULL", path, mode);
		r = CUSTODY_E_STORE;
		goto out;
	}
	if ((r = leafgen_init(&g, 0)) != 0) {
		(void)fail("building a leaf", r);
		goto out;
	}
	t0 = now_ns();
	while (now_ns() - t0 < (uint64_t)(seconds * 1e9)) {
		char tm[32];
		time_t now = time(NULL);
		struct tm gm;

		t = now_ns();
		(void)gmtime_r(&now, &gm);
		(void)strftime(tm, sizeof(tm), "%Y-%m-%dT%H:%M:%S.000Z", &gm);
		if ((r = leafgen_next(&g)) != 0 ||
		    (o = json_pack("{s:i, s:I, s:s}", "v", 1, "seq",
			 (json_int_t)res->n, "time", tm)) == NULL ||
		    json_object_update(o, g.fields) != 0 ||
		    (s = json_dumps(o, JSON_COMPACT)) == NULL) {
			r = fail("building a leaf", CUSTODY_E_NOMEM);
			goto out;
		}
		merkle_leaf_hash((const uint8_t *)s, strlen(s), hash);
		if (sqlite3_bind_int64(ins, 1, (sqlite3_int64)res->n) !=
			SQLITE_OK ||
		    sqlite3_bind_blob(ins, 2, s, (int)strlen(s),
			SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_blob(ins, 3, hash, sizeof(hash),
			SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_step(ins) != SQLITE_DONE) {
			r = sql_fail(db, "INSERT");
			goto out;
		}
		(void)sqlite3_reset(ins);
		json_decref(o);
		o = NULL;
		free(s);
		s = NULL;
		if ((r = samples_add(&lat, now_ns() - t)) != 0) {
			(void)fail("SQLite baseline", r);
			goto out;
		}
		res->n++;
	}
	res->secs = secs_since(t0);
	res->rate = (double)res->n / res->secs;
	res->lat = samples_dist(&lat);
	r = 0;
out:
	json_decref(o);
	free(s);
	leafgen_cleanup(&g);
	samples_cleanup(&lat);
	sqlite3_finalize(ins);
	if (sqlite3_close(db) != SQLITE_OK && r == 0)
		r = sql_fail(db, "sqlite3_close");
	if (db_remove(path) != 0 && r == 0)
		r = CUSTODY_E_IO;
	return r;
}

/* ---- the big log ----------------------------------------------------------
 */

struct restart_result {
	double store_open, audit_open, leaf_count, total; /* ms */
	double resident; /* fraction of the file cached (cold run) */
};

struct big_result {
	uint64_t leaves;
	struct append_result build;
	uint64_t bytes;
	struct restart_result warm, cold;
	double count_scan_ms, max_seq_ms; /* the two halves of the count */
	double root_first_us;
	struct dist root, incl, incl_verify, cons, cons_verify;
	size_t incl_len_max, cons_len_max;
};

static int
node_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	return store_node_get(arg, level, index, out);
}

static double
ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

/*
 * What start-up costs: open the store (schema check), open the log (its own
 * connection and writer; it counts the leaves) and count the leaves as the
 * CLI's checks do.
 */
static int
restart_once(const char *path, uint64_t want, struct restart_result *res)
{
	struct store *st = NULL;
	struct audit *a = NULL;
	uint64_t t0, t, n = 0;
	int r;

	t0 = t = now_ns();
	if ((r = store_open(path, &st)) != 0) {
		(void)fail("store_open", r);
		goto out;
	}
	res->store_open = ms_since(t);
	t = now_ns();
	if ((r = audit_open(path, &a)) != 0) {
		(void)fail("audit_open", r);
		goto out;
	}
	res->audit_open = ms_since(t);
	t = now_ns();
	if ((r = store_leaf_count(st, &n)) != 0) {
		(void)fail("store_leaf_count", r);
		goto out;
	}
	res->leaf_count = ms_since(t);
	res->total = ms_since(t0);
	if (n != want || audit_size(a) != want) {
		errorx("after restart the log holds %" PRIu64 " leaves (the "
		       "log says %" PRIu64 "), not %" PRIu64,
		    n, audit_size(a), want);
		r = CUSTODY_E_INTERNAL;
	}
out:
	audit_close(a);
	store_close(st);
	return r;
}

/* Time one query that returns a row, on a read-only connection. */
static int
time_query(const char *path, const char *sql, double *msp)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	uint64_t t;
	int r = CUSTODY_E_STORE;

	if (sqlite3_open_v2(path, &db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		    SQLITE_OPEN_NOFOLLOW,
		NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		(void)sql_fail(db, sql);
		goto out;
	}
	t = now_ns();
	if (sqlite3_step(s) != SQLITE_ROW) {
		(void)sql_fail(db, sql);
		goto out;
	}
	*msp = ms_since(t);
	r = 0;
out:
	sqlite3_finalize(s);
	(void)sqlite3_close(db);
	return r;
}

/* Leaf idx: its stored hash must be its bytes' and its seq idx. */
static int
leaf_checked(struct store *st, uint64_t idx, uint8_t hash[MERKLE_HASH_LEN])
{
	uint8_t *data = NULL, h[MERKLE_HASH_LEN];
	char head[48];
	size_t len = 0, hl;
	int r;

	if ((r = store_leaf_get(st, idx, &data, &len, hash)) != 0)
		return fail("store_leaf_get", r);
	merkle_leaf_hash(data, len, h);
	hl = (size_t)snprintf(
	    head, sizeof(head), "{\"v\":1,\"seq\":%" PRIu64 ",", idx);
	if (memcmp(h, hash, sizeof(h)) != 0 || len < hl ||
	    memcmp(data, head, hl) != 0) {
		errorx(
		    "leaf %" PRIu64 " does not match its hash or its seq", idx);
		r = CUSTODY_E_INTERNAL;
	}
	free(data);
	return r;
}

typedef uint8_t proof_t[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];

static int
big_proofs(const char *path, uint64_t n, unsigned nproofs, struct big_result *b)
{
	struct samples root = {NULL, 0, 0}, incl = {NULL, 0, 0},
		       inclv = {NULL, 0, 0}, cons = {NULL, 0, 0},
		       consv = {NULL, 0, 0};
	struct merkle_store ms;
	struct store *st = NULL;
	uint8_t rootn[MERKLE_HASH_LEN], rootm[MERKLE_HASH_LEN],
	    hash[MERKLE_HASH_LEN], bad[MERKLE_HASH_LEN];
	proof_t proof;
	uint64_t rng = BENCH_SEED, idx, m, t;
	size_t len;
	unsigned i, ncons = nproofs / 10 > 0 ? nproofs / 10 : 1;
	int r;

	if ((r = store_open(path, &st)) != 0) {
		(void)fail("store_open", r);
		goto out;
	}
	ms.get = node_get;
	ms.arg = st;
	t = now_ns();
	if ((r = merkle_root(&ms, n, rootn)) != 0) {
		(void)fail("merkle_root", r);
		goto out;
	}
	b->root_first_us = (double)(now_ns() - t) / 1e3;
	for (i = 0; i < ROOT_REPEATS; i++) {
		t = now_ns();
		if ((r = merkle_root(&ms, n, hash)) != 0) {
			(void)fail("merkle_root", r);
			goto out;
		}
		if ((r = samples_add(&root, now_ns() - t)) != 0)
			goto nomem;
		if (memcmp(hash, rootn, sizeof(hash)) != 0) {
			errorx("merkle_root gave two roots for one size");
			r = CUSTODY_E_INTERNAL;
			goto out;
		}
	}
	for (i = 0; i < nproofs; i++) {
		idx = rng_next(&rng) % n;
		if ((r = leaf_checked(st, idx, hash)) != 0)
			goto out;
		t = now_ns();
		if ((r = merkle_inclusion_proof(&ms, idx, n, proof, &len)) !=
		    0) {
			(void)fail("merkle_inclusion_proof", r);
			goto out;
		}
		if ((r = samples_add(&incl, now_ns() - t)) != 0)
			goto nomem;
		t = now_ns();
		if ((r = merkle_verify_inclusion(hash, idx, n,
			 (const uint8_t(*)[MERKLE_HASH_LEN])proof, len,
			 rootn)) != 0) {
			errorx("the inclusion proof of leaf %" PRIu64
			       " in size %" PRIu64 " does not verify: %s",
			    idx, n, custody_strerror(r));
			goto out;
		}
		if ((r = samples_add(&inclv, now_ns() - t)) != 0)
			goto nomem;
		if (len > b->incl_len_max)
			b->incl_len_max = len;
		/* once: a verifier that accepts anything proves nothing */
		if (i == 0 && len > 0) {
			memcpy(bad, proof[0], sizeof(bad));
			proof[0][0] ^= 1;
			if (merkle_verify_inclusion(hash, idx, n,
				(const uint8_t(*)[MERKLE_HASH_LEN])proof, len,
				rootn) != CUSTODY_E_PROOF) {
				errorx("a corrupted inclusion proof verified");
				r = CUSTODY_E_INTERNAL;
				goto out;
			}
			memcpy(proof[0], bad, sizeof(bad));
		}
	}
	for (i = 0; i < ncons; i++) {
		m = 1 + rng_next(&rng) % (n - 1);
		if ((r = merkle_root(&ms, m, rootm)) != 0) {
			(void)fail("merkle_root", r);
			goto out;
		}
		t = now_ns();
		if ((r = merkle_consistency_proof(&ms, m, n, proof, &len)) !=
		    0) {
			(void)fail("merkle_consistency_proof", r);
			goto out;
		}
		if ((r = samples_add(&cons, now_ns() - t)) != 0)
			goto nomem;
		t = now_ns();
		if ((r = merkle_verify_consistency(m, n, rootm, rootn,
			 (const uint8_t(*)[MERKLE_HASH_LEN])proof, len)) != 0) {
			errorx("the consistency proof from %" PRIu64
			       " to %" PRIu64 " does not verify: %s",
			    m, n, custody_strerror(r));
			goto out;
		}
		if ((r = samples_add(&consv, now_ns() - t)) != 0)
			goto nomem;
		if (len > b->cons_len_max)
			b->cons_len_max = len;
	}
	b->root = samples_dist(&root);
	b->incl = samples_dist(&incl);
	b->incl_verify = samples_dist(&inclv);
	b->cons = samples_dist(&cons);
	b->cons_verify = samples_dist(&consv);
	r = 0;
	goto out;
nomem:
	(void)fail("recording a time", r);
out:
	samples_cleanup(&root);
	samples_cleanup(&incl);
	samples_cleanup(&inclv);
	samples_cleanup(&cons);
	samples_cleanup(&consv);
	store_close(st);
	return r;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
bench_big(const char *path, uint64_t n, unsigned appenders, unsigned nproofs,
    struct big_result *b)
{
	struct restart_result w[WARM_RESTARTS];
	double tot[WARM_RESTARTS];
	struct audit *a = NULL;
	unsigned i;
	int r;

	memset(b, 0, sizeof(*b));
	b->leaves = n;
	progress("big log: appending %" PRIu64 " leaves with %u appenders "
		 "(durable)",
	    n, appenders);
	if ((r = audit_open(path, &a)) != 0)
		return fail("audit_open", r);
	r = appenders_run(a, appenders, 0, n, &b->build);
	audit_close(a); /* the last close checkpoints the WAL */
	if (r != 0)
		return r;
	progress("big log: %" PRIu64 " leaves in %.1f s; measuring restart "
		 "and proofs",
	    b->build.n, b->build.secs);
	if ((r = db_size(path, &b->bytes)) != 0)
		return r;

	memset(w, 0, sizeof(w));
	for (i = 0; i < WARM_RESTARTS; i++) {
		if ((r = cache_drop(path, 0, &w[i].resident)) != 0 ||
		    (r = restart_once(path, n, &w[i])) != 0)
			return r;
		tot[i] = w[i].total;
	}
	/* the median run, by total */
	qsort(tot, WARM_RESTARTS, sizeof(tot[0]), cmp_double);
	for (i = 0; i < WARM_RESTARTS; i++)
		if (w[i].total == tot[WARM_RESTARTS / 2])
			b->warm = w[i];
	if ((r = cache_drop(path, 1, &b->cold.resident)) != 0 ||
	    (r = restart_once(path, n, &b->cold)) != 0)
		return r;
	/* store_leaf_count's query in two halves, warm: a rowid lookup and
	 * the count(*) that visits every leaf's row */
	if ((r = time_query(path, "SELECT count(*) FROM audit_leaves",
		 &b->count_scan_ms)) != 0 ||
	    (r = time_query(path,
		 "SELECT ifnull(max(seq) + 1, 0) FROM "
		 "audit_leaves",
		 &b->max_seq_ms)) != 0)
		return r;
	return big_proofs(path, n, nproofs, b);
}

/* ---- the machine ----------------------------------------------------------
 */

void
machine_get(const char *dir, struct machine *m)
{
	static const struct {
		long type;
		const char *name;
	} fst[] = {
	    {0xEF53, "ext4"},
	    {0x58465342, "xfs"},
	    {0x9123683E, "btrfs"},
	    {0x01021994, "tmpfs"},
	    {0x2FC12FC1, "zfs"},
	    {0x794C7630, "overlayfs"},
	    {0x6969, "nfs"},
	};
	struct utsname u;
	struct statfs sf;
	char line[256], *p;
	FILE *f;
	size_t i;

	snprintf(m->cpu, sizeof(m->cpu), "unknown");
	if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "model name", 10) == 0 &&
			    (p = strchr(line, ':')) != NULL) {
				p += strspn(p + 1, " \t") + 1;
				p[strcspn(p, "\n")] = '\0';
				snprintf(m->cpu, sizeof(m->cpu), "%s", p);
				break;
			}
		(void)fclose(f);
	}
	m->cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s %s %s", u.sysname,
		    u.release, u.machine);
	else
		snprintf(m->kernel, sizeof(m->kernel), "unknown");
	snprintf(m->fs, sizeof(m->fs), "unknown");
	if (statfs(dir, &sf) == 0) {
		snprintf(m->fs, sizeof(m->fs), "0x%lx", (long)sf.f_type);
		for (i = 0; i < sizeof(fst) / sizeof(fst[0]); i++)
			if ((long)sf.f_type == fst[i].type)
				snprintf(
				    m->fs, sizeof(m->fs), "%s", fst[i].name);
	}
}

/* ---- audit: options, report ----------------------------------------------
 */

struct audit_opts {
	const char *dir;
	double seconds;
	unsigned levels[MAX_LEVELS];
	size_t nlevels;
	uint64_t leaves;
	unsigned build_appenders;
	unsigned proofs;
	int skip_big, json, keep;
};

struct audit_report {
	struct machine mach;
	char workdir[PATH_MAX];
	struct rate_result fs_over, fs_append, sqlite1;
	struct append_result lv[MAX_LEVELS];
	struct big_result big;
};

static const char audit_help[] =
    "usage: custody-bench audit [options]\n"
    "\n"
    "Durable audit log appends (audit_append: WAL, synchronous=FULL, group\n"
    "commit) at each number of concurrent appenders, next to two baselines\n"
    "measured on the same filesystem: write+fdatasync of 200 bytes, and a\n"
    "plain SQLite connection committing one row per transaction. Then a log\n"
    "of --leaves leaves is built through audit_append and its restart,\n"
    "root, inclusion and consistency proof times are measured; every proof\n"
    "is verified. Prints numbers; exits non-zero on any error.\n"
    "\n"
    "Options:\n"
    "  --dir DIR             make the work directory in DIR [/var/tmp]\n"
    "  --keep                keep the work directory (default: remove it)\n"
    "  --seconds S           seconds per baseline and per level [5]\n"
    "  --appenders LIST      concurrent appenders, comma-separated [1,16,64]\n"
    "  --leaves N            leaves of the big log [1000000]\n"
    "  --build-appenders N   appenders that build the big log [64]\n"
    "  --proofs N            inclusion proofs (and N/10 consistency proofs)\n"
    "                        on the big log [10000]\n"
    "  --skip-big            do not build the big log\n"
    "  --json                print the results as one JSON object\n"
    "  --help                this text\n";

int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *vp)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*vp = v;
	return 0;
}

int
parse_u64_list(
    const char *s, uint64_t max, unsigned *out, size_t cap, size_t *np)
{
	char buf[256], *tok, *save = NULL;
	uint64_t v;
	size_t n = 0;

	if (strlen(s) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == cap || parse_u64(tok, 1, max, &v) != 0)
			return -1;
		out[n++] = (unsigned)v;
	}
	if (n == 0)
		return -1;
	*np = n;
	return 0;
}

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s audit: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s audit --help'.\n", progname);
	return EXIT_USAGE;
}

static int
audit_parse(int argc, char **argv, struct audit_opts *o)
{
	enum {
		O_DIR = 256,
		O_KEEP,
		O_SECONDS,
		O_APPENDERS,
		O_LEAVES,
		O_BUILD,
		O_PROOFS,
		O_SKIP_BIG,
		O_JSON,
		O_HELP
	};
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, O_DIR},
	    {"keep", no_argument, NULL, O_KEEP},
	    {"seconds", required_argument, NULL, O_SECONDS},
	    {"appenders", required_argument, NULL, O_APPENDERS},
	    {"leaves", required_argument, NULL, O_LEAVES},
	    {"build-appenders", required_argument, NULL, O_BUILD},
	    {"proofs", required_argument, NULL, O_PROOFS},
	    {"skip-big", no_argument, NULL, O_SKIP_BIG},
	    {"json", no_argument, NULL, O_JSON},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	char *end;
	int ch;

	memset(o, 0, sizeof(*o));
	o->dir = "/var/tmp";
	o->seconds = 5;
	o->levels[0] = 1;
	o->levels[1] = 16;
	o->levels[2] = 64;
	o->nlevels = 3;
	o->leaves = 1000000;
	o->build_appenders = 64;
	o->proofs = 10000;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case O_DIR:
			o->dir = optarg;
			break;
		case O_KEEP:
			o->keep = 1;
			break;
		case O_SECONDS:
			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !(o->seconds >= 0.1 && o->seconds <= 3600))
				return usage_error("--seconds: a number of "
						   "seconds from 0.1 to 3600");
			break;
		case O_APPENDERS:
			if (parse_u64_list(optarg, MAX_APPENDERS, o->levels,
				MAX_LEVELS, &o->nlevels) != 0)
				return usage_error("--appenders: up to %d "
						   "numbers from 1 to %d, "
						   "comma-separated",
				    MAX_LEVELS, MAX_APPENDERS);
			break;
		case O_LEAVES:
			if (parse_u64(optarg, 2, 1000000000, &o->leaves) != 0)
				return usage_error(
				    "--leaves: a number from 2 to 1000000000");
			break;
		case O_BUILD:
			if (parse_u64(optarg, 1, MAX_APPENDERS, &v) != 0)
				return usage_error("--build-appenders: a "
						   "number from 1 to %d",
				    MAX_APPENDERS);
			o->build_appenders = (unsigned)v;
			break;
		case O_PROOFS:
			if (parse_u64(optarg, 1, 10000000, &v) != 0)
				return usage_error(
				    "--proofs: a number from 1 to 10000000");
			o->proofs = (unsigned)v;
			break;
		case O_SKIP_BIG:
			o->skip_big = 1;
			break;
		case O_JSON:
			o->json = 1;
			break;
		case O_HELP:
			fputs(audit_help, stdout);
			return -1;
		default:
			fputs(audit_help, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return 0;
}

double
ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

json_t *
dist_json(const struct dist *d)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:f}", "n", (json_int_t)d->n,
	    "mean_us", d->mean, "p50_us", d->p50, "p99_us", d->p99, "max_us",
	    d->max);
}

static json_t *
rate_json(const struct rate_result *r)
{
	return json_pack("{s:I, s:f, s:f, s:o}", "n", (json_int_t)r->n,
	    "seconds", r->secs, "per_second", r->rate, "latency",
	    dist_json(&r->lat));
}

static json_t *
append_json(const struct append_result *a, const struct audit_report *rep)
{
	return json_pack("{s:i, s:I, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:f,"
			 " s:o}",
	    "appenders", (int)a->appenders, "appends", (json_int_t)a->n,
	    "seconds", a->secs, "per_second", a->rate, "commits",
	    (json_int_t)a->commits, "leaves_per_commit", a->batch,
	    "cpu_us_per_append", a->cpu_us, "context_switches_per_append",
	    a->csw, "x_sqlite_one_row_commits",
	    ratio(a->rate, rep->sqlite1.rate), "commits_x_fdatasync",
	    ratio((double)a->commits / a->secs, rep->fs_over.rate), "latency",
	    dist_json(&a->lat));
}

static json_t *
restart_json(const struct restart_result *r)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f}", "store_open_ms",
	    r->store_open, "audit_open_ms", r->audit_open, "leaf_count_ms",
	    r->leaf_count, "total_ms", r->total, "resident_fraction",
	    r->resident);
}

static int
report_json(const struct audit_opts *o, const struct audit_report *rep)
{
	json_t *root = NULL, *lv = NULL, *big = NULL, *levels = NULL;
	size_t i;
	int r = CUSTODY_E_NOMEM;

	if ((lv = json_array()) == NULL || (levels = json_array()) == NULL)
		goto out;
	for (i = 0; i < o->nlevels; i++)
		if (json_array_append_new(
			levels, json_integer((json_int_t)o->levels[i])) != 0)
			goto out;
	for (i = 0; i < o->nlevels; i++)
		if (json_array_append_new(lv, append_json(&rep->lv[i], rep)) !=
		    0)
			goto out;
	if (o->skip_big)
		big = json_null();
	else
		big = json_pack("{s:I, s:o, s:I, s:f, s:o, s:o, s:f, s:f, s:f,"
				" s:o, s:o, s:o, s:i, s:o, s:o, s:i}",
		    "leaves", (json_int_t)rep->big.leaves, "build",
		    append_json(&rep->big.build, rep), "db_bytes",
		    (json_int_t)rep->big.bytes, "db_bytes_per_leaf",
		    (double)rep->big.bytes / (double)rep->big.leaves,
		    "restart_warm", restart_json(&rep->big.warm),
		    "restart_cold", restart_json(&rep->big.cold),
		    "count_scan_ms", rep->big.count_scan_ms, "max_seq_ms",
		    rep->big.max_seq_ms, "root_first_us",
		    rep->big.root_first_us, "root", dist_json(&rep->big.root),
		    "inclusion_proof", dist_json(&rep->big.incl),
		    "inclusion_verify", dist_json(&rep->big.incl_verify),
		    "inclusion_proof_len_max", (int)rep->big.incl_len_max,
		    "consistency_proof", dist_json(&rep->big.cons),
		    "consistency_verify", dist_json(&rep->big.cons_verify),
		    "consistency_proof_len_max", (int)rep->big.cons_len_max);
	root = json_pack("{s:s, s:s, s:{s:s, s:i, s:s, s:s, s:s},"
			 " s:{s:f, s:o, s:I, s:i, s:i},"
			 " s:{s:o, s:o, s:o}, s:o, s:o}",
	    "custody", CUSTODY_VERSION, "sqlite", sqlite3_libversion(),
	    "machine", "cpu", rep->mach.cpu, "cores", (int)rep->mach.cores,
	    "kernel", rep->mach.kernel, "filesystem", rep->mach.fs, "dir",
	    rep->workdir, "params", "seconds", o->seconds, "appenders", levels,
	    "leaves", (json_int_t)o->leaves, "build_appenders",
	    (int)o->build_appenders, "proofs", (int)o->proofs, "baselines",
	    "fdatasync_overwrite", rate_json(&rep->fs_over), "fdatasync_append",
	    rate_json(&rep->fs_append), "sqlite_one_row_commit",
	    rate_json(&rep->sqlite1), "appends", lv, "big", big);
	lv = big = levels = NULL; /* stolen by json_pack, even on failure */
	if (root == NULL)
		goto out;
	if (json_dumpf(root, stdout, JSON_INDENT(2)) != 0 ||
	    fputc('\n', stdout) == EOF)
		r = CUSTODY_E_IO;
	else
		r = 0;
out:
	json_decref(lv);
	json_decref(big);
	json_decref(levels);
	json_decref(root);
	if (r != 0)
		errorx("printing the JSON report: %s", custody_strerror(r));
	return r;
}

static void
print_restart(const char *name, const struct restart_result *r)
{
	printf("  restart, %-26s %8.1f ms  (store_open %.1f, audit_open %.1f, "
	       "store_leaf_count %.1f)\n",
	    name, r->total, r->store_open, r->audit_open, r->leaf_count);
}

static void
print_dist_line(const char *name, const struct dist *d)
{
	printf("  %-36s mean %8.1f us  p50 %8.1f  p99 %8.1f  max %8.1f  "
	       "(n=%zu)\n",
	    name, d->mean, d->p50, d->p99, d->max, d->n);
}

static void
report_text(const struct audit_opts *o, const struct audit_report *rep)
{
	const struct append_result *a;
	const struct big_result *b = &rep->big;
	char cold[64];
	size_t i;

	printf("custody-bench audit: custody %s, SQLite %s\n", CUSTODY_VERSION,
	    sqlite3_libversion());
	printf("machine: %s, %ld cores, %s\n", rep->mach.cpu, rep->mach.cores,
	    rep->mach.kernel);
	printf("work directory: %s (%s)\n\n", rep->workdir, rep->mach.fs);

	printf("Baselines, same filesystem, %.1f s each:\n", o->seconds);
	printf("  %-36s %9.0f/s  p50 %7.0f us  p99 %7.0f us\n",
	    "write 200 B + fdatasync (overwrite)", rep->fs_over.rate,
	    rep->fs_over.lat.p50, rep->fs_over.lat.p99);
	printf("  %-36s %9.0f/s  p50 %7.0f us  p99 %7.0f us\n",
	    "write 200 B + fdatasync (append)", rep->fs_append.rate,
	    rep->fs_append.lat.p50, rep->fs_append.lat.p99);
	printf("  %-36s %9.0f/s  p50 %7.0f us  p99 %7.0f us\n\n",
	    "SQLite one row per commit, 1 thread", rep->sqlite1.rate,
	    rep->sqlite1.lat.p50, rep->sqlite1.lat.p99);

	printf("Durable appends (audit_append; WAL, synchronous=FULL), "
	       "%.1f s each:\n",
	    o->seconds);
	printf("  %9s %10s %10s %8s %9s %9s %8s %8s\n", "appenders",
	    "appends/s", "commits/s", "leaves/", "p50 us", "p99 us", "CPU us/",
	    "ctx sw/");
	printf("  %9s %10s %10s %8s %9s %9s %8s %8s\n", "", "", "", "commit",
	    "", "", "append", "append");
	for (i = 0; i < o->nlevels; i++) {
		a = &rep->lv[i];
		printf("  %9u %10.0f %10.0f %8.1f %9.0f %9.0f %8.0f %8.1f\n",
		    a->appenders, a->rate, (double)a->commits / a->secs,
		    a->batch, a->lat.p50, a->lat.p99, a->cpu_us, a->csw);
	}
	printf("\n");
	for (i = 0; i < o->nlevels; i++) {
		a = &rep->lv[i];
		printf("  appends/s %u appender%s: %.0f (= %.1f x one-row "
		       "commits; %.0f commits/s = %.2f x fdatasyncs/s, "
		       "x %.1f leaves per commit)\n",
		    a->appenders, a->appenders == 1 ? "" : "s", a->rate,
		    ratio(a->rate, rep->sqlite1.rate),
		    (double)a->commits / a->secs,
		    ratio((double)a->commits / a->secs, rep->fs_over.rate),
		    a->batch);
	}
	if (o->skip_big)
		return;
	printf("\nA log of %" PRIu64 " leaves:\n", b->leaves);
	printf("  built with %u appenders in %.1f s: %.0f appends/s, %.1f "
	       "leaves per commit, CPU %.0f us/append\n",
	    b->build.appenders, b->build.secs, b->build.rate, b->build.batch,
	    b->build.cpu_us);
	printf("  database: %.1f MiB (%.0f bytes per leaf)\n",
	    (double)b->bytes / 1048576.0, (double)b->bytes / (double)b->leaves);
	snprintf(cold, sizeof(cold),
	    "warm (%.0f%% resident):", b->warm.resident * 100);
	print_restart(cold, &b->warm);
	snprintf(cold, sizeof(cold),
	    "cold (%.1f%% resident):", b->cold.resident * 100);
	print_restart(cold, &b->cold);
	printf("  its leaf count's query alone, warm: SELECT count(*) %.1f ms; "
	       "max(seq) alone %.3f ms\n",
	    b->count_scan_ms, b->max_seq_ms);
	printf("  merkle_root(%" PRIu64 "): first %.1f us\n", b->leaves,
	    b->root_first_us);
	print_dist_line("merkle_root, repeated", &b->root);
	print_dist_line("merkle_inclusion_proof", &b->incl);
	print_dist_line(
	    "merkle_verify_inclusion (all passed)", &b->incl_verify);
	print_dist_line("merkle_consistency_proof", &b->cons);
	print_dist_line(
	    "merkle_verify_consistency (all passed)", &b->cons_verify);
	printf("  proof lengths: inclusion <= %zu, consistency <= %zu "
	       "hashes\n",
	    b->incl_len_max, b->cons_len_max);
}

/* ---- audit: the subcommand -----------------------------------------------
 */

static int
cmd_audit(int argc, char **argv)
{
	struct audit_opts o;
	struct audit_report *rep = NULL;
	struct audit *a = NULL;
	char *p = NULL, name[64];
	size_t i;
	int r, made = 0, ex = EXIT_FAILURE;

	if ((r = audit_parse(argc, argv, &o)) != 0)
		return r < 0 ? 0 : r;
	if ((rep = calloc(1, sizeof(*rep))) == NULL) {
		errorx("out of memory");
		return EXIT_FAILURE;
	}
	if ((size_t)snprintf(rep->workdir, sizeof(rep->workdir),
		"%s/custody-bench.XXXXXX", o.dir) >= sizeof(rep->workdir)) {
		errorx("--dir: path too long");
		goto out;
	}
	if (mkdtemp(rep->workdir) == NULL) {
		errorx("mkdtemp %s: %s", rep->workdir, strerror(errno));
		goto out;
	}
	made = 1;
	machine_get(rep->workdir, &rep->mach);
	progress("work directory %s (%s)", rep->workdir, rep->mach.fs);

	progress("baseline: write + fdatasync, overwrite, %.1f s", o.seconds);
	if ((p = path_join(rep->workdir, "fdatasync.dat")) == NULL ||
	    bench_fdatasync(p, 0, o.seconds, &rep->fs_over) != 0)
		goto out;
	progress("baseline: write + fdatasync, append, %.1f s", o.seconds);
	if (bench_fdatasync(p, 1, o.seconds, &rep->fs_append) != 0)
		goto out;
	free(p);
	progress("baseline: SQLite one row per commit, %.1f s", o.seconds);
	if ((p = path_join(rep->workdir, "naive.db")) == NULL ||
	    bench_sqlite(p, o.seconds, &rep->sqlite1) != 0)
		goto out;
	free(p);
	p = NULL;

	for (i = 0; i < o.nlevels; i++) {
		progress(
		    "appends: %u appenders, %.1f s", o.levels[i], o.seconds);
		snprintf(name, sizeof(name), "appends-%u.db", o.levels[i]);
		if ((p = path_join(rep->workdir, name)) == NULL)
			goto out;
		/* a fresh log for each level, so they compare */
		if (db_remove(p) != 0)
			goto out;
		if ((r = audit_open(p, &a)) != 0) {
			(void)fail("audit_open", r);
			goto out;
		}
		r = appenders_run(a, o.levels[i], o.seconds, 0, &rep->lv[i]);
		audit_close(a);
		a = NULL;
		if (r != 0)
			goto out;
		if (!o.keep && db_remove(p) != 0)
			goto out;
		free(p);
		p = NULL;
	}

	if (!o.skip_big) {
		if ((p = path_join(rep->workdir, "big.db")) == NULL ||
		    bench_big(p, o.leaves, o.build_appenders, o.proofs,
			&rep->big) != 0)
			goto out;
		if (!o.keep && db_remove(p) != 0)
			goto out;
		free(p);
		p = NULL;
	}

	if (o.json) {
		if (report_json(&o, rep) != 0)
			goto out;
	} else
		report_text(&o, rep);
	if (fflush(stdout) == EOF) {
		errorx("writing the report: %s", strerror(errno));
		goto out;
	}
	ex = 0;
out:
	free(p);
	if (made && o.keep)
		progress("kept %s", rep->workdir);
	else if (made) {
		/* only what this run made: every file is removed above, or
		 * here if a step failed half-way */
		(void)unlink_in(rep->workdir, "fdatasync.dat", 0);
		(void)unlink_in(rep->workdir, "naive.db", 1);
		(void)unlink_in(rep->workdir, "big.db", 1);
		for (i = 0; i < o.nlevels; i++) {
			snprintf(
			    name, sizeof(name), "appends-%u.db", o.levels[i]);
			(void)unlink_in(rep->workdir, name, 1);
		}
		if (rmdir(rep->workdir) == -1) {
			errorx("rmdir %s: %s", rep->workdir, strerror(errno));
			ex = EXIT_FAILURE;
		}
	}
	free(rep);
	return ex;
}

/* ---- policy: evaluation time by policy size ------------------------------
 */

#define POLICY_SIZES_MAX 8

struct policy_opts {
	size_t sizes[POLICY_SIZES_MAX];
	size_t nsizes;
	unsigned requests; /* evaluations per size */
	int json;
};

struct policy_result {
	size_t rules;
	size_t bytes;
	double load_ms;
	struct dist allow, deny; /* policy_eval, per call */
	struct dist scan;	 /* fnmatch over every rule's principal */
	unsigned allowed, denied;
};

/*
 * A policy of n rules as a large deployment might have: one rule per broker
 * (literal principals) and one per team (globs), each for its own agents,
 * JWTs with an audience, a TTL and a claim; and one deny rule.
 */
static char *
policy_make(size_t n, size_t *lenp)
{
	size_t cap = 256 + n * 420, len = 0, i;
	char *b = malloc(cap);
	int w;

	if (b == NULL)
		return NULL;
	len += (size_t)snprintf(b, cap,
	    "{\"version\": 1, \"rules\": [\n"
	    "{\"id\": \"no-act\", \"effect\": \"deny\", \"principals\": "
	    "[\"spiffe://example.org/**\"], \"actions\": "
	    "[\"credential.jwt\"], \"conditions\": {\"act\": true}}");
	for (i = 0; i < n - 1; i++) {
		if (i % 2 == 0)
			w = snprintf(b + len, cap - len,
			    ",\n{\"id\": \"broker-%zu\", \"effect\": "
			    "\"allow\", "
			    "\"principals\": [\"spiffe://example.org/broker/"
			    "b%zu\"], \"actions\": [\"credential.jwt\"], "
			    "\"keys\": {\"agent\": [\"spiffe://example.org/"
			    "agent/b%zu/*\"], \"purpose\": [\"jwt\"]}, "
			    "\"conditions\": {\"max_ttl\": \"5m\", "
			    "\"audiences\": "
			    "[\"https://api.example.org\"], \"claims\": "
			    "[\"scope\"]}}",
			    i, i, i);
		else
			w = snprintf(b + len, cap - len,
			    ",\n{\"id\": \"team-%zu\", \"effect\": \"allow\", "
			    "\"principals\": [\"spiffe://example.org/team%zu/"
			    "*\"], \"actions\": [\"credential.jwt\"], "
			    "\"keys\": "
			    "{\"agent\": [\"spiffe://example.org/agent/team%zu/"
			    "**\"]}, \"conditions\": {\"max_ttl\": \"15m\", "
			    "\"audiences\": [\"https://*.example.org\"]}}",
			    i, i, i);
		if (w < 0 || (size_t)w >= cap - len) {
			free(b);
			return NULL;
		}
		len += (size_t)w;
	}
	len += (size_t)snprintf(b + len, cap - len, "\n]}\n");
	*lenp = len;
	return b;
}

/* What a linear scan costs: every rule's principal pattern, fnmatch(3)
 * (FNM_PATHNAME: '*' stops at '/', like the policy's '*'). */
static int
scan_all(char **pats, size_t n, const char *principal)
{
	size_t i;
	int hits = 0;

	for (i = 0; i < n; i++)
		hits += fnmatch(pats[i], principal, FNM_PATHNAME) == 0;
	return hits;
}

static int
policy_one(size_t n, unsigned requests, struct policy_result *res)
{
	struct samples allow = {NULL, 0, 0}, deny = {NULL, 0, 0},
		       scan = {NULL, 0, 0};
	struct policy *p = NULL;
	struct policy_decision d;
	struct policy_request q;
	struct policy_key k;
	const char *aud[] = {"https://api.example.org"}, *cl[] = {"scope"};
	char principal[96], agent[96], err[512], **pats = NULL;
	char *text = NULL;
	uint64_t rng = BENCH_SEED, t;
	size_t len = 0, i, j, nb;
	unsigned u, scan_every;
	int r = CUSTODY_E_NOMEM, hits = 0;

	memset(res, 0, sizeof(*res));
	res->rules = n;
	if ((text = policy_make(n, &len)) == NULL) {
		errorx("out of memory");
		goto out;
	}
	res->bytes = len;
	t = now_ns();
	if ((r = policy_parse("bench.json", (const uint8_t *)text, len, &p, err,
		 sizeof(err))) != 0) {
		errorx("%s", err);
		goto out;
	}
	res->load_ms = (double)(now_ns() - t) / 1e6;
	if (policy_nrules(p) != n) {
		errorx("%zu rules loaded, %zu made", policy_nrules(p), n);
		r = CUSTODY_E_INTERNAL;
		goto out;
	}
	if ((pats = calloc(n, sizeof(*pats))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++)
		if (asprintf(&pats[i],
			i % 2 ? "spiffe://example.org/team%zu/*"
			      : "spiffe://example.org/broker/b%zu",
			i) < 0) {
			pats[i] = NULL;
			goto nomem;
		}
	nb = n > 1 ? n - 1 : 1;
	scan_every = requests / 1000 > 1 ? requests / 1000 : 1;
	for (u = 0; u < requests; u++) {
		/* a broker or team that has a rule, asking for its own agent
		 * (allowed), or one with no rule at all (refused) */
		i = (size_t)(rng_next(&rng) % nb);
		if (i % 2 == 0) {
			snprintf(principal, sizeof(principal),
			    "spiffe://example.org/broker/b%zu", i);
			snprintf(agent, sizeof(agent),
			    "spiffe://example.org/agent/b%zu/planner", i);
		} else {
			snprintf(principal, sizeof(principal),
			    "spiffe://example.org/team%zu/broker-1", i);
			snprintf(agent, sizeof(agent),
			    "spiffe://example.org/agent/team%zu/a/b", i);
		}
		if (u % 2)
			snprintf(principal, sizeof(principal),
			    "spiffe://example.org/stranger/s%zu", i);
		k = (struct policy_key){agent, "team", "jwt", "ecdsa-p256",
		    NULL, 1795000000, 0, NULL};
		q = (struct policy_request){principal, POLICY_CREDENTIAL_JWT,
		    &k, 1795000000000LL + u, 600, aud, 1, NULL, cl, i % 2 == 0,
		    0, NULL, NULL};
		t = now_ns();
		policy_eval(p, &q, &d);
		t = now_ns() - t;
		/* correct first: the index must find what a scan finds */
		if (d.allow != !(u % 2)) {
			errorx("%s: %s by %s (%s)", principal,
			    d.allow ? "allowed" : "refused", d.rule, d.reason);
			r = CUSTODY_E_INTERNAL;
			goto out;
		}
		if ((r = samples_add(d.allow ? &allow : &deny, t)) != 0)
			goto nomem;
		d.allow ? res->allowed++ : res->denied++;
		if (u % scan_every == 0) { /* slow: 1,000 samples do */
			t = now_ns();
			hits += scan_all(pats, n, principal);
			if ((r = samples_add(&scan, now_ns() - t)) != 0)
				goto nomem;
		}
	}
	(void)hits;
	res->allow = samples_dist(&allow);
	res->deny = samples_dist(&deny);
	res->scan = samples_dist(&scan);
	r = 0;
	goto out;
nomem:
	errorx("out of memory");
	r = CUSTODY_E_NOMEM;
out:
	if (pats != NULL)
		for (j = 0; j < n; j++)
			free(pats[j]);
	free(pats);
	free(allow.v);
	free(deny.v);
	free(scan.v);
	free(text);
	policy_free(p);
	return r;
}

static const char policy_help[] =
    "usage: custody-bench policy [--sizes N,N,...] [--requests N] [--json]\n"
    "\n"
    "Load policies of N rules (default 10,1000,100000) and time policy_eval()\n"
    "on JWT requests, half allowed and half refused, next to a linear scan of\n"
    "every rule's principal pattern with fnmatch(3) in the same run. Checks\n"
    "that every decision is the one expected.\n";

static int
policy_opts_parse(int argc, char **argv, struct policy_opts *o)
{
	static const struct option opts[] = {
	    {"sizes", required_argument, NULL, 's'},
	    {"requests", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *s, *tok, *save = NULL, *end;
	unsigned long v;
	int ch;

	memset(o, 0, sizeof(*o));
	o->sizes[0] = 10;
	o->sizes[1] = 1000;
	o->sizes[2] = 100000;
	o->nsizes = 3;
	o->requests = 200000;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			o->nsizes = 0;
			s = optarg;
			while ((tok = strtok_r(s, ",", &save)) != NULL) {
				s = NULL;
				errno = 0;
				v = strtoul(tok, &end, 10);
				if (errno || *end || v < 2 || v > 1000000 ||
				    o->nsizes == POLICY_SIZES_MAX) {
					errorx("--sizes: up to %d numbers "
					       "from 2 to 1000000",
					    POLICY_SIZES_MAX);
					return EXIT_USAGE;
				}
				o->sizes[o->nsizes++] = v;
			}
			if (o->nsizes == 0) {
				errorx("--sizes: no size");
				return EXIT_USAGE;
			}
			break;
		case 'n':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 100 || v > 100000000) {
				errorx("--requests: from 100 to 100000000");
				return EXIT_USAGE;
			}
			o->requests = (unsigned)v;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			fputs(policy_help, stdout);
			return -1;
		default:
			fputs(policy_help, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(policy_help, stderr);
		return EXIT_USAGE;
	}
	return 0;
}

static int
cmd_policy(int argc, char **argv)
{
	struct policy_opts o;
	struct policy_result res[POLICY_SIZES_MAX];
	json_t *arr = NULL;
	size_t i;
	int r;

	if ((r = policy_opts_parse(argc, argv, &o)) != 0)
		return r < 0 ? 0 : r;
	for (i = 0; i < o.nsizes; i++) {
		progress("policy of %zu rules: %u evaluations", o.sizes[i],
		    o.requests);
		if (policy_one(o.sizes[i], o.requests, &res[i]) != 0)
			return EXIT_FAILURE;
	}
	if (o.json) {
		arr = json_array();
		for (i = 0; i < o.nsizes; i++)
			json_array_append_new(
			    arr, json_pack("{s:I, s:I, s:f, s:o, s:o, s:o}",
				     "rules", (json_int_t)res[i].rules, "bytes",
				     (json_int_t)res[i].bytes, "load_ms",
				     res[i].load_ms, "allowed",
				     dist_json(&res[i].allow), "refused",
				     dist_json(&res[i].deny), "linear_scan",
				     dist_json(&res[i].scan)));
		r = json_dumpf(json_pack("{s:s, s:o}", "custody",
				   CUSTODY_VERSION, "policy", arr),
		    stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		return r == 0 ? 0 : EXIT_FAILURE;
	}
	printf("custody-bench policy: custody %s, %u evaluations per size "
	       "(half allowed, half refused)\n\n",
	    CUSTODY_VERSION, o.requests);
	printf("  %8s %9s %9s | %-23s | %-23s | %-20s\n", "rules", "file",
	    "load", "policy_eval, allowed", "policy_eval, refused",
	    "linear scan (fnmatch)");
	printf("  %8s %9s %9s | %11s %11s | %11s %11s | %9s %10s\n", "", "KiB",
	    "ms", "p50 us", "p99 us", "p50 us", "p99 us", "p50 us", "p99 us");
	for (i = 0; i < o.nsizes; i++)
		printf("  %8zu %9.0f %9.1f | %11.2f %11.2f | %11.2f %11.2f | "
		       "%9.1f %10.1f\n",
		    res[i].rules, (double)res[i].bytes / 1024.0, res[i].load_ms,
		    res[i].allow.p50, res[i].allow.p99, res[i].deny.p50,
		    res[i].deny.p99, res[i].scan.p50, res[i].scan.p99);
	return 0;
}

/* ---- main -----------------------------------------------------------------
 */

struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"audit", "durable audit log appends, restart and proofs", cmd_audit},
    {"policy", "policy evaluation time by policy size", cmd_policy},
    {"jwt", "JWT issuance over the Unix socket, next to raw C_Sign", cmd_jwt},
    {"x509", "X.509 issuance over the Unix socket, next to raw C_Sign",
	cmd_x509},
};

static void
main_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: custody-bench [-v] COMMAND [options]\n"
		   "\n"
		   "The benchmark program of custody: it measures and prints, "
		   "and asserts\nnothing about time.\n\nCommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(
		    f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  -v          more library diagnostics\n"
		   "  --version   print the version\n"
		   "  --help      this text; 'custody-bench COMMAND --help' "
		   "for a command\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	size_t i;
	int ch;

	umask(077);
	while ((ch = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'v':
			verbose++;
			break;
		case 'h':
			main_usage(stdout);
			return 0;
		case 'V':
			printf("custody-bench %s\n", CUSTODY_VERSION);
			return 0;
		default:
			main_usage(stderr);
			return EXIT_USAGE;
		}
	}
	custody_log_set(log_stderr, verbose ? LOG_DEBUG : LOG_WARNING, NULL);
	if (optind >= argc) {
		main_usage(stderr);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* the command parses its own options from argv[1] */
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			return commands[i].run(argc, argv);
	fprintf(stderr, "%s: unknown command '%s'\n", progname, argv[0]);
	main_usage(stderr);
	return EXIT_USAGE;
}
