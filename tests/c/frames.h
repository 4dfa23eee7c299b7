/*
 * A stand-in for the cloud's encoder, written in C from the wire-format
 * specification (protocol/src/frame.rs, chunking.rs, bundle.rs, crc.rs) for
 * the C tests. It is NOT the cloud's code and shares no code with the
 * library: its own CRC-32, its own CBOR head writer. Only the SHA-256 comes
 * from the library (chunkprov_sha256), as firmware would use it.
 *
 * Bundle: CBOR array of 5: thing name (text), certificate id (text),
 *   certificate PEM + NUL (bytes), private key PEM + NUL (bytes) or null
 *   (0xF6), server CA PEM + NUL (bytes) or null. Shortest-form heads.
 * Chunking: chunk = round_up(ceil(L / N), 32) with N = ceil(L / max_chunk),
 *   max_chunk a multiple of 32; frame i carries bundle bytes
 *   [i * chunk, min((i + 1) * chunk, L)).
 * Frame: CBOR array of 8: [nonce bstr(8), transfer id uint, index uint,
 *   count uint, bundle length uint, SHA-256 bstr(32), CRC-32 uint (zlib
 *   CRC-32 of the payload), payload bstr]. Shortest-form heads.
 */
#ifndef CHUNKPROV_TEST_FRAMES_H
#define CHUNKPROV_TEST_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkprov.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FRAMES_ALIGN 32u          /* chunk granularity */
#define FRAMES_HEADER_MAX 68u     /* longest frame header (bytes before the payload) */
#define FRAMES_MAX_BUNDLE 16384u  /* largest bundle */
#define FRAMES_MAX_COUNT 256u     /* most frames in a transfer */

#define CBOR_MAJOR_UINT 0u
#define CBOR_MAJOR_BYTES 2u
#define CBOR_MAJOR_TEXT 3u
#define CBOR_MAJOR_ARRAY 4u
#define CBOR_NULL 0xF6u

/* ---- CBOR heads and CRC-32 ---- */

/* Writes the shortest head for (major, value) into out (room for 9 bytes);
 * returns its length. */
size_t cbor_head(uint8_t major, uint64_t value, uint8_t *out);
/* Length of the shortest head for value. */
size_t cbor_head_len(uint64_t value);

/* CRC-32/ISO-HDLC (zlib crc32): crc32_update(0, ...) starts, chain the
 * result to continue. */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len);
uint32_t crc32_of(const uint8_t *data, size_t len);

/* ---- bundles ---- */

typedef struct frames_bundle {
    const char *thing_name;
    const char *certificate_id;
    const char *certificate_pem; /* PEM text without the NUL */
    const char *private_key_pem; /* NULL: CSR mode (CBOR null) */
    const char *server_ca_pem;   /* NULL: none (CBOR null) */
} frames_bundle;

typedef struct frames_span {
    uint32_t offset; /* from the start of the bundle */
    uint32_t len;    /* 0: absent; PEM items include the NUL */
} frames_span;

typedef struct frames_layout {
    frames_span thing_name, certificate_id, certificate, private_key, server_ca;
} frames_layout;

/* Encodes the bundle into out; returns its length, or 0 if it does not fit
 * in cap. layout (may be NULL) receives where each item's bytes lie. */
size_t frames_bundle_encode(const frames_bundle *b, uint8_t *out, size_t cap,
                            frames_layout *layout);

/* A PEM-shaped text of at least approx_len bytes ("-----BEGIN label-----\n",
 * 64-column base64-alphabet lines, "-----END label-----\n"), NUL-terminated.
 * Returns its length without the NUL, or 0 if it does not fit in cap. */
size_t frames_pem(char *out, size_t cap, const char *label, size_t approx_len, unsigned seed);

/* ---- chunking ---- */

typedef struct frames_plan {
    uint32_t bundle_len;
    uint32_t count;
    uint32_t chunk;
} frames_plan;

/* The cloud's plan: N = ceil(L / max_chunk) (max_chunk rounded down to a
 * multiple of 32). false if L is 0 or too large, or N is too large. */
bool frames_plan_for_bundle(uint32_t bundle_len, uint32_t max_chunk, frames_plan *out);
/* The plan a header's (L, N) implies; false if no valid transfer has it. */
bool frames_plan_from_header(uint32_t bundle_len, uint32_t count, frames_plan *out);
/* Offset and length of frame index (index < count). */
void frames_plan_frame(const frames_plan *p, uint32_t index, uint32_t *offset, uint32_t *len);

/* ---- frames ---- */

/* Header fields are wide so tests can encode values out of the wire
 * format's ranges (they are written as CBOR unsigned integers as given). */
typedef struct frames_header {
    uint8_t nonce[CHUNKPROV_NONCE_LEN];
    uint64_t transfer_id;
    uint64_t index;
    uint64_t count;
    uint64_t bundle_len;
    uint8_t sha256[32];
    uint64_t crc32;
} frames_header;

/* Encodes a frame; returns its length, or 0 if it does not fit in cap. */
size_t frames_encode(const frames_header *h, const uint8_t *payload, uint32_t payload_len,
                     uint8_t *out, size_t cap);

/* One bundle's transfer: makes any of its frames on demand. */
typedef struct frames_transfer {
    const uint8_t *bundle;
    frames_plan plan;
    uint8_t nonce[CHUNKPROV_NONCE_LEN];
    uint32_t transfer_id;
    uint8_t sha256[32];
} frames_transfer;

/* false if the bundle cannot be planned or hashed. The bundle must outlive t. */
bool frames_transfer_init(frames_transfer *t, const uint8_t *bundle, uint32_t len,
                          uint32_t max_chunk, const uint8_t nonce[CHUNKPROV_NONCE_LEN],
                          uint32_t transfer_id);
/* The header and payload of frame index. */
void frames_transfer_header(const frames_transfer *t, uint32_t index, frames_header *h,
                            const uint8_t **payload, uint32_t *payload_len);
/* Encodes frame index into out; returns its length or 0. */
size_t frames_transfer_frame(const frames_transfer *t, uint32_t index, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* CHUNKPROV_TEST_FRAMES_H */
