#include <stddef.h>

#include "feature.h"

static struct feature *features;

void feature_register(struct feature *f)
{
	f->next = features;
	features = f;
}

const struct feature *feature_first(void)
{
	return features;
}
