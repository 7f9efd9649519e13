/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* setenv, strndup */
#endif

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define CONFIG_LINE_MAX	       4096 /* bytes, without the newline */
#define CONFIG_FILE_MAX	       (1024 * 1024)
#define CONFIG_WORKERS_MAX     256
#define CONFIG_DEFAULT_TOKEN   "pkcs11:token=custody"
#define CONFIG_DEFAULT_JWT_ALG "EdDSA"

enum config_op {
	OP_DATA_DIR,
	OP_PKCS11_MODULE,
	OP_TOKEN,
	OP_PIN_FILE,
	OP_POLICY,
	OP_LISTEN_UNIX,
	OP_LISTEN_TCP,
	OP_TLS_CERT,
	OP_TLS_KEY,
	OP_TLS_CLIENT_CA,
	OP_ISSUER,
	OP_LOG_ORIGIN,
	OP_CHECKPOINT_INTERVAL,
	OP_CHECKPOINT_OVERLAP,
	OP_WORKERS,
	OP_JWT_ED25519_ALG,
	OP_PKCS11_ENV,
	OP_LISTEN_UNIX_MODE,
	OP_LISTEN_UNIX_GROUP,
	OP_MAX_CONNECTIONS,
	OP_REQUEST_TIMEOUT,
	OP_MAX
};

#define KW_PATH	 0x01 /* the value must be an absolute path */
#define KW_MULTI 0x02 /* the keyword may be given more than once */

static const struct {
	const char *name;
	enum config_op op;
	unsigned int flags;
} keywords[] = {
    {"data-dir", OP_DATA_DIR, KW_PATH},
    {"pkcs11-module", OP_PKCS11_MODULE, KW_PATH},
    {"token", OP_TOKEN, 0},
    {"pin-file", OP_PIN_FILE, KW_PATH},
    {"policy", OP_POLICY, KW_PATH},
    {"listen-unix", OP_LISTEN_UNIX, KW_PATH},
    {"listen-tcp", OP_LISTEN_TCP, 0},
    {"tls-cert", OP_TLS_CERT, KW_PATH},
    {"tls-key", OP_TLS_KEY, KW_PATH},
    {"tls-client-ca", OP_TLS_CLIENT_CA, KW_PATH},
    {"issuer", OP_ISSUER, 0},
    {"log-origin", OP_LOG_ORIGIN, 0},
    {"checkpoint-interval", OP_CHECKPOINT_INTERVAL, 0},
    {"checkpoint-overlap", OP_CHECKPOINT_OVERLAP, 0},
    {"workers", OP_WORKERS, 0},
    {"jwt-ed25519-alg", OP_JWT_ED25519_ALG, 0},
    {"pkcs11-env", OP_PKCS11_ENV, KW_MULTI},
    {"listen-unix-mode", OP_LISTEN_UNIX_MODE, 0},
    {"listen-unix-group", OP_LISTEN_UNIX_GROUP, 0},
    {"max-connections", OP_MAX_CONNECTIONS, 0},
    {"request-timeout", OP_REQUEST_TIMEOUT, 0},
    {NULL, OP_MAX, 0},
};

struct parser {
	const char *name; /* file name for messages */
	size_t lineno;	  /* current line, from 1 */
	char *errbuf;
	size_t errbufsz;
	size_t first[OP_MAX]; /* line a keyword was first seen on */
	size_t env_line[CONFIG_MAX_ENV];
	struct config *cfg;
};

static void errbuf_printf(char *errbuf, size_t errbufsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errbuf_printf(char *errbuf, size_t errbufsz, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errbufsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errbufsz, fmt, ap);
	va_end(ap);
}

/*
 * Write "NAME:LINE: message" (or "NAME: message" for line 0) into the
 * error buffer and return CUSTODY_E_CONFIG, so that a failed check reads
 * "return parse_error(p, line, ...)".
 */
static int parse_error(struct parser *p, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
parse_error(struct parser *p, size_t line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		errbuf_printf(
		    p->errbuf, p->errbufsz, "%s:%zu: %s", p->name, line, msg);
	else
		errbuf_printf(p->errbuf, p->errbufsz, "%s: %s", p->name, msg);
	log_debug_f("%s:%zu: %s", p->name, line, msg);
	return CUSTODY_E_CONFIG;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Where a string-valued keyword is stored, or NULL for the others. */
static char **
config_strp(struct config *cfg, enum config_op op)
{
	switch (op) {
	case OP_DATA_DIR:
		return &cfg->data_dir;
	case OP_PKCS11_MODULE:
		return &cfg->pkcs11_module;
	case OP_TOKEN:
		return &cfg->token;
	case OP_PIN_FILE:
		return &cfg->pin_file;
	case OP_POLICY:
		return &cfg->policy;
	case OP_LISTEN_UNIX:
		return &cfg->listen_unix;
	case OP_LISTEN_TCP:
		return &cfg->listen_tcp;
	case OP_TLS_CERT:
		return &cfg->tls_cert;
	case OP_TLS_KEY:
		return &cfg->tls_key;
	case OP_TLS_CLIENT_CA:
		return &cfg->tls_client_ca;
	case OP_ISSUER:
		return &cfg->issuer;
	case OP_LOG_ORIGIN:
		return &cfg->log_origin;
	case OP_JWT_ED25519_ALG:
		return &cfg->jwt_ed25519_alg;
	case OP_LISTEN_UNIX_GROUP:
		return &cfg->listen_unix_group;
	default:
		return NULL;
	}
}

/* Digits only, no sign, no spaces; at most 9 digits so int cannot overflow. */
static int
parse_uint(const char *s, int *vp)
{
	int v = 0;
	size_t n;

	for (n = 0; s[n] >= '0' && s[n] <= '9'; n++) {
		if (n == 9)
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	if (n == 0 || s[n] != '\0')
		return -1;
	*vp = v;
	return 0;
}

/*
 * HOST:PORT, HOST either a name or address without ':' or an IPv6 address
 * in brackets. Returns NULL if v is good, else why it is not.
 */
static const char *
check_hostport(const char *v)
{
	const char *host, *hostend, *port, *c;
	int n;

	if (v[0] == '[') {
		host = v + 1;
		if ((hostend = strchr(host, ']')) == NULL)
			return "'[' without ']'";
		if (hostend[1] != ':')
			return "expected ':' and a port after ']'";
		port = hostend + 2;
	} else {
		host = v;
		if ((hostend = strrchr(v, ':')) == NULL)
			return "no port; expected HOST:PORT";
		if (memchr(v, ':', (size_t)(hostend - v)) != NULL)
			return "an IPv6 address must be in brackets, as in "
			       "[::1]:8443";
		port = hostend + 1;
	}
	if (hostend == host)
		return "empty host";
	for (c = host; c < hostend; c++)
		if (is_blank(*c) || *c == '[' || *c == ']' || *c == '/')
			return "bad character in host";
	if (parse_uint(port, &n) != 0 || n < 1 || n > 65535)
		return "port must be a number from 1 to 65535";
	return NULL;
}

/* [A-Za-z_][A-Za-z0-9_]* */
static int
env_name_ok(const char *s)
{
	size_t i;

	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
		s[0] == '_'))
		return 0;
	for (i = 1; s[i] != '\0'; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

static int
contains_pin(const char *s)
{
	for (; *s != '\0'; s++)
		if (strncasecmp(s, "pin", 3) == 0)
			return 1;
	return 0;
}

static int
parse_env(struct parser *p, char *value)
{
	struct config *cfg = p->cfg;
	char *eq, *name = NULL, *val = NULL;
	size_t i;
	int r;

	if ((eq = strchr(value, '=')) == NULL)
		return parse_error(p, p->lineno,
		    "pkcs11-env: expected NAME=VALUE, got '%s'", value);
	*eq = '\0';
	if (!env_name_ok(value))
		return parse_error(p, p->lineno,
		    "pkcs11-env: '%s' is not a "
		    "variable name ([A-Za-z_][A-Za-z0-9_]*)",
		    value);
	/*
	 * G8: a PIN never goes into the environment, where children and
	 * /proc/PID/environ would see it. Refuse anything that looks like one.
	 */
	if (contains_pin(value))
		return parse_error(p, p->lineno,
		    "pkcs11-env: refusing '%s': "
		    "a PIN is never passed in the environment; use pin-file",
		    value);
	for (i = 0; i < cfg->nenv; i++)
		if (strcmp(cfg->env[i].name, value) == 0)
			return parse_error(p, p->lineno,
			    "pkcs11-env: '%s' "
			    "already set on line %zu",
			    value, p->env_line[i]);
	if (cfg->nenv >= CONFIG_MAX_ENV)
		return parse_error(p, p->lineno,
		    "pkcs11-env: more than %d variables", CONFIG_MAX_ENV);
	if ((name = strdup(value)) == NULL || (val = strdup(eq + 1)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	cfg->env[cfg->nenv].name = name;
	cfg->env[cfg->nenv].value = val;
	p->env_line[cfg->nenv] = p->lineno;
	cfg->nenv++;
	name = val = NULL;
	r = 0;
out:
	free(name);
	free(val);
	return r;
}

/* Check value for keyword kw (table index) and store it. */
static int
parse_value(struct parser *p, size_t kw, char *value)
{
	struct config *cfg = p->cfg;
	const char *name = keywords[kw].name, *why;
	char **strp;
	int n;
	size_t i;

	if (strchr(value, '\t') != NULL)
		return parse_error(
		    p, p->lineno, "%s: value contains a tab", name);
	if ((keywords[kw].flags & KW_PATH) != 0 && value[0] != '/')
		return parse_error(p, p->lineno,
		    "%s: '%s' is not an absolute "
		    "path",
		    name, value);

	switch (keywords[kw].op) {
	case OP_TOKEN:
		if (strncmp(value, "pkcs11:", 7) != 0)
			return parse_error(p, p->lineno,
			    "token: '%s' is not a "
			    "PKCS#11 URI (pkcs11:token=LABEL)",
			    value);
		break;
	case OP_LISTEN_TCP:
		if ((why = check_hostport(value)) != NULL)
			return parse_error(
			    p, p->lineno, "listen-tcp: '%s': %s", value, why);
		break;
	case OP_CHECKPOINT_INTERVAL:
		if (util_parse_duration(value, &cfg->checkpoint_interval) != 0)
			return parse_error(p, p->lineno,
			    "checkpoint-interval: "
			    "bad duration '%s' (use 30s, 15m, 24h or 7d)",
			    value);
		return 0;
	case OP_CHECKPOINT_OVERLAP:
		if (util_parse_duration(value, &cfg->checkpoint_overlap) != 0 ||
		    cfg->checkpoint_overlap < 60)
			return parse_error(p, p->lineno,
			    "checkpoint-overlap: "
			    "bad duration '%s' (at least 60s; use 15m, 24h "
			    "or 7d)",
			    value);
		return 0;
	case OP_WORKERS:
		if (parse_uint(value, &n) != 0 || n < 1 ||
		    n > CONFIG_WORKERS_MAX)
			return parse_error(p, p->lineno,
			    "workers: '%s' is not "
			    "a number from 1 to %d",
			    value, CONFIG_WORKERS_MAX);
		cfg->workers = n;
		return 0;
	case OP_JWT_ED25519_ALG:
		if (strcmp(value, "EdDSA") != 0 &&
		    strcmp(value, "Ed25519") != 0)
			return parse_error(p, p->lineno,
			    "jwt-ed25519-alg: "
			    "'%s' is neither EdDSA nor Ed25519",
			    value);
		break;
	case OP_PKCS11_ENV:
		return parse_env(p, value);
	case OP_LISTEN_UNIX_MODE:
		/* octal, at most rw for owner, group and others */
		for (n = 0, i = 0; value[i] >= '0' && value[i] <= '7' && i < 4;
		     i++)
			n = n * 8 + (value[i] - '0');
		if (i == 0 || value[i] != '\0' || (n & ~0666) != 0 ||
		    (n & 0600) != 0600)
			return parse_error(p, p->lineno,
			    "listen-unix-mode: '%s' is not an octal mode of "
			    "read and write bits (0600, 0660, 0666)",
			    value);
		cfg->listen_unix_mode = n;
		return 0;
	case OP_LISTEN_UNIX_GROUP:
		if (value[0] == '\0' || strlen(value) > 64 ||
		    strspn(value, "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
			strlen(value))
			return parse_error(p, p->lineno,
			    "listen-unix-group: '%s' is not a group name",
			    value);
		break;
	case OP_MAX_CONNECTIONS:
		if (parse_uint(value, &n) != 0 || n < 1 ||
		    n > CONFIG_CONNECTIONS_MAX)
			return parse_error(p, p->lineno,
			    "max-connections: '%s' is not a number from 1 to "
			    "%d",
			    value, CONFIG_CONNECTIONS_MAX);
		cfg->max_connections = n;
		return 0;
	case OP_REQUEST_TIMEOUT:
		if (util_parse_duration(value, &cfg->request_timeout) != 0 ||
		    cfg->request_timeout < 1 || cfg->request_timeout > 3600)
			return parse_error(p, p->lineno,
			    "request-timeout: bad duration '%s' (1s to 1h)",
			    value);
		return 0;
	default:
		break;
	}
	if ((strp = config_strp(cfg, keywords[kw].op)) == NULL)
		return CUSTODY_E_INTERNAL;
	/* duplicates were refused before, so *strp is still NULL */
	if ((*strp = strdup(value)) == NULL)
		return CUSTODY_E_NOMEM;
	return 0;
}

/* One line, NUL-terminated, without its newline. */
static int
parse_line(struct parser *p, char *line, size_t len)
{
	char *kw, *value, *end;
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)line[i];
		if (c == '\0')
			return parse_error(p, p->lineno, "NUL byte in line");
		if (c == '\r')
			return parse_error(p, p->lineno,
			    "carriage return in "
			    "line (save the file with Unix line endings)");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return parse_error(p, p->lineno,
			    "control character 0x%02x in line", c);
	}
	/* '#' starts a comment only where a word could start */
	for (i = 0; i < len; i++) {
		if (line[i] == '#' && (i == 0 || is_blank(line[i - 1]))) {
			line[i] = '\0';
			len = i;
			break;
		}
	}
	while (len > 0 && is_blank(line[len - 1]))
		line[--len] = '\0';
	for (kw = line; is_blank(*kw); kw++)
		;
	if (*kw == '\0')
		return 0;
	for (end = kw; *end != '\0' && !is_blank(*end); end++)
		;
	for (value = end; is_blank(*value); value++)
		;
	*end = '\0';

	for (i = 0; keywords[i].name != NULL; i++)
		if (strcmp(keywords[i].name, kw) == 0)
			break;
	if (keywords[i].name == NULL)
		return parse_error(p, p->lineno, "unknown keyword '%s'", kw);
	if (*value == '\0')
		return parse_error(p, p->lineno, "%s: missing value", kw);
	if ((keywords[i].flags & KW_MULTI) == 0 &&
	    p->first[keywords[i].op] != 0)
		return parse_error(p, p->lineno,
		    "duplicate keyword '%s' "
		    "(first given on line %zu)",
		    kw, p->first[keywords[i].op]);
	if (p->first[keywords[i].op] == 0)
		p->first[keywords[i].op] = p->lineno;
	return parse_value(p, i, value);
}

/* dir + "/" + file, without doubling a trailing '/' of dir. */
static char *
path_join(const char *dir, const char *file)
{
	size_t dlen = strlen(dir);
	char *s;

	while (dlen > 0 && dir[dlen - 1] == '/')
		dlen--;
	if (asprintf(&s, "%.*s/%s", (int)dlen, dir, file) < 0)
		return NULL;
	return s;
}

static int
set_default(char **strp, const char *value)
{
	if (*strp != NULL)
		return 0;
	if ((*strp = strdup(value)) == NULL)
		return CUSTODY_E_NOMEM;
	return 0;
}

static int
apply_defaults(struct parser *p)
{
	struct config *cfg = p->cfg;
	long ncpu;
	int r;

	if ((r = set_default(&cfg->data_dir, CONFIG_DEFAULT_DATA_DIR)) != 0 ||
	    (r = set_default(&cfg->token, CONFIG_DEFAULT_TOKEN)) != 0 ||
	    (r = set_default(&cfg->jwt_ed25519_alg, CONFIG_DEFAULT_JWT_ALG)) !=
		0)
		return r;
	if (cfg->pin_file == NULL &&
	    (cfg->pin_file = path_join(cfg->data_dir, "user.pin")) == NULL)
		return CUSTODY_E_NOMEM;
	if (cfg->listen_unix == NULL &&
	    (cfg->listen_unix = path_join(cfg->data_dir, "custody.sock")) ==
		NULL)
		return CUSTODY_E_NOMEM;
	if (cfg->checkpoint_interval == 0)
		cfg->checkpoint_interval = 1;
	if (cfg->checkpoint_overlap == 0)
		cfg->checkpoint_overlap = CONFIG_DEFAULT_CHECKPOINT_OVERLAP;
	if (p->first[OP_LISTEN_UNIX_MODE] == 0)
		cfg->listen_unix_mode = 0660;
	if (cfg->max_connections == 0)
		cfg->max_connections = 1024;
	if (cfg->request_timeout == 0)
		cfg->request_timeout = 10;
	if (cfg->workers == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		if (ncpu < 1)
			ncpu = 1;
		if (ncpu > CONFIG_WORKERS_MAX)
			ncpu = CONFIG_WORKERS_MAX;
		cfg->workers = (int)ncpu;
	}
	/* TCP is only ever served with mutual TLS (ARCHITECTURE.md 1). */
	if (cfg->listen_tcp != NULL &&
	    (cfg->tls_cert == NULL || cfg->tls_key == NULL ||
		cfg->tls_client_ca == NULL))
		return parse_error(p, p->first[OP_LISTEN_TCP],
		    "listen-tcp "
		    "needs tls-cert, tls-key and tls-client-ca (TCP is served "
		    "only with mutual TLS)");
	return 0;
}

int
config_parse(const char *name, const char *text, size_t len,
    struct config **cfgp, char *errbuf, size_t errbufsz)
{
	char line[CONFIG_LINE_MAX + 1];
	struct parser p;
	const char *nl = NULL;
	size_t pos, linelen;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    text != NULL || len == 0, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(cfgp != NULL, CUSTODY_E_INVALID_ARG);
	memset(&p, 0, sizeof(p));
	p.name = name != NULL ? name : "(config)";
	p.errbuf = errbuf;
	p.errbufsz = errbufsz;
	errbuf_printf(errbuf, errbufsz, "%s", "");
	if (len > CONFIG_FILE_MAX) {
		r = parse_error(&p, 0, "larger than 1 MiB");
		goto out;
	}
	if ((p.cfg = calloc(1, sizeof(*p.cfg))) == NULL ||
	    (p.cfg->path = strdup(p.name)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	for (pos = 0; pos < len; pos += linelen + (nl != NULL)) {
		p.lineno++;
		nl = memchr(text + pos, '\n', len - pos);
		linelen = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		if (linelen > CONFIG_LINE_MAX) {
			r = parse_error(&p, p.lineno,
			    "line longer than %d "
			    "bytes",
			    CONFIG_LINE_MAX);
			goto out;
		}
		memcpy(line, text + pos, linelen);
		line[linelen] = '\0';
		if ((r = parse_line(&p, line, linelen)) != 0)
			goto out;
	}
	if ((r = apply_defaults(&p)) != 0)
		goto out;
	if (SHA256((const unsigned char *)text, len, p.cfg->sha256) == NULL) {
		r = CUSTODY_E_CRYPTO;
		goto out;
	}
	*cfgp = p.cfg;
	p.cfg = NULL;
out:
	if (r == CUSTODY_E_NOMEM)
		errbuf_printf(errbuf, errbufsz, "%s: out of memory", p.name);
	config_free(p.cfg);
	return r;
}

int
config_load(
    const char *path, struct config **cfgp, char *errbuf, size_t errbufsz)
{
	char *text = NULL, *ntext;
	struct stat st;
	size_t len = 0, cap;
	ssize_t n;
	int fd = -1, r, e;

	CUSTODY_RETURN_VAL_IF_FAIL(path != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(cfgp != NULL, CUSTODY_E_INVALID_ARG);
	errbuf_printf(errbuf, errbufsz, "%s", "");
	/* O_NONBLOCK: a FIFO at the path must not hang us before fstat */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) <
	    0) {
		e = errno;
		errbuf_printf(errbuf, errbufsz, "%s: %s", path, strerror(e));
		log_debug_f("open %s: %s", path, strerror(e));
		r = CUSTODY_E_IO;
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		errbuf_printf(
		    errbuf, errbufsz, "%s: fstat: %s", path, strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		errbuf_printf(errbuf, errbufsz, "%s: not a regular file", path);
		r = CUSTODY_E_CONFIG;
		goto out;
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		errbuf_printf(errbuf, errbufsz, "%s: larger than 1 MiB", path);
		r = CUSTODY_E_CONFIG;
		goto out;
	}
	/*
	 * st_size is a hint: the file may change under us. Read to EOF but
	 * never more than one byte past the limit.
	 */
	cap = (size_t)st.st_size + 1;
	if ((text = malloc(cap)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap > CONFIG_FILE_MAX)
				break;
			cap = cap * 2 > CONFIG_FILE_MAX + 1
				  ? CONFIG_FILE_MAX + 1
				  : cap * 2;
			if ((ntext = realloc(text, cap)) == NULL) {
				r = CUSTODY_E_NOMEM;
				goto out;
			}
			text = ntext;
		}
		if ((n = read(fd, text + len, cap - len)) == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			errbuf_printf(errbuf, errbufsz, "%s: read: %s", path,
			    strerror(errno));
			r = CUSTODY_E_IO;
			goto out;
		}
		len += (size_t)n;
	}
	/* config_parse refuses len > CONFIG_FILE_MAX with the message */
	r = config_parse(path, text, len, cfgp, errbuf, errbufsz);
out:
	if (r == CUSTODY_E_NOMEM)
		errbuf_printf(errbuf, errbufsz, "%s: out of memory", path);
	free(text);
	if (fd >= 0)
		close(fd);
	return r;
}

const char *
config_choose_path(const char *explicit_path)
{
	const char *env;

	if (explicit_path != NULL)
		return explicit_path;
	if ((env = getenv("CUSTODY_CONF")) != NULL && *env != '\0')
		return env;
	return CONFIG_DEFAULT_PATH;
}

int
config_apply_env(const struct config *cfg)
{
	size_t i;
	int e;

	CUSTODY_RETURN_VAL_IF_FAIL(cfg != NULL, CUSTODY_E_INVALID_ARG);
	for (i = 0; i < cfg->nenv; i++) {
		if (setenv(cfg->env[i].name, cfg->env[i].value, 1) != 0) {
			e = errno;
			log_error_f(
			    "setenv %s: %s", cfg->env[i].name, strerror(e));
			return e == ENOMEM ? CUSTODY_E_NOMEM
					   : CUSTODY_E_INVALID_ARG;
		}
		log_debug_f("pkcs11-env: set %s", cfg->env[i].name);
	}
	return 0;
}

const char *
config_env_get(const struct config *cfg, const char *name)
{
	size_t i;

	if (cfg == NULL || name == NULL)
		return NULL;
	for (i = 0; i < cfg->nenv; i++)
		if (strcmp(cfg->env[i].name, name) == 0)
			return cfg->env[i].value;
	return NULL;
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->data_dir);
	free(cfg->pkcs11_module);
	free(cfg->token);
	free(cfg->pin_file);
	free(cfg->policy);
	free(cfg->listen_unix);
	free(cfg->listen_tcp);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_client_ca);
	free(cfg->issuer);
	free(cfg->log_origin);
	free(cfg->jwt_ed25519_alg);
	free(cfg->listen_unix_group);
	for (i = 0; i < cfg->nenv; i++) {
		free(cfg->env[i].name);
		free(cfg->env[i].value);
	}
	free(cfg);
}
