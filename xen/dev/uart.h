/* A 16550A UART (COM1) whose line is the domain's console. */
#ifndef XEN_DEV_UART_H
#define XEN_DEV_UART_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UART_COM1_BASE	0x3f8
#define UART_COM1_IRQ	4
#define UART_INPUT_MAX	4096

struct domain;

struct uart {
	pthread_mutex_t lock;
	struct domain *dom;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_ipending;	/* THR-empty interrupt waiting to be seen */
	bool irq_level;
	/* Receiver: bytes typed on the console, handed out one at a time. */
	uint8_t in[UART_INPUT_MAX];
	size_t in_head, in_len;
	bool input_waiting;	/* a client holds input we had no room for */
};

struct stream_writer;

int uart_init(struct domain *dom);
void uart_destroy(struct domain *dom);
int uart_save(struct domain *dom, struct stream_writer *w);
int uart_load(struct domain *dom, const void *body, size_t len, char *err,
	      size_t errlen);
/* Feed console input; returns how many bytes were accepted. */
size_t uart_receive(struct domain *dom, const void *data, size_t len);

#endif
