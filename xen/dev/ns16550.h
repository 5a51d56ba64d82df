/*
 * The register model of a 16550A UART, with nothing of KVM or a domain
 * in it: what the line and the interrupt do goes through ns16550_ops.
 * The caller serialises calls (xen/dev/uart.c holds a lock); the tests
 * in tests/unit/test_uart.c drive it directly.
 *
 * Transmit is instant unless the line says it is busy (the console's
 * rate limit): then THR stays full (LSR.THRE/TEMT clear, no THR-empty
 * interrupt) until ns16550_tx_ready(), so a driver waits as on a slow
 * line and nothing is lost.  Receive hands out bytes from an input
 * queue that stands in for the FIFO, so pasted text is not lost.
 */
#ifndef XEN_DEV_NS16550_H
#define XEN_DEV_NS16550_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "records.h"

/* The receive queue holds what a DEV_UART record can carry. */
#define NS16550_INPUT_MAX	REC_DEV_UART_INPUT_MAX

/* Registers, as offsets from the base port. */
#define NS16550_RBR_THR	0	/* DLL with LCR.DLAB */
#define NS16550_IER	1	/* DLM with LCR.DLAB */
#define NS16550_IIR_FCR	2
#define NS16550_LCR	3
#define NS16550_MCR	4
#define NS16550_LSR	5
#define NS16550_MSR	6
#define NS16550_SCR	7

struct ns16550_ops {
	/* The interrupt line changed to `level`. */
	void (*set_irq)(void *opaque, bool level);
	/*
	 * A byte left on the line (not in loopback).  false: the line is
	 * busy after it; the model waits for ns16550_tx_ready().
	 */
	bool (*transmit)(void *opaque, uint8_t c);
	/* The queue has room again after ns16550_receive() refused input. */
	void (*rx_room)(void *opaque);
};

struct ns16550 {
	const struct ns16550_ops *ops;
	void *opaque;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thr_ipending;	/* THR-empty interrupt waiting to be seen */
	bool tx_busy;		/* the line took no more bytes for now */
	bool irq_level;
	uint8_t in[NS16550_INPUT_MAX];
	size_t in_head, in_len;
	bool input_waiting;	/* input was refused for want of room */
};

struct rec_dev_uart;

/* Power-on state: 9600 baud 8N1, no interrupt enabled, line low. */
void ns16550_reset(struct ns16550 *u, const struct ns16550_ops *ops,
		   void *opaque);
uint8_t ns16550_read(struct ns16550 *u, unsigned reg);
void ns16550_write(struct ns16550 *u, unsigned reg, uint8_t v);
/* The line takes bytes again: THR empties (and interrupts if enabled). */
void ns16550_tx_ready(struct ns16550 *u);
/* Queue received bytes; returns how many fitted. */
size_t ns16550_receive(struct ns16550 *u, const uint8_t *data, size_t len);

/* To and from the DEV_UART record: `in` holds NS16550_INPUT_MAX bytes
 * for save; for load r->in_len bytes, r->in_len checked by the caller. */
void ns16550_save(const struct ns16550 *u, struct rec_dev_uart *r,
		  uint8_t *in);
void ns16550_load(struct ns16550 *u, const struct rec_dev_uart *r,
		  const uint8_t *in);

#endif
