/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of httpc.c against a scripted server thread on a Unix socket in
 * a temporary directory: the server accepts one connection, reads one request
 * per canned reply, records every byte it receives and answers with the
 * reply; then it shuts its side down and records what else arrives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "httpc.h"
#include "testutil.h"

#define TIMEOUT_MS 5000
#define GET_ROOT   "GET / HTTP/1.1\r\nHost: custody\r\n\r\n"

struct server {
	char dir[64];
	char path[96];
	int lfd;
	int fd; /* the accepted connection, or -1 */
	pthread_t th;
	int running;
	const char *const *replies; /* a NULL reply: never answer */
	size_t nreplies;
	int hangup; /* close the connection at once, reading nothing */
	char *got;  /* every byte received, NUL-terminated */
	size_t gotlen, parsed;
};

static int
setup(void **state)
{
	struct server *s = calloc(1, sizeof(*s));
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if (s == NULL ||
	    testutil_mkdtemp("custody-httpc", s->dir, sizeof(s->dir)) != 0)
		return -1;
	s->fd = -1;
	snprintf(s->path, sizeof(s->path), "%s/api.sock", s->dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->path);
	if ((s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(s->lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(s->lfd, 4) != 0)
		return -1;
	*state = s;
	return 0;
}

static void
server_finish(struct server *s)
{
	if (s->running)
		pthread_join(s->th, NULL);
	s->running = 0;
}

static int
teardown(void **state)
{
	struct server *s = *state;
	struct timespec t;

	/*
	 * After a failed assertion the client may still hold its connection
	 * open: wake the server thread rather than wait for it forever.
	 */
	while (s->running) {
		shutdown(s->lfd, SHUT_RDWR);
		if (s->fd >= 0)
			shutdown(s->fd, SHUT_RDWR);
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 100000000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		if (pthread_timedjoin_np(s->th, NULL, &t) == 0)
			s->running = 0;
	}
	close(s->lfd);
	testutil_rmtree(s->dir);
	free(s->got);
	free(s);
	return 0;
}

static int
server_recv(struct server *s, int fd)
{
	char tmp[4096], *p;
	ssize_t n;

	if ((n = read(fd, tmp, sizeof(tmp))) <= 0)
		return -1;
	if ((p = realloc(s->got, s->gotlen + (size_t)n + 1)) == NULL)
		return -1;
	s->got = p;
	memcpy(s->got + s->gotlen, tmp, (size_t)n);
	s->gotlen += (size_t)n;
	s->got[s->gotlen] = '\0';
	return 0;
}

/* Read one request: its head, and as many bytes as its Content-Length. */
static int
server_read_request(struct server *s, int fd)
{
	const char *req, *end, *cl;
	size_t need;

	for (;;) {
		req = s->got == NULL ? "" : s->got + s->parsed;
		if ((end = strstr(req, "\r\n\r\n")) != NULL) {
			need = (size_t)(end - req) + 4;
			cl = memmem(req, need, "\r\nContent-Length: ", 18);
			if (cl != NULL)
				need += strtoul(cl + 18, NULL, 10);
			if (s->gotlen - s->parsed >= need) {
				s->parsed += need;
				return 0;
			}
		}
		if (server_recv(s, fd) != 0)
			return -1;
	}
}

static void *
server_main(void *arg)
{
	struct server *s = arg;
	const char *reply;
	size_t i, off, len;
	ssize_t n;
	int fd, silent = 0;

	if ((fd = accept(s->lfd, NULL, NULL)) == -1)
		return NULL;
	s->fd = fd;
	for (i = 0; !s->hangup && i < s->nreplies; i++) {
		if (server_read_request(s, fd) != 0)
			break;
		if ((reply = s->replies[i]) == NULL) {
			silent = 1;
			break;
		}
		/* MSG_NOSIGNAL: the client may hang up while we write */
		len = strlen(reply);
		for (off = 0; off < len; off += (size_t)n)
			if ((n = send(fd, reply + off, len - off,
				 MSG_NOSIGNAL)) <= 0)
				break;
	}
	if (!s->hangup) {
		if (!silent)
			shutdown(fd, SHUT_WR);
		while (server_recv(s, fd) == 0)
			;
	}
	s->fd = -1;
	close(fd);
	return NULL;
}

static void
server_start(struct server *s, const char *const *replies, size_t n)
{
	server_finish(s);
	free(s->got);
	s->got = NULL;
	s->gotlen = s->parsed = 0;
	s->replies = replies;
	s->nreplies = n;
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
	s->running = 1;
}

static struct httpc *
connect_ok(struct server *s, int timeout_ms)
{
	struct httpc *c = NULL;

	assert_int_equal(httpc_connect_unix(s->path, timeout_ms, &c), 0);
	assert_non_null(c);
	return c;
}

static void
get(struct httpc *c, const char *method, int want, struct httpc_response *resp)
{
	assert_int_equal(
	    httpc_request(c, method, "/", NULL, NULL, NULL, 0, resp), want);
}

static void
check_body(const struct httpc_response *resp, int status, const char *body)
{
	assert_int_equal(resp->status, status);
	assert_non_null(resp->body);
	assert_int_equal(resp->len, strlen(body));
	assert_memory_equal(resp->body, body, strlen(body) + 1);
}

/* The request bytes exactly; the response with its body and headers. */
static void
test_content_length(void **state)
{
	struct server *s = *state;
	const char *replies[] = {"HTTP/1.1 200 OK\r\n"
				 "content-TYPE: \t application/json \t\r\n"
				 "content-length: 11\r\n"
				 "CONTENT-LENGTH:11\r\n"
				 "X-Other: a:b\r\n"
				 "\r\n"
				 "{\"sig\":\"x\"}"};
	const char *hdrs[] = {
	    "X-Request-Id: 42", "Accept: application/json", NULL};
	const uint8_t body[] = "{\"a\":1}";
	struct httpc_response resp = {0};
	struct httpc *c;

	server_start(s, replies, 1);
	c = connect_ok(s, TIMEOUT_MS);
	assert_int_equal(httpc_request(c, "POST", "/v1/keys/k1:sign?x=1", hdrs,
			     "application/json", body, sizeof(body) - 1, &resp),
	    0);
	check_body(&resp, 200, "{\"sig\":\"x\"}");
	assert_string_equal(resp.content_type, "application/json");
	assert_int_equal(resp.closing, 0);
	httpc_response_cleanup(&resp);
	assert_null(resp.body);
	assert_null(resp.content_type);
	httpc_response_cleanup(NULL);
	httpc_close(c);
	httpc_close(NULL);
	server_finish(s);
	assert_string_equal(s->got, "POST /v1/keys/k1:sign?x=1 HTTP/1.1\r\n"
				    "Host: custody\r\n"
				    "X-Request-Id: 42\r\n"
				    "Accept: application/json\r\n"
				    "Content-Type: application/json\r\n"
				    "Content-Length: 7\r\n"
				    "\r\n"
				    "{\"a\":1}");
}

/* Two requests on one connection; no body: no Content-Length or -Type. */
static void
test_keep_alive(void **state)
{
	struct server *s = *state;
	const char *replies[] = {
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"};
	struct httpc_response resp = {0};
	struct httpc *c;

	server_start(s, replies, 2);
	c = connect_ok(s, TIMEOUT_MS);
	assert_int_equal(httpc_request(c, "GET", "/v1/health", NULL,
			     "text/plain", NULL, 0, &resp),
	    0);
	check_body(&resp, 200, "ok");
	assert_null(resp.content_type);
	assert_int_equal(resp.closing, 0);
	httpc_response_cleanup(&resp);
	assert_int_equal(httpc_request(c, "DELETE", "/v1/keys/k1", NULL, NULL,
			     (const uint8_t *)"", 0, &resp),
	    0);
	check_body(&resp, 404, "");
	assert_int_equal(resp.closing, 0);
	httpc_response_cleanup(&resp);
	httpc_close(c);
	server_finish(s);
	assert_string_equal(s->got, "GET /v1/health HTTP/1.1\r\n"
				    "Host: custody\r\n"
				    "\r\n"
				    "DELETE /v1/keys/k1 HTTP/1.1\r\n"
				    "Host: custody\r\n"
				    "Content-Length: 0\r\n"
				    "\r\n");
}

/* Chunks with extensions and a trailer; the next response reads cleanly. */
static void
test_chunked(void **state)
{
	struct server *s = *state;
	const char *replies[] = {"HTTP/1.1 200 OK\r\n"
				 "transfer-encoding: Chunked\r\n"
				 "\r\n"
				 "5\r\nhello\r\n"
				 "1;ext=1\r\n \r\n"
				 "0A ; name=\"v\"\r\n0123456789\r\n"
				 "3\nabc\n"
				 "0;last\r\n"
				 "X-Trailer: t\r\n"
				 "X-Digest: sha-256=:x:\r\n"
				 "\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend"};
	struct httpc_response resp = {0};
	struct httpc *c;

	server_start(s, replies, 2);
	c = connect_ok(s, TIMEOUT_MS);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, "hello 0123456789abc");
	assert_int_equal(resp.closing, 0);
	httpc_response_cleanup(&resp);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, "end");
	httpc_response_cleanup(&resp);
	httpc_close(c);
	server_finish(s);
	assert_string_equal(s->got, GET_ROOT GET_ROOT);
}

/* Bodies larger than the internal buffer, both ways. */
static void
test_large_bodies(void **state)
{
	struct server *s = *state;
	enum { N = 1 << 20 };
	char *big, *cl, *chunked, *p;
	const char *replies[2];
	struct httpc_response resp = {0};
	struct httpc *c;
	size_t i;

	assert_non_null(big = malloc(N + 1));
	for (i = 0; i < N; i++)
		big[i] = (char)('a' + i % 26);
	big[N] = '\0';
	assert_non_null(cl = malloc(N + 64));
	snprintf(cl, N + 64, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s",
	    N, big);
	/* 16 chunks of 64 KiB */
	assert_non_null(chunked = malloc(N + 16 * 16 + 64));
	p = chunked +
	    sprintf(chunked,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 16; i++)
		p += sprintf(p, "10000\r\n%.65536s\r\n", big + i * 65536);
	strcpy(p, "0\r\n\r\n");
	replies[0] = cl;
	replies[1] = chunked;
	server_start(s, replies, 2);
	c = connect_ok(s, TIMEOUT_MS);
	assert_int_equal(httpc_request(c, "PUT", "/x", NULL, NULL,
			     (const uint8_t *)big, N, &resp),
	    0);
	check_body(&resp, 200, big);
	httpc_response_cleanup(&resp);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, big);
	httpc_response_cleanup(&resp);
	httpc_close(c);
	server_finish(s);
	assert_int_equal(
	    s->gotlen, strlen("PUT /x HTTP/1.1\r\nHost: custody\r\n"
			      "Content-Length: 1048576\r\n\r\n") +
			   N + strlen(GET_ROOT));
	assert_memory_equal(s->got + s->gotlen - strlen(GET_ROOT) - N, big, N);
	free(big);
	free(cl);
	free(chunked);
}

/* Connection: close sets closing; the connection then sends nothing. */
static void
test_connection_close(void **state)
{
	struct server *s = *state;
	const char *replies[] = {"HTTP/1.1 200 OK\r\n"
				 "Connection: keep-alive, Close\r\n"
				 "Content-Length: 2\r\n\r\nok",
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
	struct httpc_response resp = {0};
	struct httpc *c;

	server_start(s, replies, 2);
	c = connect_ok(s, TIMEOUT_MS);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, "ok");
	assert_int_equal(resp.closing, 1);
	httpc_response_cleanup(&resp);
	get(c, "GET", CUSTODY_E_PROTOCOL, &resp);
	assert_null(resp.body);
	httpc_close(c);
	server_finish(s);
	assert_string_equal(s->got, GET_ROOT);
}

/* HTTP/1.0: closing unless keep-alive; no framing: up to the close. */
static void
test_http10_and_until_close(void **state)
{
	struct server *s = *state;
	const char *replies10[] = {"HTTP/1.0 200 OK\r\n"
				   "Connection: Keep-Alive\r\n"
				   "Content-Length: 1\r\n\r\na",
	    "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb"};
	const char *replies11[] = {
	    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"};
	struct httpc_response resp = {0};
	struct httpc *c;

	server_start(s, replies10, 2);
	c = connect_ok(s, TIMEOUT_MS);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, "a");
	assert_int_equal(resp.closing, 0);
	httpc_response_cleanup(&resp);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, "b");
	assert_int_equal(resp.closing, 1);
	httpc_response_cleanup(&resp);
	httpc_close(c);
	server_finish(s);
	assert_string_equal(s->got, GET_ROOT GET_ROOT);

	server_start(s, replies11, 1);
	c = connect_ok(s, TIMEOUT_MS);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, "all of it");
	assert_string_equal(resp.content_type, "text/plain");
	assert_int_equal(resp.closing, 1);
	httpc_response_cleanup(&resp);
	get(c, "GET", CUSTODY_E_PROTOCOL, &resp);
	httpc_close(c);
	server_finish(s);
	assert_string_equal(s->got, GET_ROOT);
}

/* HEAD, 204 and 304 have no body whatever their headers say. */
static void
test_no_body(void **state)
{
	struct server *s = *state;
	const char *replies[] = {
	    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
	    "HTTP/1.1 204 No Content\r\n\r\n",
	    "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
	struct httpc_response resp = {0};
	struct httpc *c;

	server_start(s, replies, 5);
	c = connect_ok(s, TIMEOUT_MS);
	get(c, "HEAD", 0, &resp);
	check_body(&resp, 200, "");
	httpc_response_cleanup(&resp);
	get(c, "GET", 0, &resp);
	check_body(&resp, 204, "");
	httpc_response_cleanup(&resp);
	get(c, "GET", 0, &resp);
	check_body(&resp, 304, "");
	httpc_response_cleanup(&resp);
	get(c, "HEAD", 0, &resp);
	check_body(&resp, 200, "");
	assert_int_equal(resp.closing, 0);
	httpc_response_cleanup(&resp);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, "ok");
	httpc_response_cleanup(&resp);
	httpc_close(c);
	server_finish(s);
	assert_string_equal(s->got,
	    "HEAD / HTTP/1.1\r\nHost: custody\r\n\r\n" GET_ROOT GET_ROOT
	    "HEAD / HTTP/1.1\r\nHost: custody\r\n\r\n" GET_ROOT);
}

/* Interim responses are skipped, their headers forgotten. */
static void
test_continue_skipped(void **state)
{
	struct server *s = *state;
	const char *replies[] = {"HTTP/1.1 100 Continue\r\n\r\n"
				 "HTTP/1.1 103 Early Hints\r\n"
				 "Content-Type: text/plain\r\n"
				 "Link: </x>\r\n\r\n"
				 "HTTP/1.1 201 Created\r\n"
				 "Content-Length: 2\r\n\r\nok"};
	struct httpc_response resp = {0};
	struct httpc *c;

	server_start(s, replies, 1);
	c = connect_ok(s, TIMEOUT_MS);
	get(c, "GET", 0, &resp);
	check_body(&resp, 201, "ok");
	assert_null(resp.content_type);
	httpc_response_cleanup(&resp);
	httpc_close(c);
	server_finish(s);
}

/*
 * One GET answered with reply must fail with want, leave resp untouched and
 * spend the connection: a second request sends nothing.
 */
static void
expect_error(struct server *s, const char *reply, int want)
{
	const char *replies[] = {reply};
	struct httpc_response resp = {0};
	struct httpc *c;
	int r;

	server_start(s, replies, 1);
	c = connect_ok(s, TIMEOUT_MS);
	r = httpc_request(c, "GET", "/", NULL, NULL, NULL, 0, &resp);
	if (r != want)
		fail_msg("reply \"%.60s\": %d, want %d", reply, r, want);
	assert_int_equal(resp.status, 0);
	assert_null(resp.body);
	assert_null(resp.content_type);
	get(c, "GET", CUSTODY_E_PROTOCOL, &resp);
	httpc_close(c);
	server_finish(s);
	assert_string_equal(s->got, GET_ROOT);
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
	    /* status lines */
	    "",
	    "\r\n\r\n",
	    "HTTP/1.1 200\r\n",
	    "HTTP/1.1 2000 OK\r\n\r\n",
	    "HTTP/1.1 20a OK\r\n\r\n",
	    "HTTP/1.1 200OK\r\n\r\n",
	    "HTTP/1.2 200 OK\r\n\r\n",
	    "HTTP/2 200 OK\r\n\r\n",
	    "http/1.1 200 OK\r\n\r\n",
	    "HTTP/1.1  200 OK\r\n\r\n",
	    "HTTP/1.1 099 Low\r\n\r\n",
	    "HTTP/1.1 600 High\r\n\r\n",
	    "ICY 200 OK\r\n\r\n",
	    "HTTP/1.1 200 O\rK\r\n\r\n",
	    /* header lines */
	    "HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\n: empty\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX(A): a\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Type: a\r\nContent-Type: b\r\n"
	    "Content-Length: 0\r\n\r\n",
	    /* Content-Length */
	    "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: :\r\n\r\n0123456789",
	    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
	    "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n"
	    "\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
	    "\r\nok",
	    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 2\r\n"
	    "\r\nok",
	    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 5\r\n\r\n0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	    /* chunk sizes and framing */
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5 x\r\nhello\r\n0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5x\r\nhello\r\n0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhelloX\r\n0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\nno colon\r\n\r\n",
	    /* the connection closes before the response ends */
	    "HTTP/1.1 200 OK\r\nContent-Le",
	    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
	    "HTTP/1.1 100 Continue\r\n\r\n",
	    /* 64 MiB exactly is allowed, so this fails at the close only */
	    "HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\nshort",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000000\r\n",
	};
	struct server *s = *state;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(s, bad[i], CUSTODY_E_PROTOCOL);
}

static char *
head_of_size(size_t total)
{
	const char *start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";
	size_t n = total - strlen(start) - strlen("X: \r\n\r\n");
	char *p;

	assert_non_null(p = malloc(total + 1));
	strcpy(p, start);
	strcat(p, "X: ");
	memset(p + strlen(p), 'a', n);
	strcpy(p + strlen(start) + 3 + n, "\r\n\r\n");
	assert_int_equal(strlen(p), total);
	return p;
}

static void
test_too_large(void **state)
{
	struct server *s = *state;
	const char *replies[1];
	struct httpc_response resp = {0};
	struct httpc *c;
	char *big, *p;
	size_t i;

	/* 64 KiB of head exactly is fine, one byte more is not */
	big = head_of_size(64 << 10);
	replies[0] = big;
	server_start(s, replies, 1);
	c = connect_ok(s, TIMEOUT_MS);
	get(c, "GET", 0, &resp);
	check_body(&resp, 200, "");
	httpc_response_cleanup(&resp);
	httpc_close(c);
	server_finish(s);
	free(big);
	big = head_of_size((64 << 10) + 1);
	expect_error(s, big, CUSTODY_E_TOO_LARGE);
	free(big);

	/* many header lines */
	assert_non_null(big = malloc(80 * 1000 + 64));
	p = big + sprintf(big, "HTTP/1.1 200 OK\r\n");
	for (i = 0; i < 80; i++)
		p += sprintf(p, "X-%03zu: %0990d\r\n", i, 0);
	strcpy(p, "Content-Length: 0\r\n\r\n");
	expect_error(s, big, CUSTODY_E_TOO_LARGE);
	free(big);

	expect_error(s,
	    "HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\nshort",
	    CUSTODY_E_TOO_LARGE);
	expect_error(s,
	    "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
	    CUSTODY_E_TOO_LARGE);
	expect_error(s,
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000001\r\n",
	    CUSTODY_E_TOO_LARGE);
	expect_error(s,
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "ffffffffffffffffffffffff\r\n",
	    CUSTODY_E_TOO_LARGE);
	expect_error(s,
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "2\r\nok\r\n3fffffff\r\n",
	    CUSTODY_E_TOO_LARGE);
}

/* HTTPC_BODY_MAX bytes of body exactly, and one more up to the close. */
static void
test_body_limit(void **state)
{
	struct server *s = *state;
	const char *replies[1];
	struct httpc_response resp = {0};
	struct httpc *c;
	char *big;
	int n;

	assert_non_null(big = malloc(HTTPC_BODY_MAX + 64));
	n = sprintf(big, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
	    HTTPC_BODY_MAX);
	memset(big + n, 'x', HTTPC_BODY_MAX);
	big[n + HTTPC_BODY_MAX] = '\0';
	replies[0] = big;
	server_start(s, replies, 1);
	c = connect_ok(s, TIMEOUT_MS);
	get(c, "GET", 0, &resp);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.len, HTTPC_BODY_MAX);
	assert_int_equal(resp.body[0], 'x');
	assert_int_equal(resp.body[HTTPC_BODY_MAX - 1], 'x');
	assert_int_equal(resp.body[HTTPC_BODY_MAX], '\0');
	httpc_response_cleanup(&resp);
	httpc_close(c);
	server_finish(s);

	n = sprintf(big, "HTTP/1.1 200 OK\r\n\r\n");
	memset(big + n, 'x', HTTPC_BODY_MAX + 1);
	big[n + HTTPC_BODY_MAX + 1] = '\0';
	expect_error(s, big, CUSTODY_E_TOO_LARGE);
	free(big);
}

static long
elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)(t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A server that reads the request and never answers. */
static void
test_timeout(void **state)
{
	struct server *s = *state;
	const char *replies[] = {NULL};
	struct httpc_response resp = {0};
	struct httpc *c;
	struct timespec t0;
	long ms;

	server_start(s, replies, 1);
	c = connect_ok(s, 200);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	get(c, "GET", CUSTODY_E_TIMEOUT, &resp);
	ms = elapsed_ms(&t0);
	assert_in_range(ms, 190, 2000);
	assert_null(resp.body);
	get(c, "GET", CUSTODY_E_PROTOCOL, &resp);
	httpc_close(c);
	server_finish(s);
	assert_string_equal(s->got, GET_ROOT);
}

static void
test_not_running(void **state)
{
	struct server *s = *state;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct httpc_response resp = {0};
	struct httpc *c = NULL;
	char path[160];
	int fd;

	/* no such file */
	snprintf(path, sizeof(path), "%s/none.sock", s->dir);
	assert_int_equal(
	    httpc_connect_unix(path, 0, &c), CUSTODY_E_NOT_RUNNING);
	assert_null(c);
	/* a socket bound but not listening */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/idle.sock", s->dir);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(
	    httpc_connect_unix(sun.sun_path, 0, &c), CUSTODY_E_NOT_RUNNING);
	close(fd);
	/* a regular file */
	snprintf(path, sizeof(path), "%s/file", s->dir);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	assert_int_equal(
	    httpc_connect_unix(path, 0, &c), CUSTODY_E_NOT_RUNNING);
	/* a path into a file: neither NOT_RUNNING nor INVALID_ARG */
	snprintf(path, sizeof(path), "%s/file/x.sock", s->dir);
	assert_int_equal(httpc_connect_unix(path, 0, &c), CUSTODY_E_IO);
	assert_null(c);

	/* the daemon hangs up before the request is sent */
	s->hangup = 1;
	server_start(s, NULL, 0);
	c = connect_ok(s, TIMEOUT_MS);
	server_finish(s);
	get(c, "GET", CUSTODY_E_NOT_RUNNING, &resp);
	get(c, "GET", CUSTODY_E_PROTOCOL, &resp);
	httpc_close(c);
	assert_null(s->got);
}

static void
test_invalid_args(void **state)
{
	static const char *const crlf[][2] = {
	    {"X-A: 1\r\nX-B: 2", NULL},
	    {"X-A: 1\nX-B: 2", NULL},
	    {"X-A: 1\r", NULL},
	    {NULL, "text/plain\r\nX-B: 2"},
	};
	struct server *s = *state;
	const char *replies[] = {
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"};
	const char *hdrs[3];
	struct httpc_response resp = {0};
	struct httpc *c = NULL;
	char path[160];
	size_t i;

	assert_int_equal(httpc_connect_unix("", 0, &c), CUSTODY_E_INVALID_ARG);
	memset(path, 'a', sizeof(path));
	memcpy(path, "/tmp/", 5);
	path[sizeof(((struct sockaddr_un *)0)->sun_path)] = '\0';
	assert_int_equal(
	    httpc_connect_unix(path, 0, &c), CUSTODY_E_INVALID_ARG);
	/* one byte shorter fits: nothing listens there */
	path[sizeof(((struct sockaddr_un *)0)->sun_path) - 1] = '\0';
	assert_int_equal(
	    httpc_connect_unix(path, 0, &c), CUSTODY_E_NOT_RUNNING);
	assert_null(c);

	for (i = 0; i < 8; i++) {
		server_start(s, replies, 1);
		c = connect_ok(s, TIMEOUT_MS);
		hdrs[0] = "X-Ok: 1";
		hdrs[1] = i < 4 ? crlf[i][0] : NULL;
		hdrs[2] = NULL;
		switch (i) {
		case 0:
		case 1:
		case 2:
		case 3:
			assert_int_equal(
			    httpc_request(c, "POST", "/", hdrs, crlf[i][1],
				(const uint8_t *)"x", 1, &resp),
			    CUSTODY_E_INVALID_ARG);
			break;
		case 4:
			assert_int_equal(httpc_request(c, "GET", "/a b", NULL,
					     NULL, NULL, 0, &resp),
			    CUSTODY_E_INVALID_ARG);
			break;
		case 5:
			assert_int_equal(httpc_request(c, "", "/", NULL, NULL,
					     NULL, 0, &resp),
			    CUSTODY_E_INVALID_ARG);
			break;
		case 6:
			assert_int_equal(httpc_request(c, "GET\r\n", "/", NULL,
					     NULL, NULL, 0, &resp),
			    CUSTODY_E_INVALID_ARG);
			break;
		default:
			assert_int_equal(httpc_request(c, "POST", "/", NULL,
					     NULL, NULL, 3, &resp),
			    CUSTODY_E_INVALID_ARG);
			break;
		}
		assert_null(resp.body);
		get(c, "GET", CUSTODY_E_PROTOCOL, &resp);
		httpc_close(c);
		server_finish(s);
		assert_null(s->got); /* nothing was sent */
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_content_length, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_bodies, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_connection_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_http10_and_until_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_continue_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_running, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_args, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
