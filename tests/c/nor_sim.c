/*
 * NOR flash simulator: see nor_sim.h.
 */
#include "nor_sim.h"

#include <stdio.h>
#include <string.h>

/* Longest log line the library sends, including its NUL (the C ABI's line
 * buffer); longer means a missing terminator. */
#define LOG_LINE_MAX 96

static bool is_pow2(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

int nor_sim_init(nor_sim *sim, uint8_t *mem, uint8_t *map, uint32_t capacity,
                 uint32_t write_size, uint32_t erase_size)
{
    memset(sim, 0, sizeof *sim);
    if (!is_pow2(write_size) || write_size > 32 || !is_pow2(erase_size) ||
        erase_size < write_size || capacity == 0 || capacity % erase_size != 0) {
        return NOR_SIM_ERR_ALIGN;
    }
    sim->mem = mem;
    sim->map = map;
    sim->capacity = capacity;
    sim->write_size = write_size;
    sim->erase_size = erase_size;
    memset(mem, 0xFF, capacity);
    memset(map, 0, NOR_SIM_MAP_BYTES(capacity, write_size));
    return 0;
}

chunkprov_platform nor_sim_platform(nor_sim *sim, bool with_log)
{
    chunkprov_platform p;
    memset(&p, 0, sizeof p); /* members the reassembler does not use (random) are NULL */
    p.ctx = sim;
    p.read = nor_sim_read_cb;
    p.write = nor_sim_write_cb;
    p.erase = nor_sim_erase_cb;
    p.geometry = nor_sim_geometry_cb;
    p.log = with_log ? nor_sim_log_cb : NULL;
    return p;
}

void nor_sim_reset_counts(nor_sim *sim)
{
    memset(&sim->counts, 0, sizeof sim->counts);
    memset(&sim->log, 0, sizeof sim->log);
}

void nor_sim_fail_nth(nor_sim *sim, uint32_t kinds, uint32_t n, int code)
{
    sim->fail_kinds = kinds;
    sim->fail_nth = n;
    sim->fail_seen = 0;
    sim->fail_code = code;
}

void nor_sim_power_cut(nor_sim *sim, uint32_t kinds, uint32_t n, bool half)
{
    sim->cut_kinds = kinds & (NOR_SIM_OP_WRITE | NOR_SIM_OP_ERASE);
    sim->cut_nth = n;
    sim->cut_seen = 0;
    sim->cut_half = half;
}

void nor_sim_power_on(nor_sim *sim) { sim->powered_off = false; }

/* ---- unit map ---- */

static bool unit_get(const nor_sim *s, uint32_t unit)
{
    return (s->map[unit / 8] >> (unit % 8)) & 1u;
}

static void unit_set(nor_sim *s, uint32_t unit, bool on)
{
    if (on) {
        s->map[unit / 8] |= (uint8_t)(1u << (unit % 8));
    } else {
        s->map[unit / 8] &= (uint8_t)~(1u << (unit % 8));
    }
}

bool nor_sim_unit_written(const nor_sim *sim, uint32_t offset)
{
    return offset < sim->capacity && unit_get(sim, offset / sim->write_size);
}

/* ---- rule checks ---- */

static int violation(nor_sim *s, const char *what, uint32_t offset, uint32_t len, int rc)
{
    s->counts.violations++;
    s->last_error = rc;
    if (s->verbose) {
        printf("nor_sim: %s at 0x%lx len %lu: error %d\n", what, (unsigned long)offset,
               (unsigned long)len, rc);
    }
    return rc;
}

static bool in_range(const nor_sim *s, uint32_t offset, uint32_t len)
{
    return offset <= s->capacity && len <= s->capacity - offset;
}

static int check_write(nor_sim *s, uint32_t offset, uint32_t len)
{
    if (offset % s->write_size != 0 || len % s->write_size != 0) {
        return violation(s, "misaligned write", offset, len, NOR_SIM_ERR_ALIGN);
    }
    if (!in_range(s, offset, len)) {
        return violation(s, "write out of range", offset, len, NOR_SIM_ERR_RANGE);
    }
    for (uint32_t u = offset / s->write_size; u < (offset + len) / s->write_size; u++) {
        if (unit_get(s, u)) {
            return violation(s, "unit written twice", u * s->write_size, len,
                             NOR_SIM_ERR_TWICE);
        }
    }
    return 0;
}

static int check_erase(nor_sim *s, uint32_t offset, uint32_t len)
{
    if (offset % s->erase_size != 0 || len % s->erase_size != 0) {
        return violation(s, "misaligned erase", offset, len, NOR_SIM_ERR_ALIGN);
    }
    if (!in_range(s, offset, len)) {
        return violation(s, "erase out of range", offset, len, NOR_SIM_ERR_RANGE);
    }
    return 0;
}

/* ---- the effects, shared by callbacks and direct access ---- */

static void do_program(nor_sim *s, uint32_t offset, const uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        s->mem[offset + i] &= data[i];
    }
    if (len > 0) {
        uint32_t first = offset / s->write_size;
        uint32_t last = (offset + len - 1) / s->write_size;
        for (uint32_t u = first; u <= last; u++) {
            unit_set(s, u, true);
        }
    }
}

static void do_erase(nor_sim *s, uint32_t offset, uint32_t len)
{
    memset(s->mem + offset, 0xFF, len);
    /* Only units wholly inside the range become writable again. */
    uint32_t first = (offset + s->write_size - 1) / s->write_size;
    uint32_t end = (offset + len) / s->write_size;
    for (uint32_t u = first; u < end; u++) {
        unit_set(s, u, false);
    }
}

/* ---- the gate every callback operation passes ---- */

enum gate { GATE_RUN, GATE_HALF, GATE_FAIL };

static enum gate gate(nor_sim *s, uint32_t kind, int *rc)
{
    *rc = 0;
    if (s->powered_off) {
        s->counts.injected++;
        *rc = NOR_SIM_ERR_POWER;
        return GATE_FAIL;
    }
    if (s->fail_nth != 0 && (s->fail_kinds & kind) != 0) {
        if (++s->fail_seen == s->fail_nth) {
            s->fail_nth = 0;
            s->counts.injected++;
            *rc = s->fail_code != 0 ? s->fail_code : NOR_SIM_ERR_INJECTED;
            return GATE_FAIL;
        }
    }
    if (s->cut_nth != 0 && (s->cut_kinds & kind) != 0) {
        if (++s->cut_seen == s->cut_nth) {
            s->cut_nth = 0;
            s->powered_off = true;
            if (s->cut_half) {
                s->counts.injected++;
                *rc = NOR_SIM_ERR_POWER;
                return GATE_HALF;
            }
        }
    }
    return GATE_RUN;
}

static int fail(nor_sim *s, int rc)
{
    s->last_error = rc;
    return rc;
}

/* ---- callbacks ---- */

int nor_sim_read_cb(void *ctx, uint32_t offset, uint8_t *buf, uint32_t len)
{
    nor_sim *s = ctx;
    if (!in_range(s, offset, len)) {
        return violation(s, "read out of range", offset, len, NOR_SIM_ERR_RANGE);
    }
    int rc;
    if (gate(s, NOR_SIM_OP_READ, &rc) != GATE_RUN) {
        return fail(s, rc);
    }
    memcpy(buf, s->mem + offset, len);
    s->counts.reads++;
    s->counts.read_bytes += len;
    return 0;
}

int nor_sim_write_cb(void *ctx, uint32_t offset, const uint8_t *buf, uint32_t len)
{
    nor_sim *s = ctx;
    int rc = check_write(s, offset, len);
    if (rc != 0) {
        return rc;
    }
    switch (gate(s, NOR_SIM_OP_WRITE, &rc)) {
    case GATE_FAIL:
        return fail(s, rc);
    case GATE_HALF:
        do_program(s, offset, buf, len / 2);
        return fail(s, rc);
    case GATE_RUN:
        break;
    }
    do_program(s, offset, buf, len);
    s->counts.writes++;
    s->counts.units += len / s->write_size;
    return 0;
}

int nor_sim_erase_cb(void *ctx, uint32_t offset, uint32_t len)
{
    nor_sim *s = ctx;
    int rc = check_erase(s, offset, len);
    if (rc != 0) {
        return rc;
    }
    switch (gate(s, NOR_SIM_OP_ERASE, &rc)) {
    case GATE_FAIL:
        return fail(s, rc);
    case GATE_HALF:
        do_erase(s, offset, len / 2);
        return fail(s, rc);
    case GATE_RUN:
        break;
    }
    do_erase(s, offset, len);
    s->counts.erases++;
    s->counts.pages += len / s->erase_size;
    return 0;
}

int nor_sim_geometry_cb(void *ctx, chunkprov_geometry *out)
{
    nor_sim *s = ctx;
    int rc;
    if (gate(s, NOR_SIM_OP_GEOMETRY, &rc) != GATE_RUN) {
        return fail(s, rc);
    }
    s->counts.geometry++;
    out->write_size = s->write_size;
    out->erase_size = s->erase_size;
    out->capacity = s->capacity;
    return 0;
}

void nor_sim_log_cb(void *ctx, chunkprov_log_level level, const char *message)
{
    nor_sim *s = ctx;
    size_t n = 0;
    while (n < LOG_LINE_MAX && message[n] != '\0') {
        n++;
    }
    if (n == LOG_LINE_MAX) {
        s->log.bad++;
        n = LOG_LINE_MAX - 1;
    }
    if ((int)level >= 1 && (int)level <= 4) {
        s->log.lines[level]++;
    } else {
        s->log.bad++;
    }
    s->log.total++;
    size_t keep = n < sizeof s->log.last ? n : sizeof s->log.last - 1;
    memcpy(s->log.last, message, keep);
    s->log.last[keep] = '\0';
    if (level == CHUNKPROV_LOG_LEVEL_ERROR) {
        memcpy(s->log.last_error, s->log.last, keep + 1);
    }
    if (s->verbose) {
        printf("  [log %d] %s\n", (int)level, s->log.last);
    }
}

/* ---- direct access ---- */

/* Rule violations here are the test's own doing: not counted. */

int nor_sim_program(nor_sim *sim, uint32_t offset, const uint8_t *data, uint32_t len)
{
    uint32_t violations = sim->counts.violations;
    int rc = check_write(sim, offset, len);
    sim->counts.violations = violations;
    if (rc == 0) {
        do_program(sim, offset, data, len);
    }
    return rc;
}

int nor_sim_erase_pages(nor_sim *sim, uint32_t offset, uint32_t len)
{
    uint32_t violations = sim->counts.violations;
    int rc = check_erase(sim, offset, len);
    sim->counts.violations = violations;
    if (rc == 0) {
        do_erase(sim, offset, len);
    }
    return rc;
}
