/*
 * TLS credentials for Zephyr's own TLS (Mbed TLS sockets), e.g. native_sim: the claim
 * credentials registered once, the new ones registered from flash under the slot's sec_tag
 * before each connection. The volatile credential store keeps the pointer it is given (no copy),
 * so the certificate, key and CA are handed to it where they lie in flash; PEM items carry their
 * NUL, which Mbed TLS needs counted. (On nRF91 the modem holds the credentials: modem.c.)
 */
#include <errno.h>
#include <string.h>

#include <zephyr/logging/log.h>
#include <zephyr/net/tls_credentials.h>

#include "app.h"

LOG_MODULE_DECLARE(chunkprov_app, CONFIG_CHUNKPROV_APP_LOG_LEVEL);

static const char *claim_ca;

/* Replaces one credential of `tag`. */
static int put(sec_tag_t tag, enum tls_credential_type type, const void *buf, size_t len)
{
    (void)tls_credential_delete(tag, type); /* -ENOENT the first time */
    int rc = tls_credential_add(tag, type, buf, len);
    if (rc != 0) {
        LOG_ERR("tls_credential_add(%d, %d): %d", tag, type, rc);
    }
    return rc;
}

int app_creds_init(const struct app_settings *s)
{
    if (s->ca_pem == NULL || s->claim_cert_pem == NULL || s->claim_key_pem == NULL) {
        LOG_ERR("no claim credentials (native_sim: --ca, --claim-cert, --claim-key)");
        return -ENOENT;
    }
    claim_ca = s->ca_pem;
    const sec_tag_t tag = CONFIG_CHUNKPROV_APP_SEC_TAG_CLAIM;
    int rc = put(tag, TLS_CREDENTIAL_CA_CERTIFICATE, s->ca_pem, strlen(s->ca_pem) + 1);
    if (rc == 0) {
        rc = put(tag, TLS_CREDENTIAL_PUBLIC_CERTIFICATE, s->claim_cert_pem,
                 strlen(s->claim_cert_pem) + 1);
    }
    if (rc == 0) {
        rc = put(tag, TLS_CREDENTIAL_PRIVATE_KEY, s->claim_key_pem, strlen(s->claim_key_pem) + 1);
    }
    return rc;
}

/* A PEM item in flash, its NUL included, or NULL. */
static const uint8_t *pem_at(const struct app_flash *f, chunkprov_span s)
{
    const uint8_t *p = s.len > 1 ? app_flash_at(f, s.offset, s.len) : NULL;
    return p != NULL && p[s.len - 1] == '\0' ? p : NULL;
}

int app_creds_for(const struct app_flash *f, const struct cpa_identity *id,
                  chunkprov_span device_key, sec_tag_t *tag)
{
    if (id->claim) {
        *tag = CONFIG_CHUNKPROV_APP_SEC_TAG_CLAIM;
        return 0;
    }
    *tag = id->slot == 0 ? CONFIG_CHUNKPROV_APP_SEC_TAG_SLOT_A : CONFIG_CHUNKPROV_APP_SEC_TAG_SLOT_B;
    chunkprov_span key = device_key.len > 0 ? device_key : id->creds.private_key;
    const uint8_t *cert = pem_at(f, id->creds.certificate);
    const uint8_t *k = pem_at(f, key);
    const uint8_t *ca = id->creds.server_ca.len > 0 ? pem_at(f, id->creds.server_ca)
                                                     : (const uint8_t *)claim_ca;
    if (cert == NULL || k == NULL || ca == NULL) {
        LOG_ERR("slot %u: credentials not found in memory-mapped flash", id->slot);
        return -ENOTSUP;
    }
    size_t ca_len = id->creds.server_ca.len > 0 ? id->creds.server_ca.len : strlen(claim_ca) + 1;
    int rc = put(*tag, TLS_CREDENTIAL_CA_CERTIFICATE, ca, ca_len);
    if (rc == 0) {
        rc = put(*tag, TLS_CREDENTIAL_PUBLIC_CERTIFICATE, cert, id->creds.certificate.len);
    }
    if (rc == 0) {
        rc = put(*tag, TLS_CREDENTIAL_PRIVATE_KEY, k, key.len);
    }
    return rc;
}
