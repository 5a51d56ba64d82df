/* A 16550A UART (COM1) whose line is the domain's console. */
#ifndef XEN_DEV_UART_H
#define XEN_DEV_UART_H

#include <stddef.h>
#include <stdint.h>

#define UART_COM1_BASE	0x3f8
#define UART_COM1_IRQ	4

/*
 * A guest's console output is limited (README.md, "Limits"; the daemon's
 * --console-limit): by default 1 MiB at once, then 128 KiB a second;
 * beyond that the line is busy (THR full) until an eighth of a second's
 * worth more may go, so the guest waits as on a slow serial line and no
 * byte is dropped.  A flood costs the daemon's console clients and
 * history no more than that.
 */
#define UART_TX_BURST		(1024 * 1024)
#define UART_TX_PER_S		(128 * 1024)

struct domain;

/* Feed console input; returns how many bytes were accepted. */
size_t uart_receive(struct domain *dom, const void *data, size_t len);
/* --console-limit: bytes a second (0: no limit) and at once. */
void uart_set_tx_limit(unsigned long per_s, unsigned long burst);
/* Free the lines of every domain that may send again (main thread). */
void uart_release_busy_lines(void);

#endif
