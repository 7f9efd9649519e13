/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* syncfs */
#endif

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "log.h"
#include "logdir.h"
#include "tiles.h"
#include "util.h"

#define PATH_LEN 4096
/* the largest entry bundle: 256 entries of a uint16 length + 65535 bytes */
#define BUNDLE_MAX ((size_t)TILES_WIDTH * (2 + TILES_MAX_ENTRY))
#define MAX_LEVELS 64

/* ---- export ------------------------------------------------------------- */

/* mkdir -p the directories of rel (a relative path) under base. */
static int
make_parents(const char *base, const char *rel, char *path, size_t pathsz)
{
	char *p;

	if ((size_t)snprintf(path, pathsz, "%s/%s", base, rel) >= pathsz)
		return CUSTODY_E_INVALID_ARG;
	for (p = path + strlen(base) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			log_error_f("%s: %s", path, strerror(errno));
			return CUSTODY_E_IO;
		}
		*p = '/';
	}
	return 0;
}

/* Write a new file base/rel (its directories made as needed). */
static int
write_new(const char *base, const char *rel, const void *buf, size_t len)
{
	char path[PATH_LEN];
	int fd, r;

	if ((r = make_parents(base, rel, path, sizeof(path))) != 0)
		return r;
	fd = open(
	    path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error_f("%s: %s", path, strerror(errno));
		return CUSTODY_E_IO;
	}
	r = util_write_all(fd, buf, len);
	if (close(fd) != 0)
		r = CUSTODY_E_IO;
	if (r != 0)
		log_error_f("writing %s: %s", path, strerror(errno));
	return r;
}

/* The process's umask (umask(2) can only be read by setting it). */
static mode_t
current_umask(void)
{
	mode_t m = umask(077);

	umask(m);
	return m;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		log_warn_f("%s: %s", path, strerror(errno));
	return 0;
}

/* May the export go to dir? It must not exist, or be empty. */
static int
dir_usable(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int empty = 1;

	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		log_error_f("%s: %s", dir, strerror(errno));
		return errno == ENOTDIR ? CUSTODY_E_EXISTS : CUSTODY_E_IO;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	if (!empty) {
		log_error_f("%s is not empty", dir);
		return CUSTODY_E_EXISTS;
	}
	return 0;
}

/* The entry bundle of tile t, each leaf checked against its stored hash. */
static int
export_bundle(struct store *st, const struct tiles_tile *t, uint8_t **bundlep,
    size_t *lenp)
{
	struct tiles_entry e[TILES_WIDTH];
	uint8_t *data[TILES_WIDTH] = {0};
	uint8_t hash[MERKLE_HASH_LEN], again[MERKLE_HASH_LEN];
	uint8_t node[MERKLE_HASH_LEN];
	uint64_t seq;
	unsigned i;
	int r = 0;

	for (i = 0; i < t->width && r == 0; i++) {
		seq = t->index * TILES_WIDTH + i;
		r = store_leaf_get(st, seq, &data[i], &e[i].len, hash);
		if (r == CUSTODY_E_NOT_FOUND) {
			log_error_f("leaf %llu is missing from the database: "
				    "it was deleted",
			    (unsigned long long)seq);
			r = CUSTODY_E_PROOF;
		}
		if (r != 0)
			break;
		e[i].data = data[i];
		merkle_leaf_hash(data[i], e[i].len, again);
		if (memcmp(hash, again, sizeof(hash)) != 0) {
			log_error_f("leaf %llu: its bytes do not match its "
				    "stored hash: the database was altered",
			    (unsigned long long)seq);
			r = CUSTODY_E_PROOF;
		} else if ((r = store_node_get(st, 0, seq, node)) == 0 &&
			   memcmp(node, again, sizeof(node)) != 0) {
			log_error_f("leaf %llu: its bytes and hash are not the "
				    "tree's: the database was altered",
			    (unsigned long long)seq);
			r = CUSTODY_E_PROOF;
		}
	}
	if (r == 0)
		r = tiles_bundle_encode(e, t->width, bundlep, lenp);
	for (i = 0; i < t->width; i++)
		free(data[i]);
	return r;
}

/* Every tile of the tree of `size` leaves, into the directory tmp. */
int
logdir_tile(struct store *st, uint64_t size, const struct tiles_tile *t,
    uint8_t **datap, size_t *lenp)
{
	struct merkle_store ms;
	uint8_t *buf;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && t != NULL && datap != NULL && lenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (t->level == TILES_LEVEL_ENTRIES) {
		/* the bundle goes with the level-0 tile of the same N and
		 * width, which must be in the tree (tiles_read checks) */
		if (t->width == 0 || t->width > TILES_WIDTH ||
		    t->index > (size >> TILES_HEIGHT) ||
		    t->index * TILES_WIDTH + t->width > size)
			return CUSTODY_E_INVALID_ARG;
		return export_bundle(st, t, datap, lenp);
	}
	if ((buf = malloc(TILES_MAX_BYTES)) == NULL)
		return CUSTODY_E_NOMEM;
	store_merkle(st, &ms);
	if ((r = tiles_read(&ms, size, t, buf, lenp)) != 0) {
		free(buf);
		return r;
	}
	*datap = buf;
	return 0;
}

static int
export_tiles(struct store *st, uint64_t size, const char *tmp,
    struct logdir_export_stats *stats)
{
	struct tiles_iter it;
	struct tiles_tile t;
	char rel[TILES_PATH_MAX];
	uint8_t *data;
	size_t len;
	int r;

	tiles_iter_init(&it, size, 1);
	while (tiles_iter_next(&it, &t)) {
		if ((r = tiles_path(&t, rel, sizeof(rel))) != 0 ||
		    (r = logdir_tile(st, size, &t, &data, &len)) != 0)
			return r;
		r = write_new(tmp, rel, data, len);
		free(data);
		if (r != 0)
			return r;
		stats->tiles++;
	}
	return 0;
}

/* Every signed checkpoint as checkpoints/<size>. */
static int
export_checkpoints(
    struct store *st, const char *tmp, struct logdir_export_stats *stats)
{
	char rel[64], *note;
	uint8_t root[MERKLE_HASH_LEN];
	uint64_t size = 0;
	size_t len;
	int r;

	for (;;) {
		r = store_checkpoint_next(st, size, &size, root, &note, &len);
		if (r == CUSTODY_E_NOT_FOUND)
			return 0;
		if (r != 0)
			return r;
		snprintf(rel, sizeof(rel), "checkpoints/%llu",
		    (unsigned long long)size);
		r = write_new(tmp, rel, note, len);
		free(note);
		if (r != 0)
			return r;
		stats->checkpoints++;
	}
}

int
logdir_export(
    struct store *st, const char *dir, struct logdir_export_stats *statsp)
{
	struct logdir_export_stats stats = {0};
	struct merkle_store ms;
	char tmp[PATH_LEN], name[PATH_LEN], *note = NULL;
	uint8_t root[MERKLE_HASH_LEN], again[MERKLE_HASH_LEN];
	uint64_t size, total;
	size_t len, n;
	int r, fd, made = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && dir != NULL && *dir != '\0' && statsp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = store_checkpoint_last(st, &size, root, &note, &len)) != 0)
		return r;
	store_merkle(st, &ms);
	if ((r = store_leaf_count(st, &total)) != 0 ||
	    (r = merkle_root(&ms, total < size ? total : size, again)) != 0)
		goto out;
	if (total < size || memcmp(root, again, sizeof(root)) != 0) {
		log_error_f("the stored tree does not give the root of the "
			    "last checkpoint (size %llu)",
		    (unsigned long long)size);
		r = CUSTODY_E_PROOF;
		goto out;
	}
	if ((r = dir_usable(dir)) != 0)
		goto out;
	/* "out/" names the directory "out": the temporary one is a sibling */
	if ((size_t)snprintf(name, sizeof(name), "%s", dir) >= sizeof(name)) {
		r = CUSTODY_E_INVALID_ARG;
		goto out;
	}
	for (n = strlen(name); n > 1 && name[n - 1] == '/'; n--)
		name[n - 1] = '\0';
	dir = name;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", dir) >=
	    sizeof(tmp)) {
		r = CUSTODY_E_INVALID_ARG;
		goto out;
	}
	if (mkdtemp(tmp) == NULL) {
		log_error_f("%s: %s", tmp, strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	made = 1;
	if ((r = export_tiles(st, size, tmp, &stats)) != 0 ||
	    (r = export_checkpoints(st, tmp, &stats)) != 0 ||
	    (r = write_new(tmp, "checkpoint", note, len)) != 0)
		goto out;
	/* on disk before it has its name */
	if ((fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    syncfs(fd) != 0) {
		log_error_f("%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		r = CUSTODY_E_IO;
		goto out;
	}
	close(fd);
	if (chmod(tmp, 0755 & ~current_umask()) != 0 || rename(tmp, dir) != 0) {
		int e = errno;

		log_error_f("%s: %s", dir, strerror(e));
		r = e == ENOTEMPTY || e == EEXIST ? CUSTODY_E_EXISTS
						  : CUSTODY_E_IO;
		goto out;
	}
	made = 0;
	/* the new name on disk too; the export is complete either way */
	(void)util_sync_parent(dir);
	stats.size = size;
	stats.unsigned_leaves = total - size;
	*statsp = stats;
out:
	if (made)
		(void)nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(note);
	return r;
}

/* ---- verify --------------------------------------------------------------
 */

/* A checkpoint whose signature verified. */
/* A checkpoint: verified, or (following a handover) parsed and waiting
 * for the keys that the leaves before it name. */
struct signed_cp {
	uint64_t size;
	uint8_t root[MERKLE_HASH_LEN];
	int in_dir;	  /* has a file under checkpoints/ */
	int verified;	  /* its files' signatures verified */
	uint8_t *note[2]; /* files not yet verified: their bytes (the
			     second: "checkpoint", of the same tree) */
	size_t notelen[2];
};

struct vctx {
	const char *dir;
	struct note_vkey *const *vkeys;
	size_t nvkeys;
	char *msg;
	size_t msgsz;
	/* the tree recomputed from the entries: lv[k] holds the hashes of
	 * its complete subtrees of 2^k leaves, nlv[k] of them */
	uint8_t *lv[MAX_LEVELS];
	uint64_t nlv[MAX_LEVELS];
	unsigned levels;
	struct signed_cp *cps; /* by increasing size */
	size_t ncps;
	char leafmsg[512]; /* the first complaint about a leaf's contents */
	char origin[NOTE_MAX_LINE + 1]; /* of the first checkpoint read */
	uint64_t tiles;
	/* following the checkpoint keys' handover (keys not NULL) */
	logdir_keys_fn keys;
	logdir_leaf_fn fn;
	void *arg;
	uint64_t fed;	    /* leaves handed to fn so far */
	size_t handed_over; /* keys the log handed over to */
};

/* Say what is wrong (the first sentence only); returns r. */
static int say(struct vctx *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
say(struct vctx *c, int r, const char *fmt, ...)
{
	va_list ap;

	if (c->msg != NULL && c->msgsz > 0 && c->msg[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(c->msg, c->msgsz, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* Read dir/rel, at most max bytes. */
static int
read_rel(
    struct vctx *c, const char *rel, size_t max, uint8_t **bufp, size_t *lenp)
{
	char path[PATH_LEN];
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", c->dir, rel) >=
	    sizeof(path))
		return say(c, CUSTODY_E_INVALID_ARG, "%s: path too long", rel);
	r = util_read_file(path, max, bufp, lenp);
	if (r == CUSTODY_E_NOT_FOUND)
		return say(c, r, "%s: missing", rel);
	if (r == CUSTODY_E_TOO_LARGE)
		return say(c, r, "%s: larger than %zu bytes", rel, max);
	if (r != 0)
		return say(c, r, "%s: cannot be read", rel);
	return 0;
}

/* The tiles_source of the directory, for tiles_verify(). */
static int
dir_fetch(void *arg, const struct tiles_tile *t, uint8_t *buf, size_t bufsz,
    size_t *lenp)
{
	struct vctx *c = arg;
	char rel[TILES_PATH_MAX], path[PATH_LEN];
	uint8_t *data;
	size_t len;
	int r;

	if ((r = tiles_path(t, rel, sizeof(rel))) != 0)
		return r;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", c->dir, rel) >=
	    sizeof(path))
		return CUSTODY_E_INVALID_ARG;
	if ((r = util_read_file(path, bufsz, &data, &len)) != 0)
		return r == CUSTODY_E_TOO_LARGE ? CUSTODY_E_PROOF : r;
	memcpy(buf, data, len);
	*lenp = len;
	free(data);
	return 0;
}

/* The merkle_store of the recomputed tree. */
static int
mem_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	const struct vctx *c = arg;

	if (level >= c->levels || index >= c->nlv[level])
		return CUSTODY_E_NOT_FOUND;
	memcpy(out, c->lv[level] + index * MERKLE_HASH_LEN, MERKLE_HASH_LEN);
	return 0;
}

static const char *
cp_name(const struct signed_cp *cp, char *buf, size_t bufsz)
{
	if (!cp->in_dir)
		return "checkpoint";
	snprintf(buf, bufsz, "checkpoints/%llu", (unsigned long long)cp->size);
	return buf;
}

/*
 * Verify the signed checkpoint buf[0..len) (from dir/rel) with vks[0..n)
 * into *out. *unsignedp (when not NULL) is set instead of failing when
 * no line names any of the keys.
 */
static int
verify_note(struct vctx *c, const char *rel, const uint8_t *buf, size_t len,
    struct note_vkey *const *vks, size_t n, struct signed_cp *out,
    int *unsignedp)
{
	struct note_checkpoint *cp = NULL;
	size_t i;
	int *status = NULL, r, good = 0, named = 0;

	if ((status = calloc(n, sizeof(*status))) == NULL)
		return say(c, CUSTODY_E_NOMEM, "out of memory");
	r = note_verify_each((const char *)buf, len, vks, n, status);
	if (r != 0) {
		r = say(c, r, "%s: not a signed note (%s)", rel,
		    custody_strerror(r));
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct note_vkey *vk = vks[i];

		if (status[i] == NOTE_SIG_BAD) {
			r = say(c, CUSTODY_E_SIG_VERIFY,
			    "%s: the signature by %s+%02x%02x%02x%02x does "
			    "not verify",
			    rel, vk->name, vk->key_id[0], vk->key_id[1],
			    vk->key_id[2], vk->key_id[3]);
			goto out;
		}
		good |= status[i] == NOTE_SIG_GOOD;
		named |= status[i] != NOTE_SIG_ABSENT;
	}
	if (!good && !named && unsignedp != NULL) {
		*unsignedp = 1;
		goto out;
	}
	if (!good) {
		r = say(c, CUSTODY_E_SIG_VERIFY,
		    c->keys != NULL
			? "%s: not signed by any of the given verifier keys, "
			  "nor by a checkpoint key that the leaves before it "
			  "hand over to"
			: "%s: not signed by any of the given verifier keys",
		    rel);
		goto out;
	}
	if ((r = note_checkpoint_open((const char *)buf, len, vks, n, &cp)) !=
	    0) {
		r = say(c, r, "%s: the signed text is not a checkpoint", rel);
		goto out;
	}
	/* the signature lines' names are not signed: the origin is, and it
	 * must be the name of a key that signed, and the same throughout */
	for (i = 0; i < n; i++)
		if (status[i] == NOTE_SIG_GOOD &&
		    strcmp(vks[i]->name, cp->origin) == 0)
			break;
	if (i == n) {
		r = say(c, CUSTODY_E_SIG_VERIFY,
		    "%s: its origin '%s' is not the name of a key that "
		    "signed it",
		    rel, cp->origin);
		goto out;
	}
	if (c->origin[0] == '\0')
		snprintf(c->origin, sizeof(c->origin), "%s", cp->origin);
	else if (strcmp(c->origin, cp->origin) != 0) {
		r = say(c, CUSTODY_E_PROOF,
		    "%s: its origin '%s' is not the log's, '%s'", rel,
		    cp->origin, c->origin);
		goto out;
	}
	out->size = cp->size;
	memcpy(out->root, cp->root, MERKLE_HASH_LEN);
	out->verified = 1;
out:
	note_checkpoint_free(cp);
	free(status);
	return r;
}

/*
 * Open the signed checkpoint in dir/rel with the verifier keys. Following a
 * handover, one that no given key signed is parsed and kept for later.
 */
static int
open_signed(struct vctx *c, const char *rel, struct signed_cp *out)
{
	struct note_checkpoint *cp = NULL;
	const uint8_t *nl;
	uint8_t *buf = NULL;
	size_t len;
	int r, unsigned_ = 0;

	memset(out, 0, sizeof(*out));
	if ((r = read_rel(c, rel, NOTE_MAX_LEN, &buf, &len)) != 0)
		return r;
	r = verify_note(c, rel, buf, len, c->vkeys, c->nvkeys, out,
	    c->keys != NULL ? &unsigned_ : NULL);
	if (r != 0 || !unsigned_) {
		free(buf);
		return r;
	}
	/* the text ends at the first blank line (a checkpoint has none) */
	nl = len > 1 ? memmem(buf, len, "\n\n", 2) : NULL;
	if (nl == NULL || note_checkpoint_parse((const char *)buf,
			      (size_t)(nl - buf) + 1, &cp) != 0) {
		free(buf);
		return say(c, CUSTODY_E_PARSE,
		    "%s: the signed text is not a checkpoint", rel);
	}
	out->size = cp->size;
	memcpy(out->root, cp->root, MERKLE_HASH_LEN);
	out->note[0] = buf;
	out->notelen[0] = len;
	note_checkpoint_free(cp);
	return 0;
}

/* A tree size as a file name: decimal, no leading zeros. */
static int
parse_size(const char *s, uint64_t *sizep)
{
	uint64_t v = 0;
	size_t i, len = strlen(s);

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return CUSTODY_E_PARSE;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' ||
		    v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return CUSTODY_E_PARSE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*sizep = v;
	return 0;
}

static int
cp_cmp(const void *a, const void *b)
{
	const struct signed_cp *x = a, *y = b;

	return x->size < y->size ? -1 : x->size > y->size;
}

static int
push_cp(struct vctx *c, const struct signed_cp *cp, size_t *capp)
{
	struct signed_cp *n;

	if (c->ncps == *capp) {
		*capp = *capp ? *capp * 2 : 16;
		if ((n = reallocarray(c->cps, *capp, sizeof(*n))) == NULL)
			return say(c, CUSTODY_E_NOMEM, "out of memory");
		c->cps = n;
	}
	c->cps[c->ncps++] = *cp;
	return 0;
}

/*
 * checkpoint and every checkpoints/<size>, verified, into c->cps (sorted);
 * *top is the last checkpoint, which must be the largest.
 */
static int
load_checkpoints(struct vctx *c, struct signed_cp *top)
{
	struct signed_cp cp;
	struct dirent *de;
	char path[PATH_LEN], rel[NAME_MAX + 16];
	size_t cap = 0;
	uint64_t named;
	DIR *d;
	int r = 0;

	if ((r = open_signed(c, "checkpoint", top)) != 0)
		return r;
	snprintf(path, sizeof(path), "%s/checkpoints", c->dir);
	if ((d = opendir(path)) == NULL && errno != ENOENT)
		return say(c, CUSTODY_E_IO, "checkpoints: %s", strerror(errno));
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(rel, sizeof(rel), "checkpoints/%s", de->d_name);
		if (parse_size(de->d_name, &cp.size) != 0) {
			r = say(c, CUSTODY_E_PARSE,
			    "%s: the name is not a tree size", rel);
			break;
		}
		named = cp.size;
		if ((r = open_signed(c, rel, &cp)) != 0)
			break;
		if (cp.size != named) {
			free(cp.note[0]);
			r = say(c, CUSTODY_E_PARSE,
			    "%s: holds the checkpoint of size %llu", rel,
			    (unsigned long long)cp.size);
			break;
		}
		cp.in_dir = 1;
		if ((r = push_cp(c, &cp, &cap)) != 0) {
			free(cp.note[0]);
			break;
		}
	}
	if (d != NULL)
		closedir(d);
	if (r != 0)
		return r;
	if (c->ncps > 1)
		qsort(c->cps, c->ncps, sizeof(*c->cps), cp_cmp);
	top->in_dir = 0;
	if (c->ncps > 0 && c->cps[c->ncps - 1].size > top->size)
		return say(c, CUSTODY_E_PROOF,
		    "checkpoint (size %llu) is older than checkpoints/%llu: "
		    "it is not the last checkpoint",
		    (unsigned long long)top->size,
		    (unsigned long long)c->cps[c->ncps - 1].size);
	if (c->ncps > 0 && c->cps[c->ncps - 1].size == top->size) {
		struct signed_cp *same = &c->cps[c->ncps - 1];

		if (memcmp(same->root, top->root, MERKLE_HASH_LEN) != 0)
			return say(c, CUSTODY_E_PROOF,
			    "checkpoint and checkpoints/%llu have the same "
			    "size and different roots: the log forked",
			    (unsigned long long)top->size);
		/* one tree, two files: each must verify */
		same->verified &= top->verified;
		same->note[1] = top->note[0];
		same->notelen[1] = top->notelen[0];
		top->note[0] = NULL;
		top->in_dir = 1;
		return 0;
	}
	if ((r = push_cp(c, top, &cap)) == 0)
		top->note[0] = NULL; /* the list's now */
	return r;
}

/* What is wrong with a bundle that tiles_bundle_parse() refused. */
static void
bundle_problem(
    const uint8_t *buf, size_t len, unsigned width, char *out, size_t outsz)
{
	size_t off = 0, n = 0, l;

	while (off + 2 <= len) {
		l = (size_t)buf[off] << 8 | buf[off + 1];
		if (off + 2 + l > len) {
			snprintf(out, outsz,
			    "entry %zu is cut short (%zu of %zu bytes)", n,
			    len - off - 2, l);
			return;
		}
		off += 2 + l;
		n++;
	}
	if (off != len)
		snprintf(out, outsz, "a stray byte at its end");
	else if (n < width)
		snprintf(out, outsz,
		    "%zu entries where %u are due: leaves "
		    "are missing",
		    n, width);
	else
		snprintf(out, outsz, "%zu entries where %u are due", n, width);
}

/* Is the entry an audit leaf (FORMATS.md section 2) with seq == its index? */
static void
check_leaf(struct vctx *c, uint64_t seq, const char *rel, unsigned i,
    const struct tiles_entry *e)
{
	json_error_t err;
	json_t *o, *v;
	const char *why = NULL;

	if (c->leafmsg[0] != '\0')
		return;
	o = json_loadb(
	    (const char *)e->data, e->len, JSON_REJECT_DUPLICATES, &err);
	if (o == NULL || !json_is_object(o) || e->len == 0 ||
	    e->data[e->len - 1] != '}')
		why = "is not one JSON object";
	else if ((v = json_object_get(o, "v")) == NULL || !json_is_integer(v) ||
		 json_integer_value(v) != 1)
		why = "is not a version 1 leaf (\"v\":1)";
	else if ((v = json_object_get(o, "seq")) == NULL ||
		 !json_is_integer(v) || json_integer_value(v) < 0 ||
		 (uint64_t)json_integer_value(v) != seq)
		why = "has another seq than its index: a leaf was removed, "
		      "added or moved";
	else if (!json_is_string(json_object_get(o, "time")) ||
		 !json_is_string(json_object_get(o, "event")))
		why = "lacks its time or event";
	json_decref(o);
	if (why != NULL)
		snprintf(c->leafmsg, sizeof(c->leafmsg),
		    "leaf %llu (%s, entry %u) %s", (unsigned long long)seq, rel,
		    i, why);
}

/* Read every entry bundle of the tree of `size` leaves into lv[0]. */
static int
read_entries(struct vctx *c, uint64_t size)
{
	struct tiles_entry e[TILES_WIDTH];
	struct tiles_iter it;
	struct tiles_tile t;
	char rel[TILES_PATH_MAX], why[128];
	uint8_t *buf;
	uint64_t seq;
	size_t len;
	unsigned i;
	int r;

	if (size > SIZE_MAX / (4 * MERKLE_HASH_LEN) ||
	    (c->lv[0] = malloc(size ? size * MERKLE_HASH_LEN : 1)) == NULL)
		return say(c, CUSTODY_E_NOMEM,
		    "a log of %llu leaves is too large to verify here",
		    (unsigned long long)size);
	c->nlv[0] = size;
	c->levels = 1;
	tiles_iter_init(&it, size, 1);
	while (tiles_iter_next(&it, &t) && t.level == TILES_LEVEL_ENTRIES) {
		if ((r = tiles_path(&t, rel, sizeof(rel))) != 0)
			return say(c, r, "tile path");
		if ((r = read_rel(c, rel, BUNDLE_MAX, &buf, &len)) != 0) {
			if (r == CUSTODY_E_NOT_FOUND)
				snprintf(c->msg, c->msgsz,
				    "%s: missing (leaves %llu to %llu)", rel,
				    (unsigned long long)t.index * TILES_WIDTH,
				    (unsigned long long)t.index * TILES_WIDTH +
					t.width - 1);
			return r;
		}
		if (tiles_bundle_parse(buf, len, t.width, e) != 0) {
			bundle_problem(buf, len, t.width, why, sizeof(why));
			free(buf);
			return say(
			    c, CUSTODY_E_PARSE, "%s: malformed: %s", rel, why);
		}
		for (i = 0; i < t.width; i++) {
			seq = t.index * TILES_WIDTH + i;
			merkle_leaf_hash(e[i].data, e[i].len,
			    c->lv[0] + seq * MERKLE_HASH_LEN);
			check_leaf(c, seq, rel, i, &e[i]);
		}
		free(buf);
		c->tiles++;
	}
	return 0;
}

/* The complete subtrees of every level above the leaves. */
static int
build_levels(struct vctx *c)
{
	const uint8_t *lo;
	uint64_t i, n;
	unsigned k;

	for (k = 1; k < MAX_LEVELS && c->nlv[k - 1] >= 2; k++) {
		n = c->nlv[k - 1] / 2;
		if ((c->lv[k] = malloc(n * MERKLE_HASH_LEN)) == NULL)
			return say(c, CUSTODY_E_NOMEM, "out of memory");
		lo = c->lv[k - 1];
		for (i = 0; i < n; i++)
			merkle_node_hash(lo + 2 * i * MERKLE_HASH_LEN,
			    lo + (2 * i + 1) * MERKLE_HASH_LEN,
			    c->lv[k] + i * MERKLE_HASH_LEN);
		c->nlv[k] = n;
		c->levels = k + 1;
	}
	return 0;
}

/*
 * The entries do not give the signed root: find out why. If the hash tiles
 * are those of the signed tree, they name the altered leaf.
 */
static int
locate(struct vctx *c, const struct signed_cp *top)
{
	uint8_t buf[TILES_MAX_BYTES];
	struct tiles_source src = {dir_fetch, c};
	struct tiles_iter it;
	struct tiles_tile t, bad;
	char rel[TILES_PATH_MAX], erel[TILES_PATH_MAX], name[64];
	uint64_t seq;
	size_t len;
	unsigned i;
	int r;

	cp_name(top, name, sizeof(name));
	r = tiles_verify(&src, top->size, top->root, &bad);
	if (r == CUSTODY_E_NOMEM)
		return say(c, r, "out of memory");
	if (r != 0 && bad.level == TILES_LEVEL_ROOT)
		return say(c, CUSTODY_E_PROOF,
		    "neither the entries nor the hash tiles give the root "
		    "signed in %s: the log was altered after it was signed",
		    name);
	if (r != 0) {
		tiles_path(&bad, rel, sizeof(rel));
		if (r == CUSTODY_E_NOT_FOUND)
			return say(c, r, "%s: missing", rel);
		return say(c, CUSTODY_E_PROOF,
		    "the entries do not give the root signed in %s, and %s "
		    "does not match it either: the log was altered after "
		    "it was signed",
		    name, rel);
	}
	/* the hash tiles are the signed tree's: compare the leaves */
	tiles_iter_init(&it, top->size, 0);
	while (tiles_iter_next(&it, &t) && t.level == 0) {
		if ((r = dir_fetch(c, &t, buf, sizeof(buf), &len)) != 0)
			return say(c, r, "a hash tile cannot be read");
		for (i = 0; i < t.width; i++) {
			seq = t.index * TILES_WIDTH + i;
			if (memcmp(c->lv[0] + seq * MERKLE_HASH_LEN,
				buf + i * MERKLE_HASH_LEN,
				MERKLE_HASH_LEN) == 0)
				continue;
			t.level = TILES_LEVEL_ENTRIES;
			tiles_path(&t, erel, sizeof(erel));
			return say(c, CUSTODY_E_PROOF,
			    "leaf %llu (%s, entry %u) was altered: its hash "
			    "is not the one the tree signed in %s holds",
			    (unsigned long long)seq, erel, i, name);
		}
	}
	return say(c, CUSTODY_E_PROOF,
	    "the entries do not give the root signed in %s", name);
}

/* Every hash tile of the directory against the recomputed tree. */
static int
compare_tiles(struct vctx *c, uint64_t size)
{
	uint8_t want[TILES_MAX_BYTES], have[TILES_MAX_BYTES];
	struct merkle_store ms = {mem_get, c};
	struct tiles_iter it;
	struct tiles_tile t;
	char rel[TILES_PATH_MAX];
	size_t wlen, hlen;
	unsigned i;
	int r;

	tiles_iter_init(&it, size, 0);
	while (tiles_iter_next(&it, &t)) {
		tiles_path(&t, rel, sizeof(rel));
		if ((r = tiles_read(&ms, size, &t, want, &wlen)) != 0)
			return say(c, r, "%s: cannot be recomputed", rel);
		r = dir_fetch(c, &t, have, sizeof(have), &hlen);
		if (r == CUSTODY_E_NOT_FOUND)
			return say(c, r, "%s: missing", rel);
		if (r != 0 || hlen != wlen)
			return say(c, CUSTODY_E_PROOF, "%s: not %zu bytes long",
			    rel, wlen);
		for (i = 0; i < t.width; i++)
			if (memcmp(want + i * MERKLE_HASH_LEN,
				have + i * MERKLE_HASH_LEN,
				MERKLE_HASH_LEN) != 0)
				return say(c, CUSTODY_E_PROOF,
				    "%s: hash %u differs from the one "
				    "recomputed from the entries",
				    rel, i);
		c->tiles++;
	}
	return 0;
}

/* Each checkpoint's root, and consistency between successive ones. */
static int
check_checkpoints(struct vctx *c)
{
	uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN], root[MERKLE_HASH_LEN];
	struct merkle_store ms = {mem_get, c};
	const struct signed_cp *a, *b;
	char na[64], nb[64];
	size_t i, plen;
	int r;

	for (i = 0; i < c->ncps; i++) {
		b = &c->cps[i];
		cp_name(b, nb, sizeof(nb));
		if ((r = merkle_root(&ms, b->size, root)) != 0)
			return say(
			    c, r, "%s: its root cannot be recomputed", nb);
		if (memcmp(root, b->root, MERKLE_HASH_LEN) != 0)
			return say(c, CUSTODY_E_PROOF,
			    "%s: its root is not that of leaves 0 to %llu: "
			    "the log was rewritten after it was signed",
			    nb, (unsigned long long)b->size - 1);
		if (i == 0 || (a = &c->cps[i - 1])->size == 0)
			continue;
		cp_name(a, na, sizeof(na));
		if ((r = merkle_consistency_proof(
			 &ms, a->size, b->size, proof, &plen)) != 0 ||
		    (r = merkle_verify_consistency(a->size, b->size, a->root,
			 b->root, (const uint8_t(*)[MERKLE_HASH_LEN])proof,
			 plen)) != 0)
			return say(c, CUSTODY_E_PROOF,
			    "%s and %s are not consistent", na, nb);
	}
	return 0;
}

/*
 * Hand leaves c->fed to end - 1 of the verified tree of `size` leaves to fn:
 * the entries are read again, and each leaf checked against the hash that
 * verified.
 */
static int
feed_leaves(
    struct vctx *c, uint64_t size, uint64_t end, logdir_leaf_fn fn, void *arg)
{
	struct tiles_entry e[TILES_WIDTH];
	struct tiles_iter it;
	struct tiles_tile t;
	char rel[TILES_PATH_MAX];
	uint8_t *buf, h[MERKLE_HASH_LEN];
	uint64_t seq;
	size_t len;
	unsigned i;
	int r = 0;

	tiles_iter_init(&it, size, 1);
	while (r == 0 && c->fed < end && tiles_iter_next(&it, &t) &&
	       t.level == TILES_LEVEL_ENTRIES) {
		if ((t.index + 1) * TILES_WIDTH <= c->fed)
			continue;
		if ((r = tiles_path(&t, rel, sizeof(rel))) != 0)
			return say(c, r, "tile path");
		if ((r = read_rel(c, rel, BUNDLE_MAX, &buf, &len)) != 0)
			return r;
		if (tiles_bundle_parse(buf, len, t.width, e) != 0) {
			free(buf);
			return say(c, CUSTODY_E_PROOF,
			    "%s changed while the log was verified", rel);
		}
		for (i = 0; i < t.width && r == 0; i++) {
			seq = t.index * TILES_WIDTH + i;
			if (seq < c->fed || seq >= end)
				continue;
			merkle_leaf_hash(e[i].data, e[i].len, h);
			if (memcmp(h, c->lv[0] + seq * MERKLE_HASH_LEN,
				MERKLE_HASH_LEN) != 0)
				r = say(c, CUSTODY_E_PROOF,
				    "leaf %llu (%s, entry %u) changed while "
				    "the log was verified",
				    (unsigned long long)seq, rel, i);
			else if ((r = fn(arg, seq, e[i].data, e[i].len)) != 0)
				say(c, r, "leaf %llu: %s",
				    (unsigned long long)seq,
				    custody_strerror(r));
			else
				c->fed = seq + 1;
		}
		free(buf);
	}
	return r;
}

/*
 * The checkpoints that no given key signed, in size order: each is verified
 * with the given keys and those that the leaves of the largest verified
 * checkpoint below it hand over to (fed to c->fn first). Roots and
 * consistency were checked before, so those leaves are the signed ones.
 */
static int
follow_handover(struct vctx *c, uint64_t top_size)
{
	struct note_vkey **all = NULL, *const * handed;
	struct signed_cp *cp;
	char name[64];
	uint64_t below = 0;
	size_t i, j, nh, n;
	int r = 0, any = 0;

	for (i = 0; i < c->ncps && r == 0; i++) {
		cp = &c->cps[i];
		if (cp->verified) {
			below = cp->size;
			any = 1;
			continue;
		}
		cp_name(cp, name, sizeof(name));
		if (!any)
			return say(c, CUSTODY_E_SIG_VERIFY,
			    "%s: not signed by any of the given verifier keys "
			    "(a handover is followed from a checkpoint that "
			    "they sign: give the key of the log's first "
			    "checkpoints)",
			    name);
		if ((r = feed_leaves(c, top_size, below, c->fn, c->arg)) != 0)
			break;
		handed = NULL;
		nh = 0;
		if ((r = c->keys(c->arg, c->origin, c->vkeys, c->nvkeys,
			 &handed, &nh)) != 0) {
			r = say(c, r, "%s: the keys handed over to: %s", name,
			    custody_strerror(r));
			break;
		}
		n = c->nvkeys + nh;
		free(all);
		if ((all = calloc(n, sizeof(*all))) == NULL) {
			r = say(c, CUSTODY_E_NOMEM, "out of memory");
			break;
		}
		memcpy(all, c->vkeys, c->nvkeys * sizeof(*all));
		if (nh > 0)
			memcpy(all + c->nvkeys, handed, nh * sizeof(*all));
		if (nh > c->handed_over)
			c->handed_over = nh;
		for (j = 0; j < 2 && r == 0; j++) {
			struct signed_cp v;
			const char *nm = j == 0 ? name : "checkpoint";

			if (cp->note[j] == NULL)
				continue;
			memset(&v, 0, sizeof(v));
			if ((r = verify_note(c, nm, cp->note[j], cp->notelen[j],
				 all, n, &v, NULL)) != 0)
				break;
			if (v.size != cp->size ||
			    memcmp(v.root, cp->root, MERKLE_HASH_LEN) != 0)
				r = say(c, CUSTODY_E_PROOF,
				    "%s: its checkpoint is not the one "
				    "checked before",
				    nm);
			free(cp->note[j]);
			cp->note[j] = NULL;
		}
		if (r != 0)
			break;
		cp->verified = 1;
		below = cp->size;
	}
	free(all);
	return r;
}

int
logdir_verify(const char *dir, struct note_vkey *const *vkeys, size_t nvkeys,
    struct logdir_result *resp, char *msg, size_t msgsz)
{
	return logdir_verify_leaves(
	    dir, vkeys, nvkeys, NULL, NULL, resp, msg, msgsz);
}

int
logdir_verify_leaves(const char *dir, struct note_vkey *const *vkeys,
    size_t nvkeys, logdir_leaf_fn fn, void *arg, struct logdir_result *resp,
    char *msg, size_t msgsz)
{
	return logdir_verify_follow(
	    dir, vkeys, nvkeys, fn, NULL, arg, resp, msg, msgsz);
}

int
logdir_verify_follow(const char *dir, struct note_vkey *const *vkeys,
    size_t nvkeys, logdir_leaf_fn fn, logdir_keys_fn keys, void *arg,
    struct logdir_result *resp, char *msg, size_t msgsz)
{
	struct vctx c;
	struct signed_cp top;
	uint8_t root[MERKLE_HASH_LEN];
	struct merkle_store ms;
	unsigned k;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    dir != NULL && vkeys != NULL && nvkeys > 0 && resp != NULL &&
		msg != NULL && msgsz > 0 && (keys == NULL || fn != NULL),
	    CUSTODY_E_INVALID_ARG);
	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.vkeys = vkeys;
	c.nvkeys = nvkeys;
	c.msg = msg;
	c.msgsz = msgsz;
	c.keys = keys;
	c.fn = fn;
	c.arg = arg;
	msg[0] = '\0';
	memset(&top, 0, sizeof(top));
	ms.get = mem_get;
	ms.arg = &c;
	if ((r = load_checkpoints(&c, &top)) != 0 ||
	    (r = read_entries(&c, top.size)) != 0 ||
	    (r = build_levels(&c)) != 0)
		goto out;
	if ((r = merkle_root(&ms, top.size, root)) != 0) {
		r = say(&c, r, "the root cannot be recomputed");
		goto out;
	}
	if (memcmp(root, top.root, MERKLE_HASH_LEN) != 0) {
		r = locate(&c, &top);
		goto out;
	}
	if ((r = compare_tiles(&c, top.size)) != 0 ||
	    (r = check_checkpoints(&c)) != 0)
		goto out;
	if (c.leafmsg[0] != '\0') {
		r = say(&c, CUSTODY_E_PARSE, "%s", c.leafmsg);
		goto out;
	}
	if (keys != NULL && (r = follow_handover(&c, top.size)) != 0)
		goto out;
	if (fn != NULL &&
	    (r = feed_leaves(&c, top.size, top.size, fn, arg)) != 0)
		goto out;
	resp->size = top.size;
	memcpy(resp->root, top.root, MERKLE_HASH_LEN);
	resp->checkpoints = c.ncps;
	resp->first_size = c.cps[0].size;
	resp->tiles = c.tiles;
	resp->handed_over = c.handed_over;
out:
	free(top.note[0]);
	for (k = 0; k < c.ncps; k++) {
		free(c.cps[k].note[0]);
		free(c.cps[k].note[1]);
	}
	for (k = 0; k < c.levels; k++)
		free(c.lv[k]);
	if (c.levels == 0)
		free(c.lv[0]);
	free(c.cps);
	return r;
}
