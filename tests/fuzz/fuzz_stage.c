/*
 * libFuzzer target for the live-update image stager (liveupdate/stage.c,
 * `xl live-update load`): the checks of the file before anything pauses
 * (a regular file, its size, the ELF header, executable), the sealed
 * copy, then libelf over the copy: segments inside the file, the notes
 * (common/elfnote.c), the GNU build-id and the XKVM stream-version note,
 * and whether its versions meet this image's.
 *
 * Each input is written to a file of its own in a private directory
 * (on /dev/shm when there is one) and staged by path, as the daemon
 * stages what a client names; a staged image's memfd is closed again.
 * Nothing is executed.  Seeds: small images tests/fuzz/stage_seed.c
 * builds (tests/fuzz/make_seeds.sh).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "liveupdate/lu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char dir_path[128], path[256];

static void cleanup(void)
{
	unlink(path);
	rmdir(dir_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/dev/shm/fuzz_stage.XXXXXX";
	char tdir[] = "/tmp/fuzz_stage.XXXXXX";
	const char *d = mkdtemp(dir);

	if (!d)
		d = mkdtemp(tdir);
	if (!d)
		abort();
	snprintf(dir_path, sizeof(dir_path), "%s", d);
	snprintf(path, sizeof(path), "%s/image", d);
	atexit(cleanup);
	return 0;
}

static void write_image(const uint8_t *data, size_t size)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		perror(path);
		abort();
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lu_image img = { .fd = -1 };
	char err[512] = "";

	write_image(data, size);
	if (lu_check_image(path, NULL, &img, err, sizeof(err)) == 0) {
		if (img.fd < 0 || strlen(img.build_id) < 2 ||
		    strcmp(img.path, path)) {
			fprintf(stderr, "staged without an fd or build-id\n");
			abort();
		}
		close(img.fd);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "staged: build-id %s\n", img.build_id);
	} else if (!err[0]) {
		fprintf(stderr, "refused without a reason\n");
		abort();
	} else if (getenv("FUZZ_VERBOSE")) {
		fprintf(stderr, "refused: %s\n", err);
	}
	return 0;
}
