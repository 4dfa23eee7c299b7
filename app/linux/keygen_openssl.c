/*
 * The device key and CSR on Linux (a cpa_keygen_fn): an ECDSA P-256 key made with OpenSSL, a
 * PKCS#10 CSR whose subject is CN=<serial>, sent as base64url DER (as the nRF91 modem gives
 * it), the key kept as PKCS#8 PEM in the key record in flash.
 */
#include "keygen_openssl.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

int keygen_openssl(void *ctx, const char *serial, char *csr, size_t csr_cap, uint8_t *key,
                   size_t key_cap, size_t *key_len)
{
    (void)ctx;
    int rc = -EIO;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509_REQ *req = X509_REQ_new();
    BIO *pem = BIO_new(BIO_s_mem());
    unsigned char *der = NULL;
    if (k == NULL || req == NULL || pem == NULL) {
        goto out;
    }
    X509_NAME *name = X509_REQ_get_subject_name(req);
    if (X509_REQ_set_version(req, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)serial, -1,
                                   -1, 0) != 1 ||
        X509_REQ_set_pubkey(req, k) != 1 || X509_REQ_sign(req, k, EVP_sha256()) <= 0) {
        goto out;
    }
    int der_len = i2d_X509_REQ(req, &der);
    if (der_len <= 0 || cpa_base64url(der, (size_t)der_len, csr, csr_cap) < 0) {
        rc = -EINVAL;
        goto out;
    }
    if (PEM_write_bio_PrivateKey(pem, k, NULL, NULL, 0, NULL, NULL) != 1) {
        goto out;
    }
    char *text = NULL;
    long n = BIO_get_mem_data(pem, &text);
    if (n <= 0 || (size_t)n + 1 > key_cap) {
        rc = -EINVAL;
        goto out;
    }
    memcpy(key, text, (size_t)n);
    key[n] = 0;
    *key_len = (size_t)n + 1;
    rc = 0;
out:
    OPENSSL_free(der);
    BIO_free(pem);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    return rc;
}
