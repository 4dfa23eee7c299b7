/*
 * Shared set-up for the C tests: one simulated flash, one reassembler, sample
 * bundles, and helpers that deliver frame messages the way firmware does
 * (chunkprov_reassembler_feed in pieces, then chunkprov_reassembler_end).
 *
 * Everything big is static (the QEMU image has a 64 KiB stack).
 */
#ifndef CHUNKPROV_TEST_FIXTURE_H
#define CHUNKPROV_TEST_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkprov.h"
#include "frames.h"
#include "nor_sim.h"
#include "test.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FX_FLASH_MAX (256u * 1024u)
#define FX_MSG_MAX (FRAMES_MAX_BUNDLE + FRAMES_HEADER_MAX + 64u)

extern const uint8_t fx_nonce[CHUNKPROV_NONCE_LEN];
extern const char fx_thing_name[];
extern const char fx_certificate_id[];

/* A bundle and where its items lie (offsets from the bundle's start). */
typedef struct fx_bundle {
    uint8_t bytes[FRAMES_MAX_BUNDLE];
    uint32_t len;
    frames_layout layout;
} fx_bundle;

enum fx_kind {
    FX_CERT_CA,      /* CSR mode: certificate and server CA, no key (~2.9 KB) */
    FX_KEY_CA,       /* key mode: certificate, key and server CA (~3.2 KB) */
    FX_KEY_ONLY,     /* key mode without a server CA */
    FX_KIND_COUNT
};

/* The sample bundle of a kind (built once). */
const fx_bundle *fx_sample(enum fx_kind kind);

/* The flash, the platform over it, the reassembler and its slot. */
extern nor_sim fx_sim;
extern chunkprov_platform fx_platform;
extern chunkprov_reassembler fx_r;
extern uint32_t fx_slot_offset;
extern uint32_t fx_slot_size;

/* A flash with write unit ws and page es: one page, the slot (slot_size
 * bytes, a multiple of es), one page. Initialises fx_r for fx_nonce (over
 * garbage storage) and zeroes the counters. log: set the log callback. */
void fx_setup(uint32_t ws, uint32_t es, uint32_t slot_size, bool log);
/* The smallest slot for a bundle of len bytes with pages of es. */
uint32_t fx_slot_for(uint32_t len, uint32_t es);

/* The last message built by fx_frame() and its length. */
extern uint8_t fx_msg[FX_MSG_MAX];
extern size_t fx_msg_len;
/* Encodes frame i of t into fx_msg. */
void fx_frame(const frames_transfer *t, uint32_t i);

/* Feeds msg in pieces of `piece` bytes (0: all at once) and returns the
 * verdict of chunkprov_reassembler_end (index: as for it, may be NULL).
 * Checks that an early notice from feed is a rejection or FLASH_ERROR and
 * that the verdict agrees with it (FLASH_ERROR -> ABORTED). */
chunkprov_status fx_deliver(const uint8_t *msg, size_t len, size_t piece, uint16_t *index);
/* The same with pieces of random sizes from 1 to max_piece. */
chunkprov_status fx_deliver_random(const uint8_t *msg, size_t len, size_t max_piece,
                                   uint16_t *index);
/* fx_frame(t, i) then fx_deliver(). */
chunkprov_status fx_deliver_frame(const frames_transfer *t, uint32_t i, size_t piece,
                                  uint16_t *index);

/* Delivers every frame of t in order, checking OK + index for all but the
 * last and COMPLETE for the last. */
void fx_transfer_in_order(const frames_transfer *t, size_t piece);

/* Checks the slot holds b, chunkprov_reassembler_credentials spans point at
 * b's items in the simulated flash, PEMs end with NUL, and progress says
 * every frame is held. */
void fx_check_complete(const fx_bundle *b);

/* Checks the flash work of one clean transfer of a len-byte bundle: one
 * erase of the ceil(len / page) pages touched, ceil(len / write unit) units
 * programmed, no NOR rule broken. */
void fx_check_clean_work(uint32_t len);

/* Deterministic pseudo-random numbers. */
void fx_seed(uint32_t seed);
uint32_t fx_rand(void);
/* A permutation of 0..n-1 plus every third index again (duplicates),
 * shuffled; returns its length (n + ceil(n / 3)). order: room for 2n. */
uint32_t fx_shuffled_with_duplicates(uint32_t n, uint16_t *order);

#ifdef __cplusplus
}
#endif

#endif /* CHUNKPROV_TEST_FIXTURE_H */
