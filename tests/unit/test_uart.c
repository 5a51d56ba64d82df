// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the 16550A register model (xen/dev/ns16550.c), run
 * without KVM: the interrupt line, the transmitted bytes and the "room
 * again" signal are recorded by the callbacks below.
 */
#include <stdlib.h>
#include <string.h>

#include "dev/ns16550.h"
#include "records.h"
#include "unit.h"

#define RBR	NS16550_RBR_THR
#define THR	NS16550_RBR_THR
#define DLL	NS16550_RBR_THR
#define IER	NS16550_IER
#define DLM	NS16550_IER
#define IIR	NS16550_IIR_FCR
#define FCR	NS16550_IIR_FCR
#define LCR	NS16550_LCR
#define MCR	NS16550_MCR
#define LSR	NS16550_LSR
#define MSR	NS16550_MSR
#define SCR	NS16550_SCR

/* What the model did to the outside world. */
struct seen {
	int irq_calls;
	bool level;
	uint8_t out[64];
	size_t nout;
	int rooms;
	bool line_busy;		/* transmit() says the line is busy */
};

static void seen_irq(void *opaque, bool level)
{
	struct seen *s = opaque;

	s->irq_calls++;
	s->level = level;
}

static bool seen_transmit(void *opaque, uint8_t c)
{
	struct seen *s = opaque;

	if (s->nout < sizeof(s->out))
		s->out[s->nout] = c;
	s->nout++;
	return !s->line_busy;
}

static void seen_room(void *opaque)
{
	struct seen *s = opaque;

	s->rooms++;
}

static const struct ns16550_ops ops = {
	.set_irq = seen_irq,
	.transmit = seen_transmit,
	.rx_room = seen_room,
};

static struct ns16550 *fresh(struct seen *s)
{
	static struct ns16550 u;

	memset(s, 0, sizeof(*s));
	ns16550_reset(&u, &ops, s);
	return &u;
}

static void test_reset(void)
{
	struct seen s;
	struct ns16550 *u = fresh(&s);

	CHECK_INT(ns16550_read(u, LCR), 0x03);		/* 8N1 */
	CHECK_INT(ns16550_read(u, IER), 0x00);
	CHECK_INT(ns16550_read(u, IIR), 0x01);		/* none pending */
	CHECK_INT(ns16550_read(u, MCR), 0x00);
	CHECK_INT(ns16550_read(u, LSR), 0x60);		/* THRE | TEMT */
	CHECK_INT(ns16550_read(u, MSR), 0xb0);		/* DCD | DSR | CTS */
	CHECK_INT(ns16550_read(u, SCR), 0x00);
	CHECK_INT(ns16550_read(u, RBR), 0x00);		/* empty queue */
	ns16550_write(u, LCR, 0x83);
	CHECK_INT(ns16550_read(u, DLL), 12);		/* 9600 baud */
	CHECK_INT(ns16550_read(u, DLM), 0);
	CHECK_INT(s.irq_calls, 0);
	CHECK_INT(s.nout, 0);
}

static void test_divisor_latch(void)
{
	struct seen s;
	struct ns16550 *u = fresh(&s);

	ns16550_write(u, LCR, 0x83);			/* DLAB */
	CHECK_INT(ns16550_read(u, LCR), 0x83);
	ns16550_write(u, DLL, 0x34);
	ns16550_write(u, DLM, 0x12);
	CHECK_INT(ns16550_read(u, DLL), 0x34);
	CHECK_INT(ns16550_read(u, DLM), 0x12);
	CHECK_INT(s.nout, 0);			/* DLL is not THR */
	CHECK_INT(s.irq_calls, 0);		/* DLM is not IER */
	ns16550_write(u, LCR, 0x03);
	CHECK_INT(ns16550_read(u, IER), 0x00);
	CHECK_INT(ns16550_read(u, RBR), 0x00);
	ns16550_write(u, IER, 0x01);
	ns16550_write(u, THR, 'x');
	CHECK_INT(s.nout, 1);
	CHECK_INT(s.out[0], 'x');
	ns16550_write(u, LCR, 0x80);
	CHECK_INT(ns16550_read(u, DLL), 0x34);		/* kept */
	CHECK_INT(ns16550_read(u, DLM), 0x12);
	ns16550_write(u, LCR, 0x00);
	CHECK_INT(ns16550_read(u, IER), 0x01);		/* kept */
}

static void test_thre_interrupt(void)
{
	struct seen s;
	struct ns16550 *u = fresh(&s);

	ns16550_write(u, IER, 0x02);		/* THR is empty: raised */
	CHECK_INT(s.irq_calls, 1);
	CHECK(s.level);
	CHECK_INT(ns16550_read(u, IER), 0x02);
	CHECK_INT(ns16550_read(u, IIR), 0x02);	/* reading it acks it */
	CHECK_INT(s.irq_calls, 2);
	CHECK(!s.level);
	CHECK_INT(ns16550_read(u, IIR), 0x01);
	CHECK_INT(s.irq_calls, 2);

	ns16550_write(u, IER, 0x02);		/* already enabled: no edge */
	CHECK_INT(ns16550_read(u, IIR), 0x01);
	CHECK_INT(s.irq_calls, 2);

	ns16550_write(u, THR, 'A');		/* the byte leaves at once */
	CHECK_INT(s.nout, 1);
	CHECK_INT(s.out[0], 'A');
	CHECK(s.level);
	CHECK_INT(ns16550_read(u, LSR), 0x60);
	CHECK_INT(ns16550_read(u, IIR), 0x02);
	CHECK(!s.level);

	ns16550_write(u, THR, 'B');
	CHECK(s.level);
	ns16550_write(u, IER, 0x00);		/* masked: line drops */
	CHECK(!s.level);
	CHECK_INT(ns16550_read(u, IIR), 0x01);
	ns16550_write(u, IER, 0xff);		/* only 4 bits exist */
	CHECK_INT(ns16550_read(u, IER), 0x0f);
	CHECK(s.level);				/* re-enabled: raised again */
	CHECK_INT(s.irq_calls, 7);
}

static void test_receive(void)
{
	struct seen s;
	struct ns16550 *u = fresh(&s);

	CHECK_INT(ns16550_receive(u, (const uint8_t *)"hi", 2), 2);
	CHECK_INT(ns16550_read(u, LSR), 0x61);		/* DR */
	CHECK_INT(ns16550_read(u, IIR), 0x01);		/* RDA not enabled */
	CHECK_INT(s.irq_calls, 0);
	ns16550_write(u, IER, 0x03);		/* RDA and THRE */
	CHECK(s.level);
	CHECK_INT(ns16550_read(u, IIR), 0x04);		/* RDA first */
	CHECK_INT(ns16550_read(u, IIR), 0x04);		/* not acked by IIR */
	CHECK_INT(ns16550_read(u, RBR), 'h');
	CHECK_INT(ns16550_read(u, LSR), 0x61);
	CHECK_INT(ns16550_read(u, RBR), 'i');
	CHECK_INT(ns16550_read(u, LSR), 0x60);
	CHECK(s.level);				/* THRE still pending */
	CHECK_INT(ns16550_read(u, IIR), 0x02);
	CHECK(!s.level);
	CHECK_INT(ns16550_read(u, RBR), 0x00);		/* nothing more */
	CHECK_INT(s.rooms, 0);
}

static void test_receive_queue_full(void)
{
	static uint8_t data[NS16550_INPUT_MAX + 100];
	struct seen s;
	struct ns16550 *u = fresh(&s);
	size_t i, bad = 0;

	for (i = 0; i < sizeof(data); i++)
		data[i] = i * 7;
	CHECK_INT(ns16550_receive(u, data, sizeof(data)), NS16550_INPUT_MAX);
	CHECK_INT(ns16550_receive(u, data, 1), 0);
	for (i = 0; i < NS16550_INPUT_MAX / 2 - 1; i++)
		bad += ns16550_read(u, RBR) != data[i];
	CHECK_INT(s.rooms, 0);			/* more than half still full */
	bad += ns16550_read(u, RBR) != data[i++];
	CHECK_INT(s.rooms, 1);			/* half: feed us more */
	bad += ns16550_read(u, RBR) != data[i++];
	CHECK_INT(s.rooms, 1);			/* only once */
	CHECK_INT(ns16550_receive(u, data + NS16550_INPUT_MAX, 100), 100);
	for (; i < NS16550_INPUT_MAX + 100; i++)	/* across the wrap */
		bad += ns16550_read(u, RBR) != data[i];
	CHECK_INT(bad, 0);
	CHECK_INT(ns16550_read(u, LSR), 0x60);
}

static void test_loopback(void)
{
	static const struct { uint8_t mcr, msr; } map[] = {
		{ 0x10, 0x00 },
		{ 0x11, 0x20 },		/* DTR -> DSR */
		{ 0x12, 0x10 },		/* RTS -> CTS */
		{ 0x14, 0x40 },		/* OUT1 -> RI */
		{ 0x18, 0x80 },		/* OUT2 -> DCD */
		{ 0x1f, 0xf0 },
	};
	struct seen s;
	struct ns16550 *u = fresh(&s);
	unsigned i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		ns16550_write(u, MCR, map[i].mcr);
		CHECK_INT(ns16550_read(u, MSR), map[i].msr);
	}
	ns16550_write(u, MCR, 0xff);
	CHECK_INT(ns16550_read(u, MCR), 0x1f);
	ns16550_write(u, IER, 0x01);
	ns16550_write(u, THR, 'x');		/* goes to our own receiver */
	CHECK_INT(s.nout, 0);
	CHECK(s.level);
	CHECK_INT(ns16550_read(u, LSR), 0x61);
	CHECK_INT(ns16550_read(u, RBR), 'x');
	CHECK(!s.level);
	ns16550_write(u, MCR, 0x03);		/* loopback off */
	CHECK_INT(ns16550_read(u, MSR), 0xb0);
	ns16550_write(u, THR, 'y');
	CHECK_INT(s.nout, 1);
	CHECK_INT(s.out[0], 'y');
	CHECK_INT(ns16550_read(u, LSR), 0x60);
}

static void test_fcr(void)
{
	struct seen s;
	struct ns16550 *u = fresh(&s);

	ns16550_write(u, FCR, 0x01);			/* FIFO on */
	CHECK_INT(ns16550_read(u, IIR), 0xc1);
	ns16550_write(u, IER, 0x01);
	ns16550_receive(u, (const uint8_t *)"abc", 3);
	CHECK(s.level);
	CHECK_INT(ns16550_read(u, IIR), 0xc4);
	ns16550_write(u, FCR, 0xc5);		/* clear TX only */
	CHECK(s.level);
	CHECK_INT(ns16550_read(u, LSR), 0x61);
	ns16550_write(u, FCR, 0xc3);		/* clear RX */
	CHECK(!s.level);
	CHECK_INT(ns16550_read(u, LSR), 0x60);
	CHECK_INT(ns16550_read(u, RBR), 0x00);
	CHECK_INT(ns16550_read(u, IIR), 0xc1);		/* FIFO still on */
	ns16550_receive(u, (const uint8_t *)"d", 1);
	ns16550_write(u, FCR, 0x00);		/* FIFO off, queue kept */
	CHECK_INT(ns16550_read(u, IIR), 0x04);
	CHECK_INT(ns16550_read(u, RBR), 'd');
	CHECK_INT(ns16550_read(u, IIR), 0x01);
}

static void test_irq_transitions(void)
{
	struct seen s;
	struct ns16550 *u = fresh(&s);

	ns16550_write(u, IER, 0x01);
	CHECK_INT(s.irq_calls, 0);
	ns16550_receive(u, (const uint8_t *)"ab", 2);
	CHECK_INT(s.irq_calls, 1);
	CHECK(s.level);
	ns16550_receive(u, (const uint8_t *)"c", 1);	/* still high */
	ns16550_read(u, LSR);
	ns16550_read(u, RBR);
	ns16550_read(u, RBR);
	CHECK_INT(s.irq_calls, 1);
	ns16550_read(u, RBR);				/* empty: low */
	CHECK_INT(s.irq_calls, 2);
	CHECK(!s.level);
	ns16550_read(u, RBR);
	ns16550_write(u, SCR, 0x5a);
	CHECK_INT(s.irq_calls, 2);
	CHECK_INT(ns16550_read(u, SCR), 0x5a);
	ns16550_write(u, LSR, 0x00);			/* read-only */
	ns16550_write(u, MSR, 0x00);
	CHECK_INT(ns16550_read(u, LSR), 0x60);
	CHECK_INT(ns16550_read(u, MSR), 0xb0);
	CHECK_INT(s.irq_calls, 2);
}

static void test_save_load(void)
{
	static uint8_t data[4000], in[NS16550_INPUT_MAX];
	static struct ns16550 v;
	struct rec_dev_uart r;
	struct seen s, t;
	struct ns16550 *u = fresh(&s);
	size_t i, bad = 0;

	for (i = 0; i < sizeof(data); i++)
		data[i] = i ^ 0x55;
	ns16550_write(u, LCR, 0x83);
	ns16550_write(u, DLL, 0x01);
	ns16550_write(u, DLM, 0x02);
	ns16550_write(u, LCR, 0x1b);
	ns16550_write(u, MCR, 0x0b);
	ns16550_write(u, SCR, 0x77);
	ns16550_write(u, FCR, 0xff);		/* DMA mode and trigger kept */
	ns16550_receive(u, data, 4000);
	for (i = 0; i < 3000; i++)
		ns16550_read(u, RBR);
	ns16550_receive(u, data, 200);		/* the ring wraps */
	ns16550_write(u, THR, 'z');		/* THRE pending, not enabled */
	ns16550_save(u, &r, in);
	CHECK_INT(r.lcr, 0x1b);
	CHECK_INT(r.dll, 0x01);
	CHECK_INT(r.dlm, 0x02);
	CHECK_INT(r.mcr, 0x0b);
	CHECK_INT(r.scr, 0x77);
	CHECK_INT(r.fcr, 0xc9);
	CHECK_INT(r.ier, 0x00);
	CHECK_INT(r.thr_ipending, 1);
	CHECK_INT(r.in_len, 1200);
	CHECK_INT(in[0], data[3000]);
	CHECK_INT(in[1000], data[0]);

	memset(&t, 0, sizeof(t));
	ns16550_reset(&v, &ops, &t);
	r.ier = 0x02;				/* so the line must rise */
	ns16550_load(&v, &r, in);
	CHECK_INT(t.irq_calls, 1);
	CHECK(t.level);
	CHECK_INT(ns16550_read(&v, IIR), 0xc2);	/* FIFO on */
	CHECK_INT(ns16550_read(&v, LCR), 0x1b);
	CHECK_INT(ns16550_read(&v, MCR), 0x0b);
	CHECK_INT(ns16550_read(&v, SCR), 0x77);
	CHECK_INT(ns16550_read(&v, LSR), 0x61);
	for (i = 0; i < 1000; i++)
		bad += ns16550_read(&v, RBR) != data[3000 + i];
	for (i = 0; i < 200; i++)
		bad += ns16550_read(&v, RBR) != data[i];
	CHECK_INT(bad, 0);
	CHECK_INT(ns16550_read(&v, LSR), 0x60);
	ns16550_write(&v, LCR, 0x9b);
	CHECK_INT(ns16550_read(&v, DLL), 0x01);
	CHECK_INT(ns16550_read(&v, DLM), 0x02);
}

/* The console's rate limit: a busy line holds THR full, loses nothing. */
static void test_busy_line(void)
{
	static uint8_t in[NS16550_INPUT_MAX];
	struct rec_dev_uart r;
	struct seen s;
	struct ns16550 *u = fresh(&s);

	ns16550_write(u, IER, 0x02);
	CHECK_INT(ns16550_read(u, IIR), 0x02);	/* ack the first one */
	CHECK(!s.level);
	s.line_busy = true;
	ns16550_write(u, THR, 'A');
	CHECK_INT(s.nout, 1);			/* it went out */
	CHECK(!s.level);			/* but THR is not empty */
	CHECK_INT(ns16550_read(u, LSR), 0x00);
	CHECK_INT(ns16550_read(u, IIR), 0x01);
	ns16550_write(u, IER, 0x00);
	ns16550_write(u, IER, 0x02);		/* no "empty" edge either */
	CHECK(!s.level);
	ns16550_write(u, THR, 'B');		/* a driver that gave up */
	CHECK_INT(s.nout, 2);
	CHECK_INT(s.out[1], 'B');
	ns16550_save(u, &r, in);		/* drained on the other side */
	CHECK_INT(r.thr_ipending, 1);
	s.line_busy = false;
	ns16550_tx_ready(u);
	CHECK(s.level);
	CHECK_INT(ns16550_read(u, LSR), 0x60);
	CHECK_INT(ns16550_read(u, IIR), 0x02);
	CHECK(!s.level);
	ns16550_tx_ready(u);			/* not busy: nothing happens */
	CHECK(!s.level);
	ns16550_write(u, THR, 'C');
	CHECK(s.level);
}

int main(void)
{
	test_reset();
	test_divisor_latch();
	test_thre_interrupt();
	test_receive();
	test_receive_queue_full();
	test_loopback();
	test_fcr();
	test_irq_transitions();
	test_save_load();
	test_busy_line();
	return unit_done();
}
