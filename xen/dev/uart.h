/* A 16550A UART (COM1) whose line is the domain's console. */
#ifndef XEN_DEV_UART_H
#define XEN_DEV_UART_H

#include <stddef.h>
#include <stdint.h>

#define UART_COM1_BASE	0x3f8
#define UART_COM1_IRQ	4

struct domain;

/* Feed console input; returns how many bytes were accepted. */
size_t uart_receive(struct domain *dom, const void *data, size_t len);

#endif
