/*
 * COM1: a 16550A (the register model is ns16550.c) whose line is the
 * domain's console.  Bytes sent go to the console history and attached
 * clients; bytes typed on `xl console` are received.  IRQ 4 is a level
 * driven through the in-kernel PIC/IOAPIC.
 */
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "dev/devices.h"
#include "dev/ns16550.h"
#include "dev/uart.h"
#include "domain.h"
#include "ioport.h"
#include "loop.h"
#include "stream.h"
#include "token_bucket.h"

struct uart {
	pthread_mutex_t lock;
	struct domain *dom;
	struct ns16550 chip;
	struct token_bucket tx_budget;	/* tx_per_s, tx_burst */
};

static double tx_per_s = UART_TX_PER_S, tx_burst = UART_TX_BURST;

void uart_set_tx_limit(unsigned long per_s, unsigned long burst)
{
	tx_per_s = per_s;
	tx_burst = burst;
}

/* The budget a busy line waits for: an eighth of a second's worth. */
static double tx_resume(void)
{
	double r = tx_per_s / 8;

	if (r > tx_burst)
		r = tx_burst;
	return r < 1 ? 1 : r;
}

static struct device_type uart_device;

static void uart_set_irq(void *opaque, bool level)
{
	struct uart *u = opaque;
	struct kvm_irq_level irq = { .irq = UART_COM1_IRQ, .level = level };

	ioctl(u->dom->vm_fd, KVM_IRQ_LINE, &irq);
}

/* Milliseconds until the budget holds tx_resume() bytes again. */
static unsigned ms_until_resume(double tokens)
{
	return (unsigned)((tx_resume() - tokens) * 1000 / tx_per_s) + 1;
}

/*
 * Set when a line may be busy, so that the main loop's every wake does not
 * take every UART's lock to find none: set before the wake is asked for,
 * cleared before a scan (a line that went busy meanwhile sets it again).
 */
static bool maybe_busy;

static void note_busy(unsigned wake_ms)
{
	__atomic_store_n(&maybe_busy, true, __ATOMIC_RELEASE);
	loop_wake_after(wake_ms);
}

static bool uart_transmit(void *opaque, uint8_t c)
{
	struct uart *u = opaque;
	double left;

	console_output(u->dom, &c, 1);
	if (!tx_per_s)
		return true;
	left = token_bucket_refill(&u->tx_budget, tx_burst, tx_per_s) - 1;
	u->tx_budget.tokens = left;
	if (left >= 1)
		return true;
	note_busy(ms_until_resume(left));
	return false;
}

/* Under u->lock: free a busy line once tx_resume() bytes may go. */
static void release_if_due(struct uart *u)
{
	double tokens;

	if (!u->chip.tx_busy)
		return;
	if (!tx_per_s) {
		ns16550_tx_ready(&u->chip);
		return;
	}
	tokens = token_bucket_refill(&u->tx_budget, tx_burst, tx_per_s);
	if (tokens >= tx_resume())
		ns16550_tx_ready(&u->chip);
	else
		note_busy(ms_until_resume(tokens));
}

static void uart_rx_room(void *opaque)
{
	loop_wake();		/* the control loop feeds us more */
}

static const struct ns16550_ops uart_ops = {
	.set_irq = uart_set_irq,
	.transmit = uart_transmit,
	.rx_room = uart_rx_room,
};

static int uart_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		   bool is_write, unsigned size, uint32_t *val)
{
	struct uart *u = opaque;
	unsigned reg = port - UART_COM1_BASE;

	pthread_mutex_lock(&u->lock);
	if (is_write) {
		ns16550_write(&u->chip, reg, *val);
	} else {
		if (reg == NS16550_LSR)
			release_if_due(u);	/* a polling driver */
		*val = ns16550_read(&u->chip, reg);
	}
	pthread_mutex_unlock(&u->lock);
	return 0;
}

/* An interrupt-driven driver waits for THR-empty: the loop's timed wake. */
void uart_release_busy_lines(void)
{
	struct domain *dom;
	struct uart *u;

	if (!__atomic_exchange_n(&maybe_busy, false, __ATOMIC_ACQ_REL))
		return;
	for (dom = domain_first(); dom; dom = dom->next) {
		u = device_state(dom, &uart_device);
		if (!u)
			continue;
		pthread_mutex_lock(&u->lock);
		release_if_due(u);
		pthread_mutex_unlock(&u->lock);
	}
}

size_t uart_receive(struct domain *dom, const void *data, size_t len)
{
	struct uart *u = device_state(dom, &uart_device);
	size_t n;

	if (!u)
		return len;	/* no UART any more: nothing will read it */
	pthread_mutex_lock(&u->lock);
	n = ns16550_receive(&u->chip, data, len);
	pthread_mutex_unlock(&u->lock);
	return n;
}

static int uart_init(struct domain *dom, void *state, char *err,
		     size_t errlen)
{
	struct uart *u = state;

	pthread_mutex_init(&u->lock, NULL);
	u->dom = dom;
	ns16550_reset(&u->chip, &uart_ops, u);
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
	struct rec_dev_uart r;
	uint8_t in[NS16550_INPUT_MAX];

	pthread_mutex_lock(&u->lock);
	ns16550_save(&u->chip, &r, in);
	pthread_mutex_unlock(&u->lock);
	return stream_write_record2(w, REC_DEV_UART, 0, &r, sizeof(r), in,
				    r.in_len);
}

static int uart_load(struct domain *dom, void *state, const void *body,
		     size_t len, char *err, size_t errlen)
{
	struct uart *u = state;
	struct rec_dev_uart r;

	memcpy(&r, body, sizeof(r));
	pthread_mutex_lock(&u->lock);
	ns16550_load(&u->chip, &r, (const uint8_t *)body + sizeof(r));
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
	.load = uart_load,
};
DEVICE_REGISTER(uart_device);
