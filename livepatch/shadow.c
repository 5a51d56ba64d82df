/*
 * Shadow variables for livepatch payloads: extra data attached to an
 * existing object (by its address and an id) without changing its layout,
 * as in kpatch and Xen.  A small chained hash table under one mutex.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "livepatch/payload.h"

#define SHADOW_BUCKETS 64

struct shadow {
	const void *obj;
	uint32_t id;
	struct shadow *next;
	max_align_t data[];
};

static struct shadow *buckets[SHADOW_BUCKETS];
static pthread_mutex_t shadow_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned bucket(const void *obj, uint32_t id)
{
	uint64_t h = (uintptr_t)obj * 0x9e3779b97f4a7c15ull ^ id;

	return (h >> 32) % SHADOW_BUCKETS;
}

static struct shadow *find(const void *obj, uint32_t id,
			   struct shadow ***link)
{
	struct shadow **pp = &buckets[bucket(obj, id)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->obj == obj && (*pp)->id == id)
			break;
	if (link)
		*link = pp;
	return *pp;
}

void *livepatch_shadow_alloc(const void *obj, uint32_t id, size_t size)
{
	struct shadow *s, **pp;

	pthread_mutex_lock(&shadow_lock);
	s = find(obj, id, &pp);
	if (!s) {
		s = calloc(1, sizeof(*s) + size);
		if (s) {
			s->obj = obj;
			s->id = id;
			*pp = s;
		}
	}
	pthread_mutex_unlock(&shadow_lock);
	return s ? s->data : NULL;
}

void *livepatch_shadow_get(const void *obj, uint32_t id)
{
	struct shadow *s;

	pthread_mutex_lock(&shadow_lock);
	s = find(obj, id, NULL);
	pthread_mutex_unlock(&shadow_lock);
	return s ? s->data : NULL;
}

void livepatch_shadow_free(const void *obj, uint32_t id)
{
	struct shadow *s, **pp;

	pthread_mutex_lock(&shadow_lock);
	s = find(obj, id, &pp);
	if (s)
		*pp = s->next;
	pthread_mutex_unlock(&shadow_lock);
	free(s);
}
