/*
 * A NOR flash simulator over a caller-supplied RAM buffer, reachable through a
 * chunkprov_platform (read/write/erase/geometry/log callbacks).
 *
 * NOR rules it enforces (each violation is an error returned as a negative
 * value, counted in nor_counts.violations, and nothing is changed):
 *   - reads: any offset and length inside the capacity;
 *   - writes: offset and length multiples of the write unit; a write only
 *     clears bits (new = old & data); a write unit programmed twice without an
 *     erase in between is an error;
 *   - erases: offset and length multiples of the page (erase unit); sets the
 *     pages to 0xFF and makes their units writable again;
 *   - anything past the capacity is an error.
 *
 * It counts operations (calls, write units programmed, pages erased) and can
 * make the N-th operation of chosen kinds fail (fault injection).
 *
 * Every operation goes through one gate (nor_sim.c: gate()) that decides
 * whether it runs, fails or runs partly. A power cut uses the same gate: the
 * N-th write/erase after nor_sim_power_cut() is the last one to reach the
 * flash (optionally only half done), and every operation after it fails with
 * NOR_SIM_ERR_POWER until nor_sim_power_on() (the "reboot").
 *
 * No allocation: the caller provides the flash bytes and a map of one bit per
 * write unit (NOR_SIM_MAP_BYTES). Not thread safe.
 */
#ifndef CHUNKPROV_TEST_NOR_SIM_H
#define CHUNKPROV_TEST_NOR_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkprov.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Errors the callbacks return (negative, errno-style). */
#define NOR_SIM_ERR_ALIGN (-22)    /* EINVAL: misaligned offset or length */
#define NOR_SIM_ERR_RANGE (-34)    /* ERANGE: past the capacity */
#define NOR_SIM_ERR_TWICE (-17)    /* EEXIST: unit written twice without erase */
#define NOR_SIM_ERR_INJECTED (-5)  /* EIO: default injected failure */
#define NOR_SIM_ERR_POWER (-19)    /* ENODEV: the power was cut */

/* Operation kinds, as a bit mask for fault injection and power cuts. */
#define NOR_SIM_OP_READ 1u
#define NOR_SIM_OP_WRITE 2u
#define NOR_SIM_OP_ERASE 4u
#define NOR_SIM_OP_GEOMETRY 8u

/* Bytes of the unit map for a flash of `capacity` bytes and write unit `ws`. */
#define NOR_SIM_MAP_BYTES(capacity, ws) ((((capacity) / (ws)) + 7u) / 8u)

typedef struct nor_counts {
    uint32_t reads;       /* read calls */
    uint32_t read_bytes;  /* bytes read */
    uint32_t writes;      /* write calls that programmed */
    uint32_t units;       /* write units programmed */
    uint32_t erases;      /* erase calls that erased */
    uint32_t pages;       /* pages erased */
    uint32_t geometry;    /* geometry calls */
    uint32_t violations;  /* NOR rule violations (misaligned, range, twice) */
    uint32_t injected;    /* operations failed on purpose (fault or power cut) */
} nor_counts;

typedef struct nor_log_stats {
    uint32_t lines[5];    /* lines received per chunkprov_log_level (index 1..4) */
    uint32_t total;
    uint32_t bad;         /* lines that were not NUL-terminated within 96 bytes */
    char last[128];       /* the last line */
    char last_error[128]; /* the last CHUNKPROV_LOG_LEVEL_ERROR line */
} nor_log_stats;

typedef struct nor_sim {
    uint8_t *mem;
    uint8_t *map; /* one bit per write unit: programmed since the last erase */
    uint32_t capacity;
    uint32_t write_size;
    uint32_t erase_size;

    nor_counts counts;
    nor_log_stats log;
    bool verbose; /* print log lines (and violations) to stdout */

    /* Fault injection: the fail_nth-th operation of a kind in fail_kinds
     * (counted from nor_sim_fail_nth()) returns fail_code and does nothing. */
    uint32_t fail_kinds;
    uint32_t fail_nth;
    uint32_t fail_seen;
    int fail_code;

    /* Power cut: the cut_nth-th operation of a kind in cut_kinds is the last
     * to reach the flash; with cut_half it is left half done and fails. */
    uint32_t cut_kinds;
    uint32_t cut_nth;
    uint32_t cut_seen;
    bool cut_half;
    bool powered_off;

    int last_error; /* last non-zero value a callback returned */
} nor_sim;

/* Sets up a flash of `capacity` bytes over `mem` (capacity bytes) and `map`
 * (NOR_SIM_MAP_BYTES(capacity, write_size) bytes), all erased. write_size: a
 * power of two from 1 to 32; erase_size: a power of two >= write_size that
 * divides the capacity. Returns 0 or NOR_SIM_ERR_ALIGN. */
int nor_sim_init(nor_sim *sim, uint8_t *mem, uint8_t *map, uint32_t capacity,
                 uint32_t write_size, uint32_t erase_size);

/* The platform for `sim`; with_log selects whether the log callback is set. */
chunkprov_platform nor_sim_platform(nor_sim *sim, bool with_log);

/* Zeroes the counters and the log statistics. */
void nor_sim_reset_counts(nor_sim *sim);

/* Makes the n-th (1-based) operation of a kind in `kinds` from now on fail
 * with `code` (negative). n == 0 disarms. */
void nor_sim_fail_nth(nor_sim *sim, uint32_t kinds, uint32_t n, int code);

/* Cuts the power at the n-th (1-based) write/erase from now on (kinds within
 * NOR_SIM_OP_WRITE | NOR_SIM_OP_ERASE). half: that operation is left half
 * done (the first half of its bytes programmed / erased) and fails; otherwise
 * it completes and succeeds. Every later operation fails with
 * NOR_SIM_ERR_POWER. n == 0 disarms. */
void nor_sim_power_cut(nor_sim *sim, uint32_t kinds, uint32_t n, bool half);

/* Power back on after a cut (flash contents are kept, as on real NOR). */
void nor_sim_power_on(nor_sim *sim);

/* Direct access for tests, bypassing fault injection and counters but
 * obeying NOR rules: program `len` bytes (write-unit aligned) / erase pages.
 * Return 0 or a negative error. */
int nor_sim_program(nor_sim *sim, uint32_t offset, const uint8_t *data, uint32_t len);
int nor_sim_erase_pages(nor_sim *sim, uint32_t offset, uint32_t len);

/* Whether the write unit holding `offset` was programmed since its erase. */
bool nor_sim_unit_written(const nor_sim *sim, uint32_t offset);

/* The callbacks, exported for tests that build their own platform. */
int nor_sim_read_cb(void *ctx, uint32_t offset, uint8_t *buf, uint32_t len);
int nor_sim_write_cb(void *ctx, uint32_t offset, const uint8_t *buf, uint32_t len);
int nor_sim_erase_cb(void *ctx, uint32_t offset, uint32_t len);
int nor_sim_geometry_cb(void *ctx, chunkprov_geometry *out);
void nor_sim_log_cb(void *ctx, chunkprov_log_level level, const char *message);

#ifdef __cplusplus
}
#endif

#endif /* CHUNKPROV_TEST_NOR_SIM_H */
