/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* open_memstream, MSG_NOSIGNAL, SOCK_CLOEXEC */
#endif

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "httpc.h"
#include "log.h"

#define HEAD_MAX	   (64u << 10) /* status and header lines of a response */
#define DEFAULT_TIMEOUT_MS 30000
#define IS_DIGIT(ch)	   ((ch) >= '0' && (ch) <= '9')

struct httpc {
	int fd;
	int timeout_ms;
	int spent; /* after an error or a closing response */
	int got;   /* a byte of the current response was read */
	int eof;
	size_t off, end;    /* unread bytes: buf[off..end) */
	char buf[HEAD_MAX]; /* a line within any budget fits */
};

/* What the status line and header fields of a response say. */
struct head {
	int status;
	int minor; /* HTTP/1.minor */
	int chunked;
	int close;
	int keepalive;
	int has_cl;
	uint64_t cl;
	char *content_type;
};

struct body {
	uint8_t *p;
	size_t len, cap;
};

static int
sys_error(struct httpc *c, const char *what)
{
	if ((errno == EPIPE || errno == ECONNRESET) && !c->got)
		return CUSTODY_E_NOT_RUNNING;
	log_error_f("%s: %s", what, strerror(errno));
	return CUSTODY_E_IO;
}

/* Wait until the socket is ready for events, at most timeout_ms in all. */
static int
wait_fd(struct httpc *c, short events)
{
	struct pollfd pfd = {.fd = c->fd, .events = events};
	struct timespec t0, t;
	long left = c->timeout_ms;
	int n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((n = poll(&pfd, 1, (int)left)) < 0) {
		if (errno != EINTR)
			return sys_error(c, "poll");
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = c->timeout_ms - (long)(t.tv_sec - t0.tv_sec) * 1000 -
		       (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (left <= 0)
			return CUSTODY_E_TIMEOUT;
	}
	return n == 0 ? CUSTODY_E_TIMEOUT : 0;
}

static int
send_all(struct httpc *c, const void *p, size_t len)
{
	const char *s = p;
	ssize_t n;
	int r;

	while (len > 0) {
		if ((r = wait_fd(c, POLLOUT)) != 0)
			return r;
		/* MSG_DONTWAIT: a full socket never blocks past the timeout */
		n = send(c->fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return sys_error(c, "send");
		if (n > 0) {
			s += n;
			len -= (size_t)n;
		}
	}
	return 0;
}

/* Read what has arrived into the buffer; CUSTODY_E_PROTOCOL at its end. */
static int
fill(struct httpc *c)
{
	ssize_t n;
	int r;

	if (c->off == c->end)
		c->off = c->end = 0;
	if (c->end == sizeof(c->buf)) {
		memmove(c->buf, c->buf + c->off, c->end - c->off);
		c->end -= c->off;
		c->off = 0;
	}
	if (c->end == sizeof(c->buf))
		return CUSTODY_E_INTERNAL; /* callers bound their lines */
	for (;;) {
		if ((r = wait_fd(c, POLLIN)) != 0)
			return r;
		n = recv(c->fd, c->buf + c->end, sizeof(c->buf) - c->end,
		    MSG_DONTWAIT);
		if (n > 0)
			break;
		if (n == 0) {
			c->eof = 1;
			return CUSTODY_E_PROTOCOL;
		}
		if (errno != EINTR && errno != EAGAIN)
			return sys_error(c, "recv");
	}
	c->end += (size_t)n;
	c->got = 1;
	return 0;
}

/*
 * The next line without its LF or CRLF, NUL-terminated in the buffer and
 * valid until the next read. It and its line end are taken from *budget.
 */
static int
read_line(struct httpc *c, size_t *budget, char **linep)
{
	size_t scanned = 0, n;
	char *s, *nl;
	int r;

	for (;;) {
		s = c->buf + c->off;
		nl = memchr(s + scanned, '\n', c->end - c->off - scanned);
		if (nl != NULL)
			break;
		if ((scanned = c->end - c->off) >= *budget)
			return CUSTODY_E_TOO_LARGE;
		if ((r = fill(c)) != 0)
			return r;
	}
	if ((n = (size_t)(nl - s) + 1) > *budget)
		return CUSTODY_E_TOO_LARGE;
	*budget -= n;
	c->off += n;
	if (nl > s && nl[-1] == '\r')
		nl--;
	*nl = '\0';
	if (strlen(s) != (size_t)(nl - s) || strchr(s, '\r') != NULL)
		return CUSTODY_E_PROTOCOL; /* NUL or bare CR */
	*linep = s;
	return 0;
}

static int
hexval(char ch)
{
	if (IS_DIGIT(ch))
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int
is_tchar(char ch)
{
	return ch > 0x20 && ch < 0x7f &&
	       strchr("\"(),/:;<=>?@[\\]{}", ch) == NULL;
}

/* "HTTP/1.x NNN reason" */
static int
parse_status(const char *s, struct head *h)
{
	if (strncmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
	    s[8] != ' ' || !IS_DIGIT(s[9]) || !IS_DIGIT(s[10]) ||
	    !IS_DIGIT(s[11]) || (s[12] != ' ' && s[12] != '\0'))
		return CUSTODY_E_PROTOCOL;
	h->minor = s[7] - '0';
	h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	return h->status < 100 || h->status > 599 ? CUSTODY_E_PROTOCOL : 0;
}

static int
parse_content_length(const char *v, uint64_t *np)
{
	uint64_t n = 0;

	if (*v == '\0')
		return CUSTODY_E_PROTOCOL;
	for (; *v != '\0'; v++) {
		if (!IS_DIGIT(*v) ||
		    n > (UINT64_MAX - (uint64_t)(*v - '0')) / 10)
			return CUSTODY_E_PROTOCOL;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*np = n;
	return 0;
}

static int
parse_header(char *line, struct head *h)
{
	char *colon, *v, *e, *p;
	uint64_t n;
	int r;

	if ((colon = strchr(line, ':')) == NULL || colon == line)
		return CUSTODY_E_PROTOCOL;
	/* also refuses obs-fold and whitespace before the colon */
	for (p = line; p < colon; p++)
		if (!is_tchar(*p))
			return CUSTODY_E_PROTOCOL;
	*colon = '\0';
	v = colon + 1 + strspn(colon + 1, " \t");
	for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
		;
	*e = '\0';
	if (strcasecmp(line, "Content-Length") == 0) {
		if ((r = parse_content_length(v, &n)) != 0)
			return r;
		if (h->has_cl && h->cl != n)
			return CUSTODY_E_PROTOCOL;
		h->has_cl = 1;
		h->cl = n;
	} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
		/* custodyd uses no other coding */
		if (h->chunked || strcasecmp(v, "chunked") != 0)
			return CUSTODY_E_PROTOCOL;
		h->chunked = 1;
	} else if (strcasecmp(line, "Connection") == 0) {
		for (p = v; *p != '\0'; p = e) {
			p += strspn(p, " \t,");
			e = p + strcspn(p, " \t,");
			if (e - p == 5 && strncasecmp(p, "close", 5) == 0)
				h->close = 1;
			if (e - p == 10 &&
			    strncasecmp(p, "keep-alive", 10) == 0)
				h->keepalive = 1;
		}
	} else if (strcasecmp(line, "Content-Type") == 0) {
		if (h->content_type != NULL)
			return CUSTODY_E_PROTOCOL;
		if ((h->content_type = strdup(v)) == NULL)
			return CUSTODY_E_NOMEM;
	}
	return 0;
}

/* Status lines and header fields up to the final (not 1xx) response. */
static int
read_head(struct httpc *c, struct head *h)
{
	size_t budget = HEAD_MAX;
	char *line;
	int r;

	do {
		free(h->content_type);
		memset(h, 0, sizeof(*h));
		if ((r = read_line(c, &budget, &line)) != 0 ||
		    (r = parse_status(line, h)) != 0)
			return r;
		while ((r = read_line(c, &budget, &line)) == 0 && *line != '\0')
			if ((r = parse_header(line, h)) != 0)
				return r;
		if (r != 0)
			return r;
	} while (h->status < 200 && h->status != 101);
	return 0;
}

/* Room in b for n more bytes and a NUL, up to HTTPC_BODY_MAX. */
static int
body_grow(struct body *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (n > HTTPC_BODY_MAX - b->len)
		return CUSTODY_E_TOO_LARGE;
	if (b->p != NULL && b->len + n < b->cap)
		return 0;
	cap = b->cap > HTTPC_BODY_MAX / 2 ? HTTPC_BODY_MAX + 1 : b->cap * 2;
	if (cap < b->len + n + 1)
		cap = b->len + n + 1;
	if ((p = realloc(b->p, cap)) == NULL)
		return CUSTODY_E_NOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Move n bytes, or all up to the end of the connection (SIZE_MAX), to b. */
static int
body_read(struct httpc *c, struct body *b, size_t n)
{
	size_t k;
	int r;

	while (n > 0) {
		if (c->off == c->end && (r = fill(c)) != 0) {
			if (r == CUSTODY_E_PROTOCOL && c->eof && n == SIZE_MAX)
				r = 0; /* a body up to the close has ended */
			return r;
		}
		k = c->end - c->off < n ? c->end - c->off : n;
		if ((r = body_grow(b, k)) != 0)
			return r;
		memcpy(b->p + b->len, c->buf + c->off, k);
		b->len += k;
		c->off += k;
		if (n != SIZE_MAX)
			n -= k;
	}
	return 0;
}

static int
read_chunked(struct httpc *c, struct body *b)
{
	size_t budget, n;
	char *line, *p;
	int r, d;

	for (;;) {
		budget = HEAD_MAX;
		if ((r = read_line(c, &budget, &line)) != 0)
			return r;
		for (n = 0, p = line; (d = hexval(*p)) >= 0; p++) {
			if (n > HTTPC_BODY_MAX)
				return CUSTODY_E_TOO_LARGE;
			n = n * 16 + (size_t)d;
		}
		p += strspn(p, " \t"); /* BWS before a chunk extension */
		if (p == line || (*p != '\0' && *p != ';'))
			return CUSTODY_E_PROTOCOL;
		if (n == 0)
			break;
		if (n > HTTPC_BODY_MAX - b->len)
			return CUSTODY_E_TOO_LARGE;
		if ((r = body_read(c, b, n)) != 0)
			return r;
		if ((r = read_line(c, &budget, &line)) != 0)
			return r;
		if (*line != '\0')
			return CUSTODY_E_PROTOCOL;
	}
	/* the trailer section: fields we do not use */
	budget = HEAD_MAX;
	while ((r = read_line(c, &budget, &line)) == 0 && *line != '\0')
		if (strchr(line, ':') == NULL)
			return CUSTODY_E_PROTOCOL;
	return r;
}

static int
check_request(const char *method, const char *target,
    const char *const *headers, const char *content_type, const uint8_t *body,
    size_t len)
{
	const char *p;
	size_t i;

	if (*method == '\0' || *target == '\0' || (body == NULL && len != 0))
		return CUSTODY_E_INVALID_ARG;
	for (p = method; *p != '\0'; p++)
		if (!is_tchar(*p))
			return CUSTODY_E_INVALID_ARG;
	for (p = target; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return CUSTODY_E_INVALID_ARG;
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		if (strpbrk(headers[i], "\r\n") != NULL)
			return CUSTODY_E_INVALID_ARG;
	if (content_type != NULL && strpbrk(content_type, "\r\n") != NULL)
		return CUSTODY_E_INVALID_ARG;
	return 0;
}

int
httpc_connect_unix(const char *path, int timeout_ms, struct httpc **cp)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct httpc *c = NULL;
	int n, r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    path != NULL && timeout_ms >= 0 && cp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (*path == '\0' || strlen(path) >= sizeof(sun.sun_path))
		return CUSTODY_E_INVALID_ARG;
	memcpy(sun.sun_path, path, strlen(path));
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return CUSTODY_E_NOMEM;
	c->timeout_ms = timeout_ms == 0 ? DEFAULT_TIMEOUT_MS : timeout_ms;
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		log_error_f("socket: %s", strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	do
		n = connect(c->fd, (struct sockaddr *)&sun, sizeof(sun));
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno != EISCONN) {
		if (errno == ENOENT || errno == ECONNREFUSED ||
		    errno == ENOTSOCK) {
			r = CUSTODY_E_NOT_RUNNING;
			goto out;
		}
		log_error_f("connect %s: %s", path, strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	*cp = c;
	c = NULL;
	r = 0;
out:
	httpc_close(c);
	return r;
}

int
httpc_request(struct httpc *c, const char *method, const char *target,
    const char *const *headers, const char *content_type, const uint8_t *body,
    size_t len, struct httpc_response *resp)
{
	struct head h = {0};
	struct body b = {0};
	char *req = NULL;
	size_t reqlen = 0, i;
	FILE *f = NULL;
	int nobody, r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    c != NULL && method != NULL && target != NULL && resp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (c->spent)
		return CUSTODY_E_PROTOCOL;
	c->spent = 1; /* until a response says otherwise */
	c->got = 0;
	if ((r = check_request(
		 method, target, headers, content_type, body, len)) != 0)
		goto out;
	if ((f = open_memstream(&req, &reqlen)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	fprintf(f, "%s %s HTTP/1.1\r\nHost: custody\r\n", method, target);
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		fprintf(f, "%s\r\n", headers[i]);
	if (body != NULL && content_type != NULL)
		fprintf(f, "Content-Type: %s\r\n", content_type);
	if (body != NULL)
		fprintf(f, "Content-Length: %zu\r\n", len);
	fputs("\r\n", f);
	r = ferror(f);
	if (fclose(f) != 0 || r != 0) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if ((r = send_all(c, req, reqlen)) != 0 ||
	    (body != NULL && (r = send_all(c, body, len)) != 0))
		goto out;
	if ((r = read_head(c, &h)) != 0)
		goto out;
	if (h.has_cl && h.chunked) {
		r = CUSTODY_E_PROTOCOL;
		goto out;
	}
	nobody = strcmp(method, "HEAD") == 0 || h.status < 200 ||
		 h.status == 204 || h.status == 304;
	if (!nobody && !h.has_cl && !h.chunked)
		h.close = 1; /* the body ends with the connection */
	if (!nobody && h.cl > HTTPC_BODY_MAX) {
		r = CUSTODY_E_TOO_LARGE;
		goto out;
	}
	if ((r = body_grow(&b, nobody ? 0 : (size_t)h.cl)) != 0)
		goto out;
	if (nobody)
		r = 0;
	else if (h.chunked)
		r = read_chunked(c, &b);
	else if (h.has_cl)
		r = body_read(c, &b, (size_t)h.cl);
	else
		r = body_read(c, &b, SIZE_MAX);
	if (r != 0)
		goto out;
	b.p[b.len] = '\0';
	memset(resp, 0, sizeof(*resp));
	resp->status = h.status;
	resp->content_type = h.content_type;
	h.content_type = NULL;
	resp->body = b.p;
	b.p = NULL;
	resp->len = b.len;
	resp->closing =
	    h.close || (h.minor == 0 && !h.keepalive) || h.status == 101;
	c->spent = resp->closing;
out:
	free(req);
	free(b.p);
	free(h.content_type);
	return r;
}

void
httpc_response_cleanup(struct httpc_response *r)
{
	if (r == NULL)
		return;
	free(r->content_type);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

void
httpc_close(struct httpc *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}
