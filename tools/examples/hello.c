/* hello.c — the smallest nuproc program: spawn, yield, exit.
 *
 * Build against the installed library:
 *   cc -O2 hello.c $(pkg-config --static --cflags --libs nuproc) -o hello
 */
#include <nuproc.h>
#include <stdio.h>

static void worker(void *arg)
{
	int id = (int)(long)arg;
	for (int i = 0; i < 3; i++) {
		printf("worker %d, step %d, on scheduler %d\n", id, i,
		       nu_scheduler_id());
		nu_yield(); /* let the others run */
	}
	/* returning is a normal exit */
}

static void main_process(void *arg)
{
	(void)arg;
	for (long i = 0; i < 3; i++) {
		nu_pid pid = nu_spawn(worker, (void *)i);
		if (pid < 0) {
			fprintf(stderr, "spawn: %s\n", nu_strerror((int)pid));
			nu_exit(nu_int(1));
		}
	}
	while (nu_process_count() > 1) /* wait for the workers */
		nu_yield();
	nu_exit(nu_int(0)); /* nu_start returns 0 */
}

int main(void)
{
	nu_config cfg;
	nu_config_init(&cfg);
	cfg.schedulers = 1; /* one scheduler: the output interleaves in order */
	int rc = nu_start(&cfg, main_process, NULL);
	if (rc < 0) {
		fprintf(stderr, "nu_start: %s\n", nu_strerror(rc));
		return 1;
	}
	return rc;
}
