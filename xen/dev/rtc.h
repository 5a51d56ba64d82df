/* MC146818 CMOS RTC and NVRAM at ports 0x70/0x71. */
#ifndef XEN_DEV_RTC_H
#define XEN_DEV_RTC_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

struct domain;

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128];
	int64_t offset_s;	/* guest time minus host UTC, seconds */
};

struct stream_writer;

int rtc_init(struct domain *dom);
void rtc_destroy(struct domain *dom);
int rtc_save(struct domain *dom, struct stream_writer *w);
int rtc_load(struct domain *dom, const void *body, size_t len, char *err,
	     size_t errlen);

#endif
