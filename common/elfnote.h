/* The notes of an ELF file's PT_NOTE segments, read with libelf. */
#ifndef COMMON_ELFNOTE_H
#define COMMON_ELFNOTE_H

#include <gelf.h>

/*
 * The notes of our own images (readelf -n shows them), one list of
 * types: the stream versions an image handles (liveupdate/note.c), that
 * it enforces signatures (trust/enforce.c), what it can do as the new
 * image of a live update (liveupdate/note.c).
 */
#define XKVM_NOTE_NAME		"XKVM"
#define XKVM_NOTE_STREAM	1
#define XKVM_NOTE_SIGNATURE	2
#define XKVM_NOTE_FEATURES	3

/*
 * Called for each note; a non-zero return stops the walk.  `name` has
 * nh->n_namesz bytes and `desc` nh->n_descsz, both inside the segment.
 */
typedef int (*elf_note_fn)(const GElf_Nhdr *nh, const char *name,
			   const void *desc, void *ctx);

/*
 * Walk every note of every PT_NOTE segment of `e`.  Returns what fn
 * returned to stop the walk, 0 when every note was seen, -1 when the
 * program headers cannot be read.
 */
int elf_for_each_note(Elf *e, elf_note_fn fn, void *ctx);

#endif
