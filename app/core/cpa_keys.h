/*
 * cpa_keys: the device's own key pair and its CSR (CSR mode), made once and kept in one erase
 * page of flash beside the client's partition, so the CSR a request carries and the key the
 * certificate is issued for survive reboots and a transfer resumed after a power cut.
 *
 * The key is made by the platform (cpa_keygen_fn): Mbed TLS/PSA on native_sim, OpenSSL on
 * Linux, the modem's AT%KEYGEN on nRF91 (where the private key never leaves the modem and only
 * the CSR is kept here).
 *
 * Page layout (offsets from the page; every part starts on a 32-byte boundary, so any write
 * unit from 1 to 32 bytes fits):
 *
 *   0    header, 32 bytes: "CPK1", csr_len (u16 LE), key_len (u16 LE), FNV-1a-32 (u32 LE) of
 *        serial || CSR || key, then 0xFF. Written last: a page without it holds nothing.
 *   32   the CSR (base64url DER), csr_len bytes, then a NUL
 *   32 + csr_len + 1 rounded up to 32: the private key (PEM and its NUL; key_len counts the
 *        NUL), absent (key_len 0) when the key lives elsewhere
 */
#ifndef CPA_KEYS_H
#define CPA_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkprov.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest CSR kept, without NUL (base64url of a P-256 CSR is about 400-600 characters). */
#define CPA_CSR_MAX 896u
/** Longest private key kept, PEM with its NUL. */
#define CPA_KEY_MAX 512u
/** Bytes of flash the record needs at most (one erase page must hold them). */
#define CPA_KEYS_BYTES (32u + ((CPA_CSR_MAX + 1u + 31u) & ~31u) + CPA_KEY_MAX)

/**
 * Makes a new key pair for `serial` and its CSR (subject CN = serial, signed with the key):
 * the CSR as base64url DER, NUL-terminated, into `csr` (`csr_cap` bytes); the private key as PEM
 * and its NUL into `key` (`key_cap` bytes), its length with the NUL into `*key_len`, or 0 when
 * the key stays in the platform (a modem sec_tag). Returns 0 or a negative errno.
 */
typedef int (*cpa_keygen_fn)(void *ctx, const char *serial, char *csr, size_t csr_cap,
                             uint8_t *key, size_t key_cap, size_t *key_len);

struct cpa_keys {
    /** The CSR, base64url DER, NUL-terminated: chunkprov_client_config.csr. */
    char csr[CPA_CSR_MAX + 1];
    /** Where the private key lies in flash (PEM, its NUL counted); len 0 if kept elsewhere. */
    chunkprov_span key;
    /** Whether this call made them (false: read back from flash). */
    bool created;
};

/**
 * Reads the key record from the erase page at `page` (`page_size` bytes, whole erase units of
 * the platform's flash) or, when the page holds none for `serial`, erases it, calls `gen` and
 * writes a new one. `scratch` (at least CPA_KEY_MAX bytes) holds the key while it is written.
 * Returns 0, -EINVAL (bad arguments, page too small, what `gen` made does not fit), or the
 * error of `gen` or of a flash callback.
 */
int cpa_keys_open(const chunkprov_platform *p, uint32_t page, uint32_t page_size,
                  const char *serial, cpa_keygen_fn gen, void *gen_ctx, uint8_t *scratch,
                  size_t scratch_len, struct cpa_keys *out);

/** Base64url (RFC 4648 §5, no padding) of `len` bytes into `out` (`cap` bytes, NUL added).
 * Returns the length without NUL, or -1 if it does not fit. */
int cpa_base64url(const uint8_t *data, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* CPA_KEYS_H */
