/* The notes of an ELF file's PT_NOTE segments, read with libelf. */
#ifndef COMMON_ELFNOTE_H
#define COMMON_ELFNOTE_H

#include <gelf.h>

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
