/*
 * Runs a fuzz target over files (its corpus) without libFuzzer: how make test replays the corpora
 * with the ordinary compiler.  Without arguments it reads every file of CORPUS_DIR.  Prints a
 * cmocka-style summary: one test per file.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static int replay(int argc, char **argv);

static int
run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **argv = NULL;
	int argc = 1, status;

	if (d == NULL) {
		fprintf(stderr, "replay: cannot open %s\n", dir);
		printf("[  FAILED  ] 1 test(s).\n");
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		char **more;

		if (e->d_name[0] == '.')
			continue;
		more = realloc(argv, (size_t)(argc + 1) * sizeof(*argv));
		if (more == NULL)
			break;
		argv = more;
		argv[argc] = malloc(strlen(dir) + strlen(e->d_name) + 2);
		if (argv[argc] == NULL)
			break;
		snprintf(argv[argc], strlen(dir) + strlen(e->d_name) + 2, "%s/%s", dir, e->d_name);
		argc++;
	}
	closedir(d);
	status = replay(argc, argv);
	for (int i = 1; i < argc; i++)
		free(argv[i]);
	free(argv);
	return status;
}

int
main(int argc, char **argv)
{
	return argc > 1 ? replay(argc, argv) : run_dir(CORPUS_DIR);
}

static int
replay(int argc, char **argv)
{
	int passed = 0, failed = 0;

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf;
		long n;

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
			fprintf(stderr, "replay: cannot read %s\n", argv[i]);
			failed++;
			if (f != NULL)
				fclose(f);
			continue;
		}
		buf = malloc((size_t)n + 1);
		if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
			fprintf(stderr, "replay: cannot read %s\n", argv[i]);
			failed++;
		} else {
			LLVMFuzzerTestOneInput(buf, (size_t)n);	/* a crash or sanitizer report ends the run */
			passed++;
		}
		free(buf);
		fclose(f);
	}
	printf("[  PASSED  ] %d test(s).\n", passed);
	if (failed > 0)
		printf("[  FAILED  ] %d test(s).\n", failed);
	return failed > 0;
}
