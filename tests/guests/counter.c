/*
 * Counter guest: a continuously incrementing counter plus a working set of
 * pages dirtied at a set rate and verified periodically.  Meant for live
 * migration / save-restore / live-update tests: an outside tool watches the
 * status block at GPA 0x00200000, the guest itself checks that no page of
 * its working set was lost or corrupted.  See README.md for the interface.
 *
 * Command line: ws=SIZE rate=N|max interval=MS verify=MS idle=US
 *               idletimer=auto|deadline|oneshot
 *
 * idle=US (0: spin, the default): after each loop iteration with no
 * dirtying owed, sleep US microseconds in hlt on the local APIC timer, as
 * an idle OS does.  The gaps the guest reports are then the time it
 * wanted to run and could not: an iteration's gap less the sleep it
 * asked for.
 *
 * Every working-set page p has a u32 generation gen[p] (array at GPA
 * 0x00400000) and always holds pattern(p, gen[p]): u64 word i is
 *   ((p << 32) | gen) ^ (i * 0x9E3779B97F4A7C15)
 * At start every page is filled with its generation-0 pattern (so gen 0 is
 * not "all zero": a page lost and replaced by zeroes is detected too).
 */
#include "lib.h"

#define STATUS_MAGIC    0x3154534752544e43ULL   /* "CNTRGST1" little-endian */
#define GEN_ARRAY_GPA   0x00400000ULL
#define PAGE_SIZE       4096ULL
#define PAGE_WORDS      (PAGE_SIZE / 8)
#define MIB             (1ULL << 20)
#define GIB             (1ULL << 30)
#define PATTERN_MUL     0x9E3779B97F4A7C15ULL

#define RATE_MAX        (~0ULL)                 /* rate=max in the status block */
#define RATE_LIMIT      100000000ULL            /* larger numbers are clamped */

#define PERIOD_LIMIT_MS 1000000000ULL         /* keeps ms * tsc_khz in range */
#define COUNT_BATCH     4096    /* counter increments between TSC checks */
#define MAX_DIRTY_BATCH 256     /* pages dirtied per check at most */
#define MAX_VERIFY_BATCH 32     /* pages verified per check at most */
#define MAX_ERROR_PRINTS 10
#define IDLE_LIMIT_US   1000000ULL      /* idle= is clamped to 1 s */
#define GAP_LOG_MIN_US  100             /* gaps logged from this length */
#define GAP_LOG_OFFSET  0x800           /* in the status page */
#define GAP_LOG_SIZE    128             /* entries, a power of 2 */

/* Status block: little-endian u64 fields, see README.md. */
struct status {
    u64 magic;              /* 0x00 */
    u64 counter;            /* 0x08 */
    u64 rounds;             /* 0x10 */
    u64 verifications;      /* 0x18 */
    u64 errors;             /* 0x20 */
    u64 ws_pages;           /* 0x28 */
    u64 rate;               /* 0x30 */
    u64 tsc_khz;            /* 0x38 */
    u64 pages_dirtied;      /* 0x40 */
    u64 last_tsc;           /* 0x48 */
    u64 max_gap_tsc;        /* 0x50 */
    u64 idle_us;            /* 0x58 */
    u64 sleeps;             /* 0x60 */
    u64 halts;              /* 0x68 */
    u64 gap_log_count;      /* 0x70 */
    u64 gap_log_min_tsc;    /* 0x78 */
};
_Static_assert(sizeof(struct status) == 0x80, "status block layout");

/* The gap log: the last GAP_LOG_SIZE gaps of at least GAP_LOG_MIN_US,
 * entry n at index n % GAP_LOG_SIZE, written before gap_log_count moves
 * past it (README.md). */
struct gap_entry {
    u64 end_tsc;            /* rdtsc at the end of the gap */
    u64 gap_tsc;            /* its length (less the sleep asked for) */
};
_Static_assert(GAP_LOG_OFFSET + GAP_LOG_SIZE * sizeof(struct gap_entry)
               <= 4096, "gap log in the status page");

/* One NOBITS page that the linker script places at GPA 0x00200000. */
__asm__(".pushsection .status, \"aw\", @nobits\n"
        ".balign 4096\n"
        ".globl status_page\n"
        "status_page: .skip 4096\n"
        ".popsection\n");
extern u8 status_page[4096];

#define ST ((volatile struct status *)status_page)
#define GAP_LOG ((volatile struct gap_entry *)(status_page + GAP_LOG_OFFSET))

static volatile u32 *const gen = (volatile u32 *)(uintptr_t)GEN_ARRAY_GPA;
static u64 ws_base;         /* GPA of working-set page 0 */
static u64 ws_pages;
static u64 error_prints;

static inline u64 *page_ptr(u64 p)
{
    return (u64 *)(uintptr_t)(ws_base + p * PAGE_SIZE);
}

static void fill_page(u64 p, u32 g)
{
    u64 *w = page_ptr(p);
    u64 base = (p << 32) | g, m = 0;

    for (u64 i = 0; i < PAGE_WORDS; i++, m += PATTERN_MUL)
        w[i] = base ^ m;
}

static void dirty_page(u64 p)
{
    u32 g = gen[p] + 1;

    gen[p] = g;
    fill_page(p, g);
}

/* Returns 1 if page p holds pattern(p, gen[p]). */
static int verify_page(u64 p)
{
    const volatile u64 *w = page_ptr(p);
    u32 g = gen[p];
    u64 base = (p << 32) | g, m = 0;

    for (u64 i = 0; i < PAGE_WORDS; i++, m += PATTERN_MUL) {
        u64 got = w[i];
        if (got != (base ^ m)) {
            if (error_prints < MAX_ERROR_PRINTS) {
                gprintf("VERIFY ERROR page=%lu gen=%u word=%lu got=0x%016lx "
                        "want=0x%016lx\n", (unsigned long)p, g,
                        (unsigned long)i, (unsigned long)got,
                        (unsigned long)(base ^ m));
                if (++error_prints == MAX_ERROR_PRINTS)
                    gprintf("VERIFY ERROR: further errors are not printed\n");
            }
            return 0;
        }
    }
    return 1;
}

static u64 align_up(u64 v, u64 a)
{
    return (v + a - 1) & ~(a - 1);
}

static u64 ws_start_for(u64 pages)
{
    return align_up(GEN_ARRAY_GPA + pages * sizeof(u32), 2 * MIB);
}

/* A gap in the loop: the longest so far, and the log (README.md). */
static void record_gap(volatile struct status *st, u64 end, u64 gap,
                       u64 *max_gap)
{
    if (gap > *max_gap) {
        *max_gap = gap;
        st->max_gap_tsc = gap;
    }
    if (gap >= st->gap_log_min_tsc) {
        u64 n = st->gap_log_count;
        volatile struct gap_entry *e = &GAP_LOG[n % GAP_LOG_SIZE];

        e->end_tsc = end;
        e->gap_tsc = gap;
        barrier();
        st->gap_log_count = n + 1;
    }
}

static enum lapic_timer_mode arg_idletimer(void)
{
    char buf[16];

    if (!cmdline_get(boot_info.cmdline, "idletimer", buf, sizeof(buf)) ||
        strcmp(buf, "auto") == 0)
        return LAPIC_TIMER_AUTO;
    if (strcmp(buf, "deadline") == 0)
        return LAPIC_TIMER_DEADLINE;
    if (strcmp(buf, "oneshot") == 0)
        return LAPIC_TIMER_ONESHOT;
    gprintf("counter guest: bad value idletimer=%s, using the default\n",
            buf);
    return LAPIC_TIMER_AUTO;
}

static u64 arg_u64(const char *key, u64 def, int size)
{
    char buf[64];
    u64 v;

    if (!cmdline_get(boot_info.cmdline, key, buf, sizeof(buf)))
        return def;
    if (size ? parse_size(buf, &v) : parse_u64(buf, &v))
        return v;
    gprintf("counter guest: bad value %s=%s, using the default\n", key, buf);
    return def;
}

void guest_main(u32 mbi_phys)
{
    volatile struct status *st = ST;
    char buf[64];
    u64 ws_bytes, rate, interval_ms, verify_ms, tsc_khz, mem_top, pages;
    u64 idle_us;

    boot_info_init(mbi_phys);
    /* Invalidate a stale block (reboot without reload) before anything. */
    st->magic = 0;
    barrier();

    ws_bytes = arg_u64("ws", 4 * MIB, 1);
    rate = 1000;
    if (cmdline_get(boot_info.cmdline, "rate", buf, sizeof(buf))) {
        if (strcmp(buf, "max") == 0)
            rate = RATE_MAX;
        else if (!parse_u64(buf, &rate)) {
            gprintf("counter guest: bad value rate=%s, using the default\n", buf);
            rate = 1000;
        } else if (rate > RATE_LIMIT)
            rate = RATE_LIMIT;
    }
    interval_ms = arg_u64("interval", 1000, 0);
    verify_ms = arg_u64("verify", 2000, 0);
    if (interval_ms > PERIOD_LIMIT_MS)
        interval_ms = PERIOD_LIMIT_MS;
    if (verify_ms > PERIOD_LIMIT_MS)
        verify_ms = PERIOD_LIMIT_MS;
    idle_us = arg_u64("idle", 0, 0);
    if (idle_us > IDLE_LIMIT_US)
        idle_us = IDLE_LIMIT_US;

    tsc_khz = tsc_calibrate();
    if (idle_us) {
        enum lapic_timer_mode m = lapic_timer_init(tsc_khz, arg_idletimer());

        if (m == LAPIC_TIMER_ONESHOT)
            gprintf("counter guest: idle=%lu timer=oneshot timer_khz=%lu\n",
                    (unsigned long)idle_us, (unsigned long)lapic_timer_khz);
        else
            gprintf("counter guest: idle=%lu timer=tsc-deadline\n",
                    (unsigned long)idle_us);
    }

    /* Memory top from the mbi, below 4 GiB. */
    if (boot_info.have_mem) {
        mem_top = (u64)boot_info.mem_upper_kib * 1024 + MIB;
    } else {
        mem_top = 32 * MIB;
        gprintf("counter guest: no memory info in the mbi, assuming 32 MiB\n");
    }
    if (mem_top > 4 * GIB)
        mem_top = 4 * GIB;

    pages = ws_bytes / PAGE_SIZE;
    if (!pages)
        pages = 1;
    u64 want = pages;
    if (pages > 4 * GIB / PAGE_SIZE)    /* keeps the arithmetic below sane */
        pages = 4 * GIB / PAGE_SIZE;
    if (ws_start_for(pages) + pages * PAGE_SIZE > mem_top) {
        /*
         * The working set start only moves down as pages shrinks, so
         * what fits above the current start also fits above the new one.
         */
        u64 start = ws_start_for(pages);
        pages = start < mem_top ? (mem_top - start) / PAGE_SIZE : 0;
    }
    if (pages != want) {
        gprintf("counter guest: ws clamped from %lu to %lu pages (memory top "
                "0x%lx)\n", (unsigned long)want, (unsigned long)pages,
                (unsigned long)mem_top);
    }
    ws_pages = pages;
    ws_base = ws_start_for(pages);
    if (!ws_pages)
        gprintf("counter guest: no room for a working set, only counting\n");

    /* Generation 0 everywhere, every page filled with its gen-0 pattern. */
    for (u64 p = 0; p < ws_pages; p++) {
        gen[p] = 0;
        fill_page(p, 0);
    }

    st->counter = 0;
    st->rounds = 0;
    st->verifications = 0;
    st->errors = 0;
    st->ws_pages = ws_pages;
    st->rate = rate;
    st->tsc_khz = tsc_khz;
    st->pages_dirtied = 0;
    st->last_tsc = rdtsc();
    st->max_gap_tsc = 0;
    st->idle_us = idle_us;
    st->sleeps = 0;
    st->halts = 0;
    st->gap_log_count = 0;
    st->gap_log_min_tsc = GAP_LOG_MIN_US * tsc_khz / 1000;
    barrier();
    st->magic = STATUS_MAGIC;
    barrier();

    if (rate == RATE_MAX)
        gprintf("counter guest: ws_pages=%lu rate=max interval=%lu verify=%lu "
                "tsc_khz=%lu\n", (unsigned long)ws_pages,
                (unsigned long)interval_ms, (unsigned long)verify_ms,
                (unsigned long)tsc_khz);
    else
        gprintf("counter guest: ws_pages=%lu rate=%lu interval=%lu verify=%lu "
                "tsc_khz=%lu\n", (unsigned long)ws_pages, (unsigned long)rate,
                (unsigned long)interval_ms, (unsigned long)verify_ms,
                (unsigned long)tsc_khz);
    gprintf("COUNTER READY\n");

    const u64 tps = tsc_khz * 1000;             /* TSC ticks per second */
    const u64 interval_ticks = interval_ms * tsc_khz;
    const u64 verify_ticks = verify_ms * tsc_khz;
    const u64 idle_ticks = idle_us * tsc_khz / 1000;
    u64 now = rdtsc();
    u64 last = now, credit = 0;
    u64 next_status = now + interval_ticks;
    u64 next_verify = now + verify_ticks;
    u64 next_page = 0, vpage = 0;
    u64 prev = now, max_gap = 0, asked = 0;
    int verifying = 0;

    u64 count = 0;
    for (;;) {
        /*
         * The counter lives in a register and is stored on every
         * increment: one store per iteration, no load-to-store dependency
         * through memory, so it runs at store throughput.
         */
        for (unsigned i = 0; i < COUNT_BATCH; i++)
            st->counter = ++count;
        now = rdtsc();
        st->last_tsc = now;
        /*
         * The longest the loop went without running, by the guest's own
         * TSC: a pause, a live update, a migration's switch over.  A
         * sleep the guest asked for (idle=) is no gap; a wake that comes
         * late is.
         */
        if ((s64)(now - prev) > (s64)asked)
            record_gap(st, now, now - prev - asked, &max_gap);
        prev = now;
        asked = 0;

        /* Dirtying, paced by TSC credit (page-ticks; tps of it = 1 page). */
        if (ws_pages && rate) {
            u64 todo;
            if (rate == RATE_MAX) {
                todo = MAX_DIRTY_BATCH;
            } else {
                u64 elapsed = now - last;
                if (elapsed > tps)      /* paused/stopped: at most 1 s worth */
                    elapsed = tps;
                credit += elapsed * rate;
                if (credit > tps * rate)        /* backlog: at most 1 s */
                    credit = tps * rate;
                todo = credit / tps;
                if (todo > MAX_DIRTY_BATCH)
                    todo = MAX_DIRTY_BATCH;
                credit -= todo * tps;
            }
            last = now;
            for (u64 k = 0; k < todo; k++) {
                dirty_page(next_page);
                if (++next_page == ws_pages) {
                    next_page = 0;
                    st->rounds++;
                }
            }
            st->pages_dirtied += todo;
        }

        /* Verification, a few pages per check so the counter keeps going. */
        if (ws_pages && verify_ms) {
            if (!verifying && (s64)(now - next_verify) >= 0) {
                verifying = 1;
                vpage = 0;
                next_verify = now + verify_ticks;
            }
            if (verifying) {
                u64 bad = 0;
                for (unsigned k = 0; k < MAX_VERIFY_BATCH && vpage < ws_pages;
                     k++, vpage++)
                    bad += !verify_page(vpage);
                if (bad)
                    st->errors += bad;
                if (vpage == ws_pages) {
                    verifying = 0;
                    st->verifications++;
                }
            }
        }

        if (interval_ms && (s64)(now - next_status) >= 0) {
            gprintf("COUNTER counter=%lu rounds=%lu verifications=%lu "
                    "errors=%lu dirtied=%lu max_gap_us=%lu\n",
                    (unsigned long)st->counter, (unsigned long)st->rounds,
                    (unsigned long)st->verifications, (unsigned long)st->errors,
                    (unsigned long)st->pages_dirtied,
                    (unsigned long)(max_gap * 1000 / tsc_khz));
            next_status += interval_ticks;
            if ((s64)(now - next_status) >= 0)     /* fell behind: resync */
                next_status = now + interval_ticks;
        }

        /*
         * Idle: sleep unless dirtying is owed (more credit than one batch
         * took; rate=max owes nothing: MAX_DIRTY_BATCH pages per wake).
         * A verification goes on a few pages per wake.
         */
        if (idle_ticks && !(rate != RATE_MAX && credit >= tps)) {
            u64 t = rdtsc();

            st->halts += lapic_sleep_until(t + idle_ticks);
            st->sleeps++;
            asked = idle_ticks;
        }
    }
}
