#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <generated/autoconf.h>

#include "buildinfo.h"

const char *const build_features[] = {
#ifdef CONFIG_BOOT_MULTIBOOT
	"BOOT_MULTIBOOT",
#endif
#ifdef CONFIG_BOOT_LINUX
	"BOOT_LINUX",
#endif
#ifdef CONFIG_BOOT_PVH
	"BOOT_PVH",
#endif
#ifdef CONFIG_DEV_DEBUG_EXIT
	"DEV_DEBUG_EXIT",
#endif
#ifdef CONFIG_DEV_FW_CFG
	"DEV_FW_CFG",
#endif
#ifdef CONFIG_DEV_VIRTIO
	"DEV_VIRTIO",
#endif
	NULL
};

static char build_id[2 * 64 + 1];
static struct timespec started;

/* Find the GNU build-id note of the main executable (the linker's). */
static int find_note(struct dl_phdr_info *info, size_t size, void *data)
{
	int i;

	if (info->dlpi_name && info->dlpi_name[0])
		return 0;			/* not the executable */
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *p, *end;

		if (ph->p_type != PT_NOTE)
			continue;
		p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const void *)p;
			const unsigned char *desc = (const unsigned char *)(n + 1) +
						    ((n->n_namesz + 3) & ~3u);
			unsigned j;

			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
			    !memcmp(n + 1, "GNU", 4) && n->n_descsz <= 64) {
				for (j = 0; j < n->n_descsz; j++)
					sprintf(build_id + 2 * j, "%02x",
						desc[j]);
				return 1;
			}
			p = (const char *)desc + ((n->n_descsz + 3) & ~3u);
		}
	}
	return 0;
}

const char *build_id_hex(void)
{
	if (!build_id[0])
		dl_iterate_phdr(find_note, NULL);
	return build_id[0] ? build_id : "unknown";
}

unsigned build_id_bytes(unsigned char *buf, unsigned cap)
{
	const char *hex = build_id_hex();
	unsigned n = 0;

	while (n < cap && hex[2 * n] && hex[2 * n + 1] &&
	       sscanf(hex + 2 * n, "%2hhx", &buf[n]) == 1)
		n++;
	return n;
}

void daemon_mark_start(void)
{
	clock_gettime(CLOCK_MONOTONIC, &started);
}

long long daemon_start_ns(void)
{
	return started.tv_sec * 1000000000LL + started.tv_nsec;
}

void daemon_set_start_ns(long long ns)
{
	if (ns <= 0)
		return;
	started.tv_sec = ns / 1000000000LL;
	started.tv_nsec = ns % 1000000000LL;
}

double daemon_uptime(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - started.tv_sec) +
	       (now.tv_nsec - started.tv_nsec) / 1e9;
}

