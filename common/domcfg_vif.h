/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The network interfaces of a domain config (the `vif` key), for the
 * virtio-net devices.
 *
 * In xl.cfg a vif is written in Xen's xl-network-configuration(5)
 * syntax: comma-separated KEY=VALUE items, blanks around them ignored,
 * '' for every default:
 *   mac=XX:XX:XX:XX:XX:XX  unicast, not all zero; when absent the daemon
 *                          picks one in Xen's OUI 00:16:3e when it
 *                          creates the domain (domcfg_vif_fill_mac()),
 *                          kept by save, restore and migration
 *   bridge=NAME      the Linux bridge the tap joins (default: none)
 *   vifname=NAME     the tap's name (default: the daemon's vifDOMID.N)
 *   model=virtio-net the only model (rtl8139, e1000... are refused)
 *   type=ioemu|vif   accepted and ignored, as Xen configs carry it
 *   vhost=0|1        ours: the data path in /dev/vhost-net (default 0)
 *   announce=0|1     ours: offer VIRTIO_NET_F_GUEST_ANNOUNCE and a control
 *                    queue (default 0: a device of two queues, as before)
 * Interface names are 1-15 characters of [A-Za-z0-9_.-].  script= (no
 * hotplug scripts) and Xen's other options are refused.
 *
 * In the JSON config a vif is an object {"mac", "bridge", "vifname",
 * "model", "vhost", "announce", "origin"} or a string in the syntax above; "origin"
 * (optional) says where it was written, e.g. "/etc/xen/guest.cfg:7".
 */
#ifndef DOMCFG_VIF_H
#define DOMCFG_VIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define DOMCFG_VIF_MAX		8
#define DOMCFG_IFNAME_MAX	15	/* IFNAMSIZ - 1 */
#define DOMCFG_MAC_STRLEN	18	/* "xx:xx:xx:xx:xx:xx" and its NUL */

struct domcfg;

struct domcfg_vif {
	uint8_t mac[6];
	bool mac_set;		/* false: not given, not yet generated */
	char *bridge;		/* NULL: attached to no bridge */
	char *vifname;		/* NULL: the daemon's vifDOMID.N */
	bool vhost;		/* use /dev/vhost-net */
	bool guest_announce;	/* a control queue, GUEST_ANNOUNCE */
	char *origin;		/* "FILE:LINE" or NULL */
};

/* Xen's vif syntax as a JSON object, or NULL with @why. */
json_t *domcfg_vif_spec_to_json(const char *spec, char *why, size_t whylen);

/* 1-DOMCFG_IFNAME_MAX characters of [A-Za-z0-9_.-], not "." nor "..". */
bool domcfg_vif_valid_ifname(const char *name);
/* "00:16:3e:12:34:56" into @buf. */
void domcfg_vif_mac_string(const uint8_t mac[6],
			   char buf[DOMCFG_MAC_STRLEN]);

/*
 * The `vif` list of the JSON config (objects or strings, at most
 * DOMCFG_VIF_MAX, vifnames and MACs unique) into a new array @out of
 * @nr vifs: 0, or -1 with @why; a reason about one vif starts with its
 * index, "[1]: ...".
 */
int domcfg_vif_list_from_json(json_t *list, struct domcfg_vif **out,
			      unsigned int *nr, char *why, size_t whylen);
json_t *domcfg_vif_list_to_json(const struct domcfg_vif *vifs,
				unsigned int nr);
/* 0, or -1 out of memory with *dst NULL. */
int domcfg_vif_list_copy(struct domcfg_vif **dst,
			 const struct domcfg_vif *src, unsigned int nr);
void domcfg_vif_list_free(struct domcfg_vif *vifs, unsigned int nr);

/*
 * Give every vif of @cfg without a MAC a random one in Xen's OUI,
 * 00:16:3e:00:00:00-00:16:3e:7f:ff:ff as libxl, unique in @cfg.  The
 * daemon's `create` calls it, so the MAC is part of the domain's config
 * from then on.  0, or a negative errno from getrandom().
 */
int domcfg_vif_fill_mac(struct domcfg *cfg);

#endif
