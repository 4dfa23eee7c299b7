/*
 * nRF91 with the nRF Connect SDK (CONFIG_CHUNKPROV_APP_MODEM): LTE, the serial from the IMEI,
 * the device key and CSR from the modem (AT%KEYGEN: the private key never leaves the modem),
 * and TLS credentials in modem sec_tags. TLS runs in the modem: the MQTT client's sec_tag list
 * names modem tags, so Zephyr's credential store is not involved.
 *
 * The modem refuses credential writes while LTE is active (modem_key_mgmt_write() returns
 * -EPERM), so a new certificate is written with the modem offline (AT+CFUN=4) straight from the
 * memory-mapped internal flash, without the PEM's NUL (the modem wants it uncounted), then LTE
 * comes back. Built only where the SDK is present: this file uses its headers alone.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <modem/lte_lc.h>
#include <modem/modem_key_mgmt.h>
#include <modem/nrf_modem_lib.h>
#include <nrf_modem_at.h>
#include <zephyr/logging/log.h>

#include "app.h"

LOG_MODULE_DECLARE(chunkprov_app, CONFIG_CHUNKPROV_APP_LOG_LEVEL);

static bool lte_up;

static int online(void)
{
    if (lte_up) {
        return 0;
    }
    LOG_INF("LTE: connecting");
    int rc = lte_lc_connect();
    if (rc != 0) {
        LOG_ERR("lte_lc_connect: %d", rc);
        return rc;
    }
    lte_up = true;
    return 0;
}

/* CFUN=4 (flight mode) with the AT command itself: lte_lc_offline() needs
 * CONFIG_LTE_LC_FUNCTIONAL_MODE_MODULE in newer SDKs and does not exist as such in all. */
static int offline(void)
{
    if (!lte_up) {
        return 0;
    }
    int rc = nrf_modem_at_printf("AT+CFUN=4");
    if (rc != 0) {
        LOG_ERR("AT+CFUN=4: %d", rc);
        return -EIO;
    }
    lte_up = false;
    return 0;
}

int app_modem_init(char *imei, size_t cap)
{
    int rc = nrf_modem_lib_init();
    if (rc != 0) {
        LOG_ERR("nrf_modem_lib_init: %d", rc);
        return rc < 0 ? rc : -EIO;
    }
    char resp[64];
    rc = nrf_modem_at_cmd(resp, sizeof resp, "AT+CGSN");
    if (rc != 0) {
        LOG_ERR("AT+CGSN: %d", rc);
        return -EIO;
    }
    size_t n = 0;
    while (n < sizeof resp && resp[n] >= '0' && resp[n] <= '9') {
        n++;
    }
    if (n == 0 || n >= cap) {
        LOG_ERR("AT+CGSN: no IMEI in the answer");
        return -EIO;
    }
    memcpy(imei, resp, n);
    imei[n] = '\0';
    LOG_INF("IMEI %s", imei);
    return 0;
}

int app_creds_init(const struct app_settings *s)
{
    ARG_UNUSED(s);
    static const enum modem_key_mgmt_cred_type need[] = {
        MODEM_KEY_MGMT_CRED_TYPE_CA_CHAIN,
        MODEM_KEY_MGMT_CRED_TYPE_PUBLIC_CERT,
        MODEM_KEY_MGMT_CRED_TYPE_PRIVATE_CERT,
    };
    for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
        bool exists = false;
        int rc = modem_key_mgmt_exists(CONFIG_CHUNKPROV_APP_SEC_TAG_CLAIM, need[i], &exists);
        if (rc != 0 || !exists) {
            LOG_ERR("claim credentials missing in modem sec_tag %d (type %d): write the CA, the "
                    "claim certificate and its key there at the factory (AT%%CMNG)",
                    CONFIG_CHUNKPROV_APP_SEC_TAG_CLAIM, (int)need[i]);
            return rc != 0 ? rc : -ENOENT;
        }
    }
    return 0;
}

int app_keygen(void *ctx, const char *serial, char *csr, size_t csr_cap, uint8_t *key,
               size_t key_cap, size_t *key_len)
{
    ARG_UNUSED(ctx);
    ARG_UNUSED(key);
    ARG_UNUSED(key_cap);
    /* WORKAROUND (C API): the client does not say when a CSR is needed or for which slot. The
     * first provisioning always receives into slot A (nothing is confirmed yet), so the key is
     * made in slot A's sec_tag, once, and its CSR kept in flash (AT%KEYGEN makes a new key every
     * time it runs). */
    int rc = offline();
    if (rc != 0) {
        return rc;
    }
    static char resp[1024];
    rc = nrf_modem_at_cmd(resp, sizeof resp, "AT%%KEYGEN=%d,2,0,\"CN=%s\"",
                          CONFIG_CHUNKPROV_APP_SEC_TAG_SLOT_A, serial);
    if (rc != 0) {
        LOG_ERR("AT%%KEYGEN: %d", rc);
        return -EIO;
    }
    /* %KEYGEN: "<base64url DER CSR>.<base64url COSE signature>": keep what is before the dot. */
    const char *p = strstr(resp, "%KEYGEN: \"");
    if (p == NULL) {
        LOG_ERR("AT%%KEYGEN: unexpected answer");
        return -EIO;
    }
    p += strlen("%KEYGEN: \"");
    size_t n = strcspn(p, ".\"\r\n");
    if (n == 0 || n >= csr_cap) {
        LOG_ERR("AT%%KEYGEN: CSR missing or longer than %u", (unsigned)csr_cap - 1);
        return -EINVAL;
    }
    memcpy(csr, p, n);
    csr[n] = '\0';
    *key_len = 0; /* the key stays in the modem */
    return 0;
}

/* Puts one PEM item from flash into the modem, unless it holds it already. */
static int put(sec_tag_t tag, enum modem_key_mgmt_cred_type type, const uint8_t *pem, size_t len)
{
    if (modem_key_mgmt_cmp(tag, type, pem, len) == 0) {
        return 0;
    }
    int rc = offline();
    if (rc == 0) {
        rc = modem_key_mgmt_write(tag, type, pem, len);
    }
    if (rc != 0) {
        LOG_ERR("modem_key_mgmt_write(%d, %d): %d", tag, (int)type, rc);
    }
    return rc;
}

int app_creds_for(const struct app_flash *f, const struct cpa_identity *id,
                  chunkprov_span device_key, sec_tag_t *tag)
{
    ARG_UNUSED(device_key);
    if (id->claim) {
        *tag = CONFIG_CHUNKPROV_APP_SEC_TAG_CLAIM;
        return online();
    }
    *tag = id->slot == 0 ? CONFIG_CHUNKPROV_APP_SEC_TAG_SLOT_A : CONFIG_CHUNKPROV_APP_SEC_TAG_SLOT_B;
    const chunkprov_span items[] = {id->creds.certificate, id->creds.server_ca,
                                    id->creds.private_key};
    const enum modem_key_mgmt_cred_type types[] = {MODEM_KEY_MGMT_CRED_TYPE_PUBLIC_CERT,
                                                   MODEM_KEY_MGMT_CRED_TYPE_CA_CHAIN,
                                                   MODEM_KEY_MGMT_CRED_TYPE_PRIVATE_CERT};
    for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
        if (items[i].len <= 1) {
            continue; /* no CA in the bundle; CSR mode (the key is in the modem already) */
        }
        const uint8_t *pem = app_flash_at(f, items[i].offset, items[i].len);
        if (pem == NULL) {
            LOG_ERR("slot %u: credential outside the memory-mapped partition", id->slot);
            return -EINVAL;
        }
        /* The modem takes PEM without its NUL. */
        int rc = put(*tag, types[i], pem, items[i].len - 1);
        if (rc != 0) {
            return rc;
        }
    }
    if (id->creds.server_ca.len == 0) {
        /* No CA in the bundle: the slot's tag needs the one the claim tag has. */
        static char ca[4096];
        size_t len = sizeof ca;
        int rc = modem_key_mgmt_read(CONFIG_CHUNKPROV_APP_SEC_TAG_CLAIM,
                                     MODEM_KEY_MGMT_CRED_TYPE_CA_CHAIN, ca, &len);
        if (rc == 0) {
            const char *nul = memchr(ca, '\0', len);
            rc = put(*tag, MODEM_KEY_MGMT_CRED_TYPE_CA_CHAIN, (const uint8_t *)ca,
                     nul != NULL ? (size_t)(nul - ca) : len);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return online();
}
