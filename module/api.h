/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_API_H
#define CUSTODY_API_H

#include <stdint.h>

#include "config.h"
#include "service.h"

/*
 * custodyd's HTTP API (ARCHITECTURE.md section 4, docs/api.yaml): HTTP/1.1
 * and JSON on the listen-unix socket, the principal of each connection
 * taken from SO_PEERCRED ("unix:uid=N").
 *
 * Threads: one libevent loop per worker (cfg->workers), all accepting on the
 * same socket, parse requests, ask the policy and build the bytes to sign;
 * the decision leaf is appended to the audit log without blocking a loop
 * (audit_append_async()); once it is durable, one of as many signer threads
 * signs in the token (and verifies), and the loop that took the request
 * sends the answer. Nothing is signed before its leaf is durable (G1), and
 * nothing at all once the log has failed (G2: 503).
 *
 * Limits (custody's, answered with problem+json; libevent's own, larger,
 * stay as a backstop): API_BODY_MAX bytes of body, API_HEADERS_MAX bytes of
 * headers, cfg->max_connections connections (more are closed at once), and
 * cfg->request_timeout for a whole request to arrive, from the connection or
 * from the previous answer (a slow client is disconnected).
 */
struct api;

#define API_BODY_MAX	       (64 * 1024)
#define API_PRINCIPAL_MAX      512 /* bytes of a principal, with its NUL */
#define API_BODY_BACKSTOP      (1024 * 1024)
#define API_HEADERS_MAX	       (8 * 1024)
#define API_HEADERS_BACKSTOP   (32 * 1024)
#define API_DRAIN_TIMEOUT_MS   10000
#define API_REFUSED_PRINCIPALS 256	   /* in one requests.refused leaf */
#define API_REFUSED_BYTES      (48 * 1024) /* of principals in it, at most */

/*
 * Bind the listen-unix socket (mode listen-unix-mode, group
 * listen-unix-group; a stale socket left by a dead custodyd is replaced,
 * one in use is refused) and load the keyring. No thread starts and
 * nothing is logged: a failure here leaves no trace in the audit log.
 * Errors: CUSTODY_E_IO, CUSTODY_E_EXISTS (a server answers on the socket),
 * CUSTODY_E_CONFIG (a group that does not exist), the keyring's. *ap is new.
 */
int api_open(struct service *sv, const struct config *cfg, struct api **ap);

/* Start the loops and the signers: requests are served from here on. */
int api_run(struct api *a);

/*
 * Stop accepting connections, close idle ones, and wait (at most
 * timeout_ms) for requests in progress to be answered; their answers say
 * Connection: close. Refusals counted since the last interval are logged.
 * Returns the number of requests still in progress (0: drained).
 */
long api_drain(struct api *a, int64_t timeout_ms);

/*
 * Stop and free everything, after waiting for every request already in the
 * audit log or a signer to finish; removes the socket. NULL-safe. The
 * service must still be open.
 */
void api_close(struct api *a);

#endif
