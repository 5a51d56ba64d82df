/* What `xl live-update status` shows: the staged image, the last result. */
#include <stdio.h>
#include <unistd.h>

#include "liveupdate/lu.h"
#include "log.h"

static struct lu_image staged;
static bool have_staged;
static json_t *last_result;

const struct lu_image *lu_staged(void)
{
	return have_staged ? &staged : NULL;
}

int lu_stage(const char *path, const char *sig_path, char *err,
	     size_t errlen)
{
	struct lu_image img;
	int code = lu_check_image(path, sig_path, &img, err, errlen);

	if (code)
		return code;
	lu_unstage();
	staged = img;
	have_staged = true;
	log_info("live update: staged %s (build-id %s, reads v%u..v%u)",
		 img.path, img.build_id, img.read_min, img.read_max);
	return 0;
}

void lu_unstage(void)
{
	if (have_staged)
		close(staged.fd);
	have_staged = false;
}

void lu_set_last_result(json_t *result)
{
	json_decref(last_result);
	last_result = json_is_object(result) ? result : NULL;
	if (!last_result)
		json_decref(result);
}

json_t *lu_status(void)
{
	json_t *s = json_object();

	if (have_staged)
		json_object_set_new(s, "staged",
				    json_pack("{s:s, s:s, s:[i,i], s:[i,i], s:b}",
					      "image", staged.path,
					      "build_id", staged.build_id,
					      "reads", staged.read_min,
					      staged.read_max, "writes",
					      staged.write_min,
					      staged.write_max, "build_ahead",
					      !!(staged.features &
						 XKVM_CAN_BUILD_AHEAD)));
	else
		json_object_set_new(s, "staged", json_null());
	json_object_set(s, "last", last_result ? last_result : json_null());
	return s;
}
