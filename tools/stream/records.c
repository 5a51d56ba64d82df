/*
 * `xen-stream records`: the record table and the record layouts as JSON,
 * from common/records.h, common/stream.h and common/rec_table.c as this
 * build compiled them.  The Python test helpers (tests/streamlib.py) take
 * their record types from it and check their struct formats against it,
 * so that no second hand-written copy of the format can drift.
 */
#include <jansson.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdio.h>

#include "rec_table.h"
#include "stream_tool.h"

static const char *const phase_names[] = {
	[PH_PROLOGUE] = "prologue", [PH_CPUID] = "cpuid",
	[PH_PAGES] = "pages",
	[PH_VCPUS] = "vcpus", [PH_VM] = "vm", [PH_DEVICES] = "devices",
	[PH_CONSOLE] = "console", [PH_UNUSED] = "unused",
	[PH_HANDOVER] = "handover", [PH_END] = "end",
};

static const char *const size_rule_names[] = {
	[RS_ANY] = "any", [RS_EXACT] = "exact", [RS_AT_LEAST] = "at_least",
};

static json_t *record_entries(void)
{
	const struct rec_desc *d;
	json_t *a = json_array();
	unsigned i;

	for (i = 0; (d = rec_desc_at(i)); i++)
		json_array_append_new(a, json_pack(
			"{s:i, s:s, s:s, s:s, s:i, s:b, s:b}",
			"type", (int)d->type, "name", d->name,
			"phase", phase_names[d->phase],
			"size_rule", size_rule_names[d->size_rule],
			"size", (int)d->size,
			"required", !!(d->flags & REC_REQUIRED),
			"once", !!(d->flags & REC_ONCE)));
	return a;
}

/* "field": [offset, size], in declaration order. */
#define FIELD(s, f) \
	#f, json_pack("[i, i]", (int)offsetof(struct s, f), \
		      (int)sizeof(((struct s *)0)->f))

static json_t *layout(size_t size, json_t *fields)
{
	return json_pack("{s:i, s:o}", "size", (int)size, "fields", fields);
}

static void add_framing(json_t *s)
{
	json_object_set_new(s, "stream_header", layout(
		sizeof(struct stream_header), json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		FIELD(stream_header, magic), FIELD(stream_header, byte_order),
		FIELD(stream_header, version),
		FIELD(stream_header, header_len),
		FIELD(stream_header, flags),
		FIELD(stream_header, writer_version),
		FIELD(stream_header, build_id),
		FIELD(stream_header, build_id_len),
		FIELD(stream_header, crc), FIELD(stream_header, reserved))));
	json_object_set_new(s, "rec_header", layout(
		sizeof(struct rec_header), json_pack("{s:o, s:o, s:o, s:o}",
		FIELD(rec_header, type), FIELD(rec_header, flags),
		FIELD(rec_header, length), FIELD(rec_header, crc))));
}

static void add_bodies(json_t *s)
{
	json_object_set_new(s, "rec_memory_layout", layout(
		sizeof(struct rec_memory_layout), json_pack(
		"{s:o, s:o, s:o, s:o, s:o}",
		FIELD(rec_memory_layout, ram_bytes),
		FIELD(rec_memory_layout, low_bytes),
		FIELD(rec_memory_layout, hole_start),
		FIELD(rec_memory_layout, page_size),
		FIELD(rec_memory_layout, reserved))));
	json_object_set_new(s, "rec_cpuid", layout(
		sizeof(struct rec_cpuid), json_pack("{s:o, s:o}",
		FIELD(rec_cpuid, nent), FIELD(rec_cpuid, reserved))));
	json_object_set_new(s, "rec_cpuid_entry", layout(
		sizeof(struct rec_cpuid_entry), json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		FIELD(rec_cpuid_entry, function),
		FIELD(rec_cpuid_entry, index),
		FIELD(rec_cpuid_entry, flags),
		FIELD(rec_cpuid_entry, eax), FIELD(rec_cpuid_entry, ebx),
		FIELD(rec_cpuid_entry, ecx), FIELD(rec_cpuid_entry, edx),
		FIELD(rec_cpuid_entry, reserved))));
	json_object_set_new(s, "rec_page_batch", layout(
		sizeof(struct rec_page_batch), json_pack(
		"{s:o, s:o, s:o, s:o}", FIELD(rec_page_batch, nr_pages),
		FIELD(rec_page_batch, encoding),
		FIELD(rec_page_batch, data_len),
		FIELD(rec_page_batch, reserved))));
	json_object_set_new(s, "rec_vcpu_head", layout(
		sizeof(struct rec_vcpu_head), json_pack("{s:o, s:o}",
		FIELD(rec_vcpu_head, vcpu), FIELD(rec_vcpu_head, size))));
	json_object_set_new(s, "rec_dev_uart", layout(
		sizeof(struct rec_dev_uart), json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		FIELD(rec_dev_uart, ier), FIELD(rec_dev_uart, lcr),
		FIELD(rec_dev_uart, mcr), FIELD(rec_dev_uart, scr),
		FIELD(rec_dev_uart, dll), FIELD(rec_dev_uart, dlm),
		FIELD(rec_dev_uart, fcr), FIELD(rec_dev_uart, thr_ipending),
		FIELD(rec_dev_uart, in_len), FIELD(rec_dev_uart, reserved))));
	json_object_set_new(s, "rec_dev_rtc", layout(
		sizeof(struct rec_dev_rtc), json_pack("{s:o, s:o, s:o, s:o}",
		FIELD(rec_dev_rtc, index), FIELD(rec_dev_rtc, reserved),
		FIELD(rec_dev_rtc, offset_s), FIELD(rec_dev_rtc, cmos))));
	json_object_set_new(s, "rec_dev_board", layout(
		sizeof(struct rec_dev_board), json_pack("{s:o, s:o}",
		FIELD(rec_dev_board, pci_addr),
		FIELD(rec_dev_board, reserved))));
	json_object_set_new(s, "rec_dev_fw_cfg", layout(
		sizeof(struct rec_dev_fw_cfg), json_pack(
		"{s:o, s:o, s:o, s:o, s:o}",
		FIELD(rec_dev_fw_cfg, selector),
		FIELD(rec_dev_fw_cfg, reserved0),
		FIELD(rec_dev_fw_cfg, offset),
		FIELD(rec_dev_fw_cfg, dma_high),
		FIELD(rec_dev_fw_cfg, reserved))));
	json_object_set_new(s, "rec_dev_acpi_pm", layout(
		sizeof(struct rec_dev_acpi_pm), json_pack(
		"{s:o, s:o, s:o, s:o, s:o}",
		FIELD(rec_dev_acpi_pm, pm1_sts),
		FIELD(rec_dev_acpi_pm, pm1_en),
		FIELD(rec_dev_acpi_pm, pm1_cnt),
		FIELD(rec_dev_acpi_pm, reserved),
		FIELD(rec_dev_acpi_pm, pm_tmr_ticks))));
	json_object_set_new(s, "rec_dev_virtio", layout(
		sizeof(struct rec_dev_virtio), json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
		" s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		FIELD(rec_dev_virtio, slot),
		FIELD(rec_dev_virtio, device_id),
		FIELD(rec_dev_virtio, index),
		FIELD(rec_dev_virtio, status),
		FIELD(rec_dev_virtio, config_generation),
		FIELD(rec_dev_virtio, isr),
		FIELD(rec_dev_virtio, broken),
		FIELD(rec_dev_virtio, reserved0),
		FIELD(rec_dev_virtio, nr_queues),
		FIELD(rec_dev_virtio, msix_entries),
		FIELD(rec_dev_virtio, queue_select),
		FIELD(rec_dev_virtio, config_msix_vector),
		FIELD(rec_dev_virtio, device_feature_select),
		FIELD(rec_dev_virtio, driver_feature_select),
		FIELD(rec_dev_virtio, driver_features),
		FIELD(rec_dev_virtio, backend_fd),
		FIELD(rec_dev_virtio, reserved1),
		FIELD(rec_dev_virtio, backend_size),
		FIELD(rec_dev_virtio, pci_config))));
	json_object_set_new(s, "rec_virtq", layout(
		sizeof(struct rec_virtq), json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		FIELD(rec_virtq, size), FIELD(rec_virtq, enabled),
		FIELD(rec_virtq, msix_vector), FIELD(rec_virtq, last_avail),
		FIELD(rec_virtq, used_idx), FIELD(rec_virtq, reserved),
		FIELD(rec_virtq, desc), FIELD(rec_virtq, driver),
		FIELD(rec_virtq, device))));
	json_object_set_new(s, "rec_msix_entry", layout(
		sizeof(struct rec_msix_entry), json_pack(
		"{s:o, s:o, s:o, s:o}",
		FIELD(rec_msix_entry, addr_lo), FIELD(rec_msix_entry, addr_hi),
		FIELD(rec_msix_entry, data), FIELD(rec_msix_entry, ctrl))));
	json_object_set_new(s, "rec_console_head", layout(
		sizeof(struct rec_console_head), json_pack("{s:o}",
		FIELD(rec_console_head, total))));
}

static json_t *constants(void)
{
	return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:I,"
			 " s:i, s:i, s:i}",
			 "magic", STREAM_MAGIC,
			 "byte_order", (int)STREAM_BYTE_ORDER,
			 "version", STREAM_VERSION,
			 "version_min", STREAM_VERSION_MIN,
			 "header_len", STREAM_HEADER_LEN,
			 "page_size", (int)STREAM_PAGE_SIZE,
			 "batch_pages", (int)STREAM_BATCH_PAGES,
			 "rec_f_optional", (int)REC_F_OPTIONAL,
			 "ram_hole_start", (json_int_t)REC_RAM_HOLE_START,
			 "ram_high_start", (json_int_t)REC_RAM_HIGH_START,
			 "uart_input_max", REC_DEV_UART_INPUT_MAX,
			 "cpuid_entries_max", REC_CPUID_ENTRIES_MAX,
			 "kvm_msr_entry", (int)sizeof(struct kvm_msr_entry));
}

int print_records(FILE *out)
{
	json_t *structs = json_object();
	json_t *all;
	int ret;

	add_framing(structs);
	add_bodies(structs);
	all = json_pack("{s:o, s:o, s:o}", "constants", constants(),
			"records", record_entries(), "structs", structs);
	ret = json_dumpf(all, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(all);
	return ret;
}
