/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_HTTPC_H
#define CUSTODY_HTTPC_H

#include <stddef.h>
#include <stdint.h>

/*
 * A small blocking HTTP/1.1 client for custodyd's Unix socket, used by the
 * custody CLI and the benchmark. One struct httpc is one connection; it is
 * not safe for concurrent use. Requests go one at a time (no pipelining);
 * the connection is kept alive between them until the server closes it or
 * an error occurs. Writes never raise SIGPIPE.
 */

/* Largest response body accepted. */
#define HTTPC_BODY_MAX (64u << 20)

struct httpc; /* one connection */

/*
 * Connect to the Unix socket at path. timeout_ms bounds every later read or
 * write (each wait in poll(2)); 0 means 30000. Returns 0 and a new *cp
 * (httpc_close it), or CUSTODY_E_INVALID_ARG (path empty or longer than
 * sun_path), CUSTODY_E_NOT_RUNNING (connect(2) said ENOENT, ECONNREFUSED or
 * ENOTSOCK: nothing listens there), CUSTODY_E_IO (anything else, errno
 * logged) or CUSTODY_E_NOMEM.
 */
int httpc_connect_unix(const char *path, int timeout_ms, struct httpc **cp);

struct httpc_response {
	int status;	    /* 100..599 */
	char *content_type; /* the Content-Type header value, or NULL */
	uint8_t *body; /* NUL-terminated (not counted in len); never NULL */
	size_t len;
	int closing; /* the server closes the connection after this response */
};

/*
 * Send one request and read its response. method and target go into the
 * request line as given. headers is NULL or a NULL-terminated array of extra
 * "Name: value" lines without CR or LF. Host: custody is always sent;
 * Content-Length when body is not NULL, and Content-Type with it when
 * content_type is not NULL. Interim 1xx responses (but 101) are skipped.
 *
 * The response head (status lines and header lines, with their line ends)
 * may hold at most 64 KiB, and the body, framed by Content-Length, chunked
 * transfer coding or the end of the connection, at most HTTPC_BODY_MAX bytes:
 * CUSTODY_E_TOO_LARGE otherwise. A response to HEAD, or with status 1xx, 204
 * or 304, has no body.
 *
 * Returns 0 and fills *resp (release with httpc_response_cleanup), or
 * CUSTODY_E_INVALID_ARG (CR, LF or a space where not allowed; body NULL with
 * len not 0), CUSTODY_E_PROTOCOL (malformed status line, header line, chunk
 * size or Content-Length; Content-Length repeated with another value; both
 * Content-Length and Transfer-Encoding; a Transfer-Encoding other than
 * chunked; a connection closed before the response ended),
 * CUSTODY_E_TIMEOUT, CUSTODY_E_NOT_RUNNING (EPIPE or ECONNRESET before any
 * response byte was read: custodyd went away), CUSTODY_E_TOO_LARGE,
 * CUSTODY_E_IO (errno logged) or CUSTODY_E_NOMEM; *resp is then untouched.
 * After an error, or after a response with closing set, the connection is
 * spent: further calls return CUSTODY_E_PROTOCOL and send nothing.
 */
int httpc_request(struct httpc *c, const char *method, const char *target,
    const char *const *headers, const char *content_type, const uint8_t *body,
    size_t len, struct httpc_response *resp);

/* Free what r holds and zero it; NULL-safe. */
void httpc_response_cleanup(struct httpc_response *r);

/* Close the connection and free c; NULL-safe. */
void httpc_close(struct httpc *c);

#endif
