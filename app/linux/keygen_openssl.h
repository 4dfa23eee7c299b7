#ifndef KEYGEN_OPENSSL_H
#define KEYGEN_OPENSSL_H

#include "cpa_keys.h"

/* A cpa_keygen_fn: ECDSA P-256 key and CSR (CN = serial) with OpenSSL. */
int keygen_openssl(void *ctx, const char *serial, char *csr, size_t csr_cap, uint8_t *key,
                   size_t key_cap, size_t *key_len);

#endif /* KEYGEN_OPENSSL_H */
