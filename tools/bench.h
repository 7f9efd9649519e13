/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_BENCH_H
#define CUSTODY_BENCH_H

/*
 * What the modes of custody-bench share (tools/bench.c defines it): messages
 * on stderr, clocks, latency samples and their percentiles, the machine
 * description and the JSON of a distribution. Nothing here asserts anything
 * about time.
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define EXIT_USAGE 2

/* "custody-bench: error: " + the message, on stderr. */
void errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a custody error as "what: its description"; returns r. */
int fail(const char *what, int r);

/* "custody-bench: " + the message, on stderr. */
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CLOCK_MONOTONIC in nanoseconds, and seconds since t0 of that clock. */
uint64_t now_ns(void);
double secs_since(uint64_t t0);

void sleep_ms(unsigned ms);

/* This process's CPU seconds (all threads) and context switches. */
struct usage {
	double cpu;
	uint64_t csw;
};

int usage_get(struct usage *u);

/* Latencies in nanoseconds; zero-initialise, then add. */
struct samples {
	uint64_t *v; /* nanoseconds */
	size_t n, cap;
};

/* 0 or CUSTODY_E_NOMEM. */
int samples_add(struct samples *s, uint64_t ns);
int samples_merge(struct samples *dst, const struct samples *src);
void samples_cleanup(struct samples *s);

/* A distribution, in microseconds (nearest-rank percentiles). */
struct dist {
	size_t n;
	double mean, p50, p99, max;
};

/* Sorts s; all zero when s is empty. */
struct dist samples_dist(struct samples *s);

/* {n, mean_us, p50_us, p99_us, max_us}; NULL when out of memory. */
json_t *dist_json(const struct dist *d);

/* dir/name, or NULL when out of memory (reported). free(3) it. */
char *path_join(const char *dir, const char *name);

/* The CPU model, cores online, kernel, and the file system of dir. */
struct machine {
	char cpu[256];
	long cores;
	char kernel[256];
	char fs[32];
};

void machine_get(const char *dir, struct machine *m);

/* A decimal number in [min, max]; 0, or -1 for anything else. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *vp);
/* A comma-separated list of 1..cap numbers from 1 to max into out[]; 0, or
 * -1 for anything else (nothing is written to *np then). */
int parse_u64_list(
    const char *s, uint64_t max, unsigned *out, size_t cap, size_t *np);

/* a / b, or 0 when b is not positive. */
double ratio(double a, double b);

/* custody-bench jwt (tools/bench_jwt.c). */
int cmd_jwt(int argc, char **argv);
/* custody-bench x509: the same for X.509 certificates. */
int cmd_x509(int argc, char **argv);

#endif
