/* What this build is: version, build-id, Kconfig features, uptime. */
#ifndef XEN_BUILDINFO_H
#define XEN_BUILDINFO_H

#define XEN_VERSION "0.1.0"

const char *build_id_hex(void);
/* The raw build-id into buf; returns its length (0 if unknown). */
unsigned build_id_bytes(unsigned char *buf, unsigned cap);
/* The core's Kconfig options; each feature adds its own (feature.h). */
extern const char *const build_features[];
double daemon_uptime(void);
void daemon_mark_start(void);
/* The daemon start on CLOCK_MONOTONIC, kept across live updates. */
long long daemon_start_ns(void);
void daemon_set_start_ns(long long ns);

#endif
