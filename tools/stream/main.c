/*
 * xen-stream: look into a state stream written by save, live update or
 * migration.
 *
 *   xen-stream dump FILE [--pages]   header, every record decoded, summary
 *   xen-stream verify FILE           exit 0 if sound, else 1 and the first
 *                                    problem as "FILE: offset N: reason"
 *   xen-stream records               the record table and layouts as JSON
 *
 * Exit status: 0 fine, 1 a problem in the stream, 2 usage, 66 the file
 * cannot be read.  FILE may be "-" for standard input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stream.h"
#include "stream_tool.h"

#define EXIT_STREAM	1
#define EXIT_USAGE	2
#define EXIT_NOINPUT	66	/* sysexits.h EX_NOINPUT */

static const char *prog = "xen-stream";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s dump FILE [--pages]\n"
		"       %s verify FILE\n"
		"  dump    print the header, every record and a summary\n"
		"          (--pages: every pfn of each page batch)\n"
		"  verify  check the stream end to end; exit 0 if sound, else 1\n"
		"          with the first problem as FILE: offset N: reason\n"
		"       %s records\n"
		"  records print the record table and the record layouts as JSON\n"
		"FILE may be - for standard input.\n", prog, prog, prog);
}

struct file_source {
	FILE *f;
};

static int file_read(void *opaque, void *buf, size_t len)
{
	struct file_source *s = opaque;

	return fread(buf, 1, len, s->f) == len ? 0 : -1;
}

static FILE *open_input(const char *path)
{
	struct stat st;
	FILE *f;

	if (!strcmp(path, "-"))
		return stdin;
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(EISDIR));
		fclose(f);
		return NULL;
	}
	return f;
}

/* A read error is not a broken stream: report it as such. */
static bool read_failed(FILE *f, const char *path)
{
	if (!ferror(f))
		return false;
	fprintf(stderr, "%s: %s: read error\n", prog, path);
	return true;
}

static int run_verify(const char *path)
{
	struct verify_result res;
	struct file_source s;
	int ret;

	s.f = open_input(path);
	if (!s.f)
		return EXIT_NOINPUT;
	ret = verify_stream((struct stream_source){ file_read, &s }, &res);
	if (read_failed(s.f, path)) {
		ret = EXIT_NOINPUT;
	} else if (ret < 0) {
		printf("%s: %s\n", path, res.err);
		ret = EXIT_STREAM;
	} else {
		printf("OK: %u records, %llu pages in %u batches, %u vCPU%s, format version %u, %llu bytes\n",
		       res.records, (unsigned long long)res.pages, res.batches,
		       res.nr_vcpus, res.nr_vcpus == 1 ? "" : "s", res.version,
		       (unsigned long long)res.bytes);
		ret = 0;
	}
	if (s.f != stdin)
		fclose(s.f);
	return ret;
}

static int run_dump(const char *path, const struct dump_opts *o)
{
	struct file_source s;
	int ret;

	s.f = open_input(path);
	if (!s.f)
		return EXIT_NOINPUT;
	printf("file: %s\n", path);
	ret = dump_stream((struct stream_source){ file_read, &s }, stdout, o);
	if (read_failed(s.f, path))
		ret = EXIT_NOINPUT;
	else
		ret = ret < 0 ? EXIT_STREAM : 0;
	if (s.f != stdin)
		fclose(s.f);
	return ret;
}

int main(int argc, char **argv)
{
	struct dump_opts o = { .pages = false };
	const char *cmd = NULL, *path = NULL;
	int i, ret;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--pages")) {
			o.pages = true;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "%s: unknown option %s\n", prog, a);
			usage(stderr);
			return EXIT_USAGE;
		} else if (!cmd) {
			cmd = a;
		} else if (!path) {
			path = a;
		} else {
			fprintf(stderr, "%s: unexpected argument %s\n", prog, a);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (cmd && !strcmp(cmd, "records") && !path && !o.pages)
		return print_records(stdout) < 0 || fflush(stdout) ?
		       EXIT_STREAM : 0;
	if (!cmd || !path || (strcmp(cmd, "dump") && strcmp(cmd, "verify")) ||
	    (o.pages && strcmp(cmd, "dump"))) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "verify"))
		ret = run_verify(path);
	else
		ret = run_dump(path, &o);
	if (fflush(stdout) != 0 && ret == 0)
		ret = EXIT_STREAM;
	return ret;
}
