/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_CONFIG_H
#define CUSTODY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/*
 * The configuration file shared by custodyd and the custody CLI
 * (ARCHITECTURE.md section 7): "keyword value" lines, '#' starts a comment
 * (at the start of a line or after white space), blank lines are ignored,
 * the value is the rest of the line with surrounding white space removed.
 * A keyword given twice is an error, except pkcs11-env, which may repeat.
 * Paths must be absolute. Durations use util_parse_duration().
 */

#define CONFIG_DEFAULT_PATH	"/etc/custody/custody.conf"
#define CONFIG_DEFAULT_DATA_DIR "/var/lib/custody"
/* a day: auditors who fetch checkpoints daily see one signed by both keys */
#define CONFIG_DEFAULT_CHECKPOINT_OVERLAP 86400
#define CONFIG_MAX_ENV			  16
#define CONFIG_CONNECTIONS_MAX		  65536

struct config_env {
	char *name; /* [A-Za-z_][A-Za-z0-9_]*, not containing "PIN" */
	char *value;
};

struct config {
	char *path;	     /* the file this was read from */
	char *data_dir;	     /* data-dir [/var/lib/custody] */
	char *pkcs11_module; /* pkcs11-module (required to use a token) */
	char *token;	     /* token: RFC 7512 URI [pkcs11:token=custody] */
	char *pin_file;	     /* pin-file [DATA/user.pin] */
	char *policy;	     /* policy (file) or NULL */
	char *listen_unix;   /* listen-unix [DATA/custody.sock] */
	char *listen_tcp;    /* listen-tcp HOST:PORT or NULL */
	char *tls_cert, *tls_key, *tls_client_ca; /* or NULL */
	char *issuer;				  /* issuer (JWT iss) or NULL */
	char *log_origin;			  /* log-origin or NULL */
	int64_t checkpoint_interval;		  /* seconds [1] */
	int64_t checkpoint_overlap; /* seconds a rotated checkpoint key
				       co-signs [1d] */
	int workers;		    /* workers [number of online cores] */
	char *jwt_ed25519_alg;	    /* "EdDSA" (default) or "Ed25519" */
	int listen_unix_mode;	    /* listen-unix-mode [0660] */
	char *listen_unix_group;    /* listen-unix-group or NULL (the user's) */
	int max_connections;	    /* max-connections [1024] */
	int64_t request_timeout;    /* request-timeout [10s]: a whole request */
	/* pkcs11-env NAME=VALUE: set in the environment before the module is
	 * loaded (SOFTHSM2_CONF, TPM2_PKCS11_STORE, ...). */
	struct config_env env[CONFIG_MAX_ENV];
	size_t nenv;
	uint8_t sha256[32]; /* of the file's bytes (service.start leaves) */
};

/*
 * Choose the file: explicit (from -c) if not NULL, else $CUSTODY_CONF if set
 * and not empty, else CONFIG_DEFAULT_PATH. Returns a pointer to one of those
 * strings (not a copy).
 */
const char *config_choose_path(const char *explicit_path);

/*
 * Read and check the file at path. On error returns CUSTODY_E_CONFIG (or
 * CUSTODY_E_IO, CUSTODY_E_NOMEM) and, if errbuf is not NULL, writes a message
 * naming the file and line ("custody.conf:7: unknown keyword 'tokn'") into it.
 * Lines longer than 4096 bytes and files larger than 1 MiB are refused.
 * *cfgp is new; free it with config_free().
 */
int config_load(
    const char *path, struct config **cfgp, char *errbuf, size_t errbufsz);

/* Same as config_load() but from a string; name is used in messages. */
int config_parse(const char *name, const char *text, size_t len,
    struct config **cfgp, char *errbuf, size_t errbufsz);

/* Set every pkcs11-env variable in this process's environment. */
int config_apply_env(const struct config *cfg);

/* Value of pkcs11-env NAME, or NULL. */
const char *config_env_get(const struct config *cfg, const char *name);

void config_free(struct config *cfg);

#endif
