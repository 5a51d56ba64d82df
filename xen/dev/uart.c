/*
 * 16550A UART on COM1.  Transmit is instant (bytes go to the console
 * history and attached clients); receive takes bytes typed on `xl console`
 * from an input queue, which stands in for the FIFO so pasted text is not
 * lost.  IRQ 4 is a level driven through the in-kernel PIC/IOAPIC.
 */
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "dev/devices.h"
#include "dev/uart.h"
#include "domain.h"
#include "ioport.h"
#include "loop.h"
#include "stream.h"

#define REG_RBR_THR	0
#define REG_IER		1
#define REG_IIR_FCR	2
#define REG_LCR		3
#define REG_MCR		4
#define REG_LSR		5
#define REG_MSR		6
#define REG_SCR		7

#define IER_RDA		0x01
#define IER_THRE	0x02
#define IIR_NONE	0x01
#define IIR_THRE	0x02
#define IIR_RDA		0x04
#define IIR_FIFO	0xc0
#define FCR_ENABLE	0x01
#define LCR_DLAB	0x80
#define MCR_LOOP	0x10
#define LSR_DR		0x01
#define LSR_THRE	0x20
#define LSR_TEMT	0x40
#define MSR_IDLE	0xb0	/* DCD | DSR | CTS */

struct uart {
	pthread_mutex_t lock;
	struct domain *dom;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thr_ipending;	/* THR-empty interrupt waiting to be seen */
	bool irq_level;
	/* Receiver: bytes typed on the console, handed out one at a time. */
	uint8_t in[UART_INPUT_MAX];
	size_t in_head, in_len;
	bool input_waiting;	/* a client holds input we had no room for */
};

static struct device_type uart_device;

static void uart_update_irq(struct uart *u)
{
	struct kvm_irq_level irq = { .irq = UART_COM1_IRQ };
	bool level = ((u->ier & IER_RDA) && u->in_len) ||
		     ((u->ier & IER_THRE) && u->thr_ipending);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	irq.level = level;
	ioctl(u->dom->vm_fd, KVM_IRQ_LINE, &irq);
}

static uint8_t uart_iir(struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDA) && u->in_len)
		return IIR_RDA | fifo;
	if ((u->ier & IER_THRE) && u->thr_ipending)
		return IIR_THRE | fifo;
	return IIR_NONE | fifo;
}

static void uart_push_input(struct uart *u, uint8_t c)
{
	if (u->in_len == UART_INPUT_MAX)
		return;
	u->in[(u->in_head + u->in_len) % UART_INPUT_MAX] = c;
	u->in_len++;
}

static uint8_t uart_pop_input(struct uart *u)
{
	uint8_t c;

	if (!u->in_len)
		return 0;
	c = u->in[u->in_head];
	u->in_head = (u->in_head + 1) % UART_INPUT_MAX;
	u->in_len--;
	if (u->input_waiting && u->in_len <= UART_INPUT_MAX / 2) {
		u->input_waiting = false;
		loop_wake();		/* the control loop feeds us more */
	}
	return c;
}

static void uart_transmit(struct uart *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP)
		uart_push_input(u, c);
	else
		console_output(u->dom, &c, 1);
	u->thr_ipending = true;		/* the byte left at once */
}

static uint8_t uart_msr(struct uart *u)
{
	if (!(u->mcr & MCR_LOOP))
		return MSR_IDLE;
	/* Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
	return ((u->mcr & 0x01) << 5) | ((u->mcr & 0x02) << 3) |
	       ((u->mcr & 0x04) << 4) | ((u->mcr & 0x08) << 4);
}

static uint8_t uart_read(struct uart *u, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		return uart_pop_input(u);
	case REG_IER:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case REG_IIR_FCR:
		v = uart_iir(u);
		if ((v & 0x0f) == IIR_THRE)
			u->thr_ipending = false;	/* reading IIR acks it */
		return v;
	case REG_LCR:
		return u->lcr;
	case REG_MCR:
		return u->mcr;
	case REG_LSR:
		return LSR_THRE | LSR_TEMT | (u->in_len ? LSR_DR : 0);
	case REG_MSR:
		return uart_msr(u);
	default:
		return u->scr;
	}
}

static void uart_write(struct uart *u, unsigned reg, uint8_t v)
{
	switch (reg) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB)
			u->dll = v;
		else
			uart_transmit(u, v);
		break;
	case REG_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			break;
		}
		/* Enabling THRE while THR is empty raises it at once. */
		if (!(u->ier & IER_THRE) && (v & IER_THRE))
			u->thr_ipending = true;
		u->ier = v & 0x0f;
		break;
	case REG_IIR_FCR:
		u->fcr = v & 0xc9;
		if (v & 0x02) {			/* clear receive FIFO */
			u->in_len = 0;
			u->in_head = 0;
		}
		break;
	case REG_LCR:
		u->lcr = v;
		break;
	case REG_MCR:
		u->mcr = v & 0x1f;
		break;
	case REG_SCR:
		u->scr = v;
		break;
	default:
		break;		/* LSR and MSR are read-only */
	}
}

static int uart_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		   bool is_write, unsigned size, uint32_t *val)
{
	struct uart *u = opaque;
	unsigned reg = port - UART_COM1_BASE;

	pthread_mutex_lock(&u->lock);
	if (is_write)
		uart_write(u, reg, *val);
	else
		*val = uart_read(u, reg);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

size_t uart_receive(struct domain *dom, const void *data, size_t len)
{
	struct uart *u = device_state(dom, &uart_device);
	const uint8_t *p = data;
	size_t i;

	if (!u)
		return len;	/* no UART any more: nothing will read it */
	pthread_mutex_lock(&u->lock);
	for (i = 0; i < len && u->in_len < UART_INPUT_MAX; i++)
		uart_push_input(u, p[i]);
	if (i < len)
		u->input_waiting = true;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return i;
}

static int uart_init(struct domain *dom, void *state)
{
	struct uart *u = state;

	pthread_mutex_init(&u->lock, NULL);
	u->dom = dom;
	u->dll = 12;		/* 9600 baud */
	u->lcr = 0x03;		/* 8N1 */
	return ioport_register(&dom->ports, UART_COM1_BASE, 8, uart_io, u,
			       "uart");
}

static void uart_destroy(struct domain *dom, void *state)
{
	struct uart *u = state;

	pthread_mutex_destroy(&u->lock);
}

static int uart_save(struct domain *dom, void *state, struct stream_writer *w)
{
	struct uart *u = state;
	struct rec_dev_uart r = { 0 };
	uint8_t in[UART_INPUT_MAX];
	size_t i;
	int ret;

	pthread_mutex_lock(&u->lock);
	r.ier = u->ier;
	r.lcr = u->lcr;
	r.mcr = u->mcr;
	r.scr = u->scr;
	r.dll = u->dll;
	r.dlm = u->dlm;
	r.fcr = u->fcr;
	r.thr_ipending = u->thr_ipending;
	r.in_len = u->in_len;
	for (i = 0; i < u->in_len; i++)
		in[i] = u->in[(u->in_head + i) % UART_INPUT_MAX];
	pthread_mutex_unlock(&u->lock);
	ret = stream_write_record2(w, REC_DEV_UART, 0, &r, sizeof(r), in,
				   r.in_len);
	return ret;
}

static int uart_check(const void *body, size_t len, char *err,
		      size_t errlen)
{
	struct rec_dev_uart r;

	if (len < sizeof(r)) {
		snprintf(err, errlen, "DEV_UART: %zu bytes is too short", len);
		return -1;
	}
	memcpy(&r, body, sizeof(r));
	if (r.in_len > UART_INPUT_MAX || len != sizeof(r) + r.in_len) {
		snprintf(err, errlen, "DEV_UART: %u queued input bytes in a %zu-byte record",
			 r.in_len, len);
		return -1;
	}
	return 0;
}

static int uart_load(struct domain *dom, void *state, const void *body,
		     size_t len, char *err, size_t errlen)
{
	struct uart *u = state;
	struct rec_dev_uart r;

	memcpy(&r, body, sizeof(r));
	pthread_mutex_lock(&u->lock);
	u->ier = r.ier;
	u->lcr = r.lcr;
	u->mcr = r.mcr;
	u->scr = r.scr;
	u->dll = r.dll;
	u->dlm = r.dlm;
	u->fcr = r.fcr;
	u->thr_ipending = r.thr_ipending;
	memcpy(u->in, (const uint8_t *)body + sizeof(r), r.in_len);
	u->in_head = 0;
	u->in_len = r.in_len;
	u->irq_level = false;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static struct device_type uart_device = {
	.name = "uart",
	.order = 70,
	.state_size = sizeof(struct uart),
	.rec_type = REC_DEV_UART,
	.init = uart_init,
	.destroy = uart_destroy,
	.save = uart_save,
	.check = uart_check,
	.load = uart_load,
};
DEVICE_REGISTER(uart_device);
