/* The faked domain layer of the fuzz targets (fake_domain.c). */
#ifndef FUZZ_FAKE_DOMAIN_H
#define FUZZ_FAKE_DOMAIN_H

#include <stdbool.h>

/* Give domains their RAM (a memfd of memory_mib), for restore paths. */
extern bool fake_domains_ram;

/* Empty the table, then list "alpha" (id 1, running) and "beta" (id 2,
 * paused), each with a little console history. */
void fake_domains_reset(void);

#endif
