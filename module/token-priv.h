/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_TOKEN_PRIV_H
#define CUSTODY_TOKEN_PRIV_H

/*
 * Entry points for unit tests: the same as token_open() and token_init(),
 * but on a function list the caller already has (a mock or fault-injecting
 * one) instead of a module loaded by path. o->module is ignored.
 */
#include <p11-kit/pkcs11.h>

#include "token.h"

int token_open_functions(
    CK_FUNCTION_LIST *f, const struct token_opts *o, struct token **tp);

int token_init_functions(CK_FUNCTION_LIST *f, const char *uri,
    const struct secret *so_pin, const struct secret *user_pin);

/* The name of a CK_RV ("CKR_PIN_INCORRECT"); for tests and messages. */
const char *token_rv_name(CK_RV rv);

#endif
