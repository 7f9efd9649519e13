/* SPDX-License-Identifier: Apache-2.0 */
/*
 * custodyd: the custody service. It holds the data directory (its lock, the
 * store, the token), records its run in the audit log (service.start,
 * service.stop, unclean shutdowns) and signs a checkpoint of the log every
 * checkpoint-interval when the log has grown, and a last one when it stops.
 *
 * It serves the HTTP API of api.h on its listen-unix socket.
 *
 * Signals are blocked in every thread and taken by the main thread with
 * sigwait(): SIGTERM and SIGINT drain the API and stop the service, SIGHUP
 * reloads the policy.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "service.h"
#include "token.h"
#include "util.h"

#define EXIT_USAGE 2

static const char *progname = "custodyd";

static const char help[] =
    "usage: custodyd [-c FILE] [--daemon [--pid-file FILE]] [-v]\n"
    "\n"
    "The custody service: holds the data directory, its token and its audit\n"
    "log; signs a checkpoint of the log every checkpoint-interval when it\n"
    "has grown, and a last one when it stops (SIGTERM or SIGINT).\n"
    "\n"
    "Options:\n"
    "  -c FILE           configuration file [$CUSTODY_CONF, "
    "else " CONFIG_DEFAULT_PATH "]\n"
    "  -d, --daemon      detach once ready (log to syslog); the default is\n"
    "                    to stay in the foreground and log to stderr\n"
    "  --pid-file FILE   with --daemon: write the pid there once ready\n"
    "  -v                more diagnostics (-vv: every PKCS#11 call)\n"
    "  --version         print the version\n"
    "  --help            this text\n"
    "\n"
    "See custodyd(8) and custody.conf(5).\n";

/*
 * Detach: fork twice (the service is no session leader and has no
 * terminal) and return in the grandchild; the original process waits for
 * one status byte on the pipe (0: ready) and exits with it, so that the
 * caller of custodyd --daemon learns whether the service started. *fdp is
 * the pipe's write end, for ready().
 */
static int
daemonize(int *fdp)
{
	int p[2];
	pid_t pid;
	ssize_t n;
	unsigned char st = 1;

	if (pipe2(p, O_CLOEXEC) != 0) {
		fprintf(stderr, "%s: pipe: %s\n", progname, strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		fprintf(stderr, "%s: fork: %s\n", progname, strerror(errno));
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		do
			n = read(p[0], &st, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? st : 1);
	}
	close(p[0]);
	if (setsid() < 0 || (pid = fork()) < 0)
		_exit(1);
	if (pid > 0)
		_exit(0); /* the first child; the grandchild holds the pipe */
	if (chdir("/") != 0)
		_exit(1);
	*fdp = p[1];
	return 0;
}

/* Tell the waiting parent (status 0: ready) and leave the terminal. */
static void
ready(int fd, unsigned char status)
{
	int null;

	if (fd < 0)
		return;
	if (status == 0 && (null = open("/dev/null", O_RDWR)) >= 0) {
		(void)dup2(null, STDIN_FILENO);
		(void)dup2(null, STDOUT_FILENO);
		(void)dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	(void)util_write_all(fd, &status, 1);
	close(fd);
}

/*
 * Write the pid atomically: a new temporary file (never through a link an
 * attacker left in a shared directory), mode 0644, renamed into place.
 */
static int
write_pid_file(const char *path)
{
	char tmp[4096], buf[32];
	int fd, n, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return CUSTODY_E_INVALID_ARG;
	(void)unlink(tmp);
	if ((fd = open(tmp,
		 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) <
	    0) {
		log_error_f("%s: %s", tmp, strerror(errno));
		return CUSTODY_E_IO;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	r = util_write_all(fd, buf, (size_t)n);
	if (r == 0 && fchmod(fd, 0644) != 0)
		r = CUSTODY_E_IO;
	if (close(fd) != 0 && r == 0)
		r = CUSTODY_E_IO;
	if (r == 0 && rename(tmp, path) != 0) {
		log_error_f("%s: %s", path, strerror(errno));
		r = CUSTODY_E_IO;
	}
	if (r != 0)
		(void)unlink(tmp);
	return r;
}

/* --daemon: stderr until ready (then /dev/null), and syslog throughout;
 * one handler from the start, so no thread ever sees it change. */
static void
log_both(int level, const char *func, const char *msg, void *arg)
{
	custody_log_stderr(level, func, msg, arg);
	custody_log_syslog(level, func, msg, arg);
}

/* Say why the service cannot start, with what to do about it. */
static void
start_error(const struct config *cfg, const char *what, int r)
{
	const char *hint = custody_errhint(r);

	if (r == CUSTODY_E_STATE || r == CUSTODY_E_PROOF) {
		log_error_f("the audit log in %s is older than, or not "
			    "consistent with, a checkpoint signed before: "
			    "refusing to use it (restore the database that "
			    "goes with %s/checkpoint, or ask the auditors)",
		    cfg->data_dir, cfg->data_dir);
		return;
	}
	log_error_f("%s: %s%s%s", what, custody_strerror(r),
	    hint != NULL ? ". " : "", hint != NULL ? hint : "");
}

#ifdef CUSTODY_TEST_HOOKS
/*
 * custodyd-test only (never installed): the tests' hooks into a running
 * daemon. CUSTODY_FAILPOINT=name kills the process at that step
 * (util_failpoint()); CUSTODY_TEST_CLOCK=FILE moves the service's clock by
 * the number of seconds FILE holds, read again every 100 ms, so that a test
 * can move through days of key lifetimes.
 */
static const char *clock_file;

static void
clock_read(void)
{
	char buf[32];
	long long v;
	ssize_t n;
	int fd;

	if ((fd = open(clock_file, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	if (sscanf(buf, "%lld", &v) == 1)
		util_clock_set_offset(v * 1000);
}

static void *
clock_main(void *arg)
{
	struct timespec ts = {0, 100 * 1000 * 1000};

	(void)arg;
	for (;;) {
		clock_read();
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void
test_hooks(void)
{
	const char *fp = getenv("CUSTODY_FAILPOINT");
	pthread_t th;

	if (fp != NULL && *fp != '\0')
		util_failpoint_arm(fp);
	if ((clock_file = getenv("CUSTODY_TEST_CLOCK")) != NULL) {
		clock_read();
		if (pthread_create(&th, NULL, clock_main, NULL) == 0)
			pthread_detach(th);
	}
}
#endif

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"daemon", no_argument, NULL, 'd'},
	    {"pid-file", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *conf_path = NULL, *pid_file = NULL;
	struct config *cfg = NULL;
	struct service *sv = NULL;
	struct api *api = NULL;
	struct service_run_info info;
	struct service_checkpoints cps;
	sigset_t sigs;
	char err[512];
	uint64_t size = 0;
	const char *stage = NULL;
	int ch, verbose = 0, detach = 0, readyfd = -1, sig, r, ex = 1;
	int pid_written = 0;
	long n;

	util_harden();
	while ((ch = getopt_long(argc, argv, "c:dvh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'd':
			detach = 1;
			break;
		case 'p':
			pid_file = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'V':
			printf("custodyd %s\n", CUSTODY_VERSION);
			return 0;
		default:
			fputs(help, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", progname,
		    argv[optind]);
		return EXIT_USAGE;
	}
	if (pid_file != NULL && (!detach || pid_file[0] != '/')) {
		fprintf(stderr,
		    "%s: --pid-file needs --daemon and an absolute path\n",
		    progname);
		return EXIT_USAGE;
	}
	if (detach)
		openlog(progname, LOG_PID, LOG_DAEMON);
	custody_log_set(detach ? log_both : custody_log_stderr,
	    verbose >= 2   ? LOG_DEBUG
	    : verbose == 1 ? LOG_INFO
			   : LOG_NOTICE,
	    (void *)progname);
	conf_path = config_choose_path(conf_path);
	if (config_load(conf_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", progname, err);
		return 1;
	}
	/* before any thread and before the token: PKCS#11 is initialised
	 * after daemonising, and every thread inherits the blocked signals */
	if (detach && daemonize(&readyfd) != 0)
		goto out;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

#ifdef CUSTODY_TEST_HOOKS
	test_hooks();
#endif
	if ((r = service_open(cfg, SERVICE_TOKEN, &sv, &stage)) != 0) {
		if (r == CUSTODY_E_NOT_INITIALIZED)
			log_error_f("%s is not initialised: run 'custody "
				    "init' first",
			    cfg->data_dir);
		else if (r != CUSTODY_E_CONFIG) /* CONFIG: logged already */
			start_error(cfg, stage, r);
		goto out;
	}
	/* the pid is known: a pid file that cannot be written stops us
	 * before anything is in the log */
	if (pid_file != NULL) {
		if (write_pid_file(pid_file) != 0)
			goto out;
		pid_written = 1;
	}
	/* the socket before the start leaf: a socket that cannot be had
	 * (another server on it, a bad group) leaves nothing in the log */
	if ((r = api_open(sv, cfg, &api)) != 0) {
		start_error(cfg, "cannot serve the API", r);
		goto out;
	}
	if ((r = service_start(sv, CUSTODY_VERSION, util_now(), &info)) != 0) {
		if (r != CUSTODY_E_CONFIG)
			start_error(cfg, "cannot start", r);
		goto out;
	}
	if ((r = api_run(api)) != 0) {
		start_error(cfg, "cannot start the API", r);
		api_drain(api, 0);
		api_close(api);
		api = NULL;
		(void)service_stop(sv, util_now(), NULL);
		goto out;
	}
	log_notice_f("ready: %s on token '%s' (%s), log of %llu leaves, "
		     "checkpoints every %llds, API on %s%s%s%s with %d workers",
	    cfg->data_dir, token_label(service_token(sv)),
	    token_backend(service_token(sv)),
	    (unsigned long long)audit_size(service_audit(sv)),
	    (long long)cfg->checkpoint_interval, cfg->listen_unix,
	    cfg->listen_tcp != NULL ? " and " : "",
	    cfg->listen_tcp != NULL ? cfg->listen_tcp : "",
	    cfg->listen_tcp != NULL ? " (mutual TLS)" : "", cfg->workers);
	if (detach) {
		ready(readyfd, 0);
		readyfd = -1;
	}
	for (;;) {
		if ((r = sigwait(&sigs, &sig)) != 0) {
			log_error_f("sigwait: %s", strerror(r));
			break;
		}
		if (sig == SIGHUP) {
			if (service_policy_reload(sv, err, sizeof(err)) != 0)
				log_error_f("SIGHUP: %s; the policy in force "
					    "stays",
				    err);
			continue;
		}
		log_notice_f("%s: stopping", strsignal(sig));
		break;
	}
	/* answer what is in progress (Connection: close), then no more */
	if ((n = api_drain(api, API_DRAIN_TIMEOUT_MS)) > 0)
		log_warn_f("%ld requests still in progress after %ds: they "
			   "finish, but their answers are not sent",
		    n, API_DRAIN_TIMEOUT_MS / 1000);
	api_close(api);
	api = NULL;
	if ((r = service_stop(sv, util_now(), &size)) == 0) {
		service_checkpoints(sv, &cps);
		log_notice_f("stopped: final checkpoint at %llu leaves (%llu "
			     "signed by this run)",
		    (unsigned long long)size, (unsigned long long)cps.made);
		ex = 0;
	}
out:
	api_close(api);
	/* the lock is released here: only then is the pid file gone, so
	 * whoever waits for it finds the data directory free */
	service_close(sv);
	if (pid_written)
		(void)unlink(pid_file);
	ready(readyfd, 1);
	config_free(cfg);
	return ex;
}
