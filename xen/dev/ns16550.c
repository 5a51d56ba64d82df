/* The 16550A register model (ns16550.h). */
#include <string.h>

#include "dev/ns16550.h"
#include "records.h"

#define IER_RDA		0x01
#define IER_THRE	0x02
#define IIR_NONE	0x01
#define IIR_THRE	0x02
#define IIR_RDA		0x04
#define IIR_FIFO	0xc0
#define FCR_ENABLE	0x01
#define FCR_CLEAR_RX	0x02
#define LCR_DLAB	0x80
#define MCR_LOOP	0x10
#define LSR_DR		0x01
#define LSR_THRE	0x20
#define LSR_TEMT	0x40
#define MSR_IDLE	0xb0	/* DCD | DSR | CTS */

static void update_irq(struct ns16550 *u)
{
	bool level = ((u->ier & IER_RDA) && u->in_len) ||
		     ((u->ier & IER_THRE) && u->thr_ipending);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	u->ops->set_irq(u->opaque, level);
}

static uint8_t iir(const struct ns16550 *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDA) && u->in_len)
		return IIR_RDA | fifo;
	if ((u->ier & IER_THRE) && u->thr_ipending)
		return IIR_THRE | fifo;
	return IIR_NONE | fifo;
}

static void push_input(struct ns16550 *u, uint8_t c)
{
	if (u->in_len == NS16550_INPUT_MAX)
		return;
	u->in[(u->in_head + u->in_len) % NS16550_INPUT_MAX] = c;
	u->in_len++;
}

static uint8_t pop_input(struct ns16550 *u)
{
	uint8_t c;

	if (!u->in_len)
		return 0;
	c = u->in[u->in_head];
	u->in_head = (u->in_head + 1) % NS16550_INPUT_MAX;
	u->in_len--;
	if (u->input_waiting && u->in_len <= NS16550_INPUT_MAX / 2) {
		u->input_waiting = false;
		u->ops->rx_room(u->opaque);
	}
	return c;
}

/*
 * A byte written while the line is busy still goes out (a polling
 * driver that gave up waiting writes anyway; a real FIFO would take it
 * too): the rate limit slows a flood, it never drops output.
 */
static void transmit(struct ns16550 *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP) {
		push_input(u, c);
	} else if (!u->ops->transmit(u->opaque, c)) {
		u->tx_busy = true;
		u->thr_ipending = false;
		return;
	}
	if (!u->tx_busy)
		u->thr_ipending = true;		/* the byte left at once */
}

static uint8_t msr(const struct ns16550 *u)
{
	if (!(u->mcr & MCR_LOOP))
		return MSR_IDLE;
	/* Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
	return ((u->mcr & 0x01) << 5) | ((u->mcr & 0x02) << 3) |
	       ((u->mcr & 0x04) << 4) | ((u->mcr & 0x08) << 4);
}

static uint8_t read_reg(struct ns16550 *u, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case NS16550_RBR_THR:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		return pop_input(u);
	case NS16550_IER:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case NS16550_IIR_FCR:
		v = iir(u);
		if ((v & 0x0f) == IIR_THRE)
			u->thr_ipending = false;	/* reading IIR acks it */
		return v;
	case NS16550_LCR:
		return u->lcr;
	case NS16550_MCR:
		return u->mcr;
	case NS16550_LSR:
		v = u->tx_busy ? 0 : LSR_THRE | LSR_TEMT;
		return v | (u->in_len ? LSR_DR : 0);
	case NS16550_MSR:
		return msr(u);
	default:
		return u->scr;
	}
}

static void write_ier(struct ns16550 *u, uint8_t v)
{
	/* Enabling THRE while THR is empty raises it at once. */
	if (!(u->ier & IER_THRE) && (v & IER_THRE) && !u->tx_busy)
		u->thr_ipending = true;
	u->ier = v & 0x0f;
}

static void write_fcr(struct ns16550 *u, uint8_t v)
{
	u->fcr = v & 0xc9;
	if (v & FCR_CLEAR_RX) {
		u->in_len = 0;
		u->in_head = 0;
	}
}

static void write_reg(struct ns16550 *u, unsigned reg, uint8_t v)
{
	switch (reg) {
	case NS16550_RBR_THR:
		if (u->lcr & LCR_DLAB)
			u->dll = v;
		else
			transmit(u, v);
		break;
	case NS16550_IER:
		if (u->lcr & LCR_DLAB)
			u->dlm = v;
		else
			write_ier(u, v);
		break;
	case NS16550_IIR_FCR:
		write_fcr(u, v);
		break;
	case NS16550_LCR:
		u->lcr = v;
		break;
	case NS16550_MCR:
		u->mcr = v & 0x1f;
		break;
	case NS16550_SCR:
		u->scr = v;
		break;
	default:
		break;		/* LSR and MSR are read-only */
	}
}

void ns16550_reset(struct ns16550 *u, const struct ns16550_ops *ops,
		   void *opaque)
{
	memset(u, 0, sizeof(*u));
	u->ops = ops;
	u->opaque = opaque;
	u->dll = 12;		/* 9600 baud */
	u->lcr = 0x03;		/* 8N1 */
}

uint8_t ns16550_read(struct ns16550 *u, unsigned reg)
{
	uint8_t v = read_reg(u, reg);

	update_irq(u);
	return v;
}

void ns16550_write(struct ns16550 *u, unsigned reg, uint8_t v)
{
	write_reg(u, reg, v);
	update_irq(u);
}

void ns16550_tx_ready(struct ns16550 *u)
{
	if (!u->tx_busy)
		return;
	u->tx_busy = false;
	u->thr_ipending = true;
	update_irq(u);
}

size_t ns16550_receive(struct ns16550 *u, const uint8_t *data, size_t len)
{
	size_t i;

	for (i = 0; i < len && u->in_len < NS16550_INPUT_MAX; i++)
		push_input(u, data[i]);
	if (i < len)
		u->input_waiting = true;
	update_irq(u);
	return i;
}

void ns16550_save(const struct ns16550 *u, struct rec_dev_uart *r,
		  uint8_t *in)
{
	size_t i;

	memset(r, 0, sizeof(*r));
	r->ier = u->ier;
	r->lcr = u->lcr;
	r->mcr = u->mcr;
	r->scr = u->scr;
	r->dll = u->dll;
	r->dlm = u->dlm;
	r->fcr = u->fcr;
	/* A busy line is not state: the loading side's line is free. */
	r->thr_ipending = u->thr_ipending || u->tx_busy;
	r->in_len = u->in_len;
	for (i = 0; i < u->in_len; i++)
		in[i] = u->in[(u->in_head + i) % NS16550_INPUT_MAX];
}

/* The line is taken as low (a new VM's) and raised if the state says so. */
void ns16550_load(struct ns16550 *u, const struct rec_dev_uart *r,
		  const uint8_t *in)
{
	u->ier = r->ier;
	u->lcr = r->lcr;
	u->mcr = r->mcr;
	u->scr = r->scr;
	u->dll = r->dll;
	u->dlm = r->dlm;
	u->fcr = r->fcr;
	u->thr_ipending = r->thr_ipending;
	u->tx_busy = false;
	memcpy(u->in, in, r->in_len);
	u->in_head = 0;
	u->in_len = r->in_len;
	u->irq_level = false;
	update_irq(u);
}
