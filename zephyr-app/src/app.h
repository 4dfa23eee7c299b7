/*
 * The Zephyr application's parts: settings, flash, TLS credentials, the MQTT port, key
 * generation. The logic that does not depend on Zephyr is app/core (cpa.h, cpa_keys.h).
 */
#ifndef CHUNKPROV_ZEPHYR_APP_H
#define CHUNKPROV_ZEPHYR_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zephyr/net/tls_credentials.h>
#include <zephyr/storage/flash_map.h>

#include "chunkprov.h"
#include "cpa.h"
#include "cpa_keys.h"

/* Run-time settings: Kconfig defaults, overridden on native_sim by the command line. */
struct app_settings {
    const char *serial;
    const char *broker;
    uint16_t claim_port;
    uint16_t device_port;
    /* Claim credentials as PEM text (native_sim: read from the host's files); NULL where they
     * live in the modem (nRF91). */
    const char *ca_pem;
    const char *claim_cert_pem;
    const char *claim_key_pem;
    uint32_t stop_after_frames;
};

/* native_sim: applies --serial, --broker, --claim-port, --device-port, --ca, --claim-cert,
 * --claim-key, --stop-after-frames (native_sim_args.c). Returns 0 or a negative errno. */
int app_settings_native(struct app_settings *s);

/* Claim credentials compiled in from CONFIG_CHUNKPROV_APP_CLAIM_PEM_DIR (claim_embedded.c). */
void app_settings_embedded(struct app_settings *s);

/* ---- flash (flash.c) ---- */

struct app_flash {
    const struct flash_area *fa;
    uint32_t write_size;
    uint32_t erase_size;
    /* The partition's bytes in memory, where the flash is memory-mapped (nRF91 internal flash)
     * or simulated (native_sim); NULL otherwise. */
    const uint8_t *mem;
};

/* Opens the chunkprov partition; returns 0 or a negative errno. */
int app_flash_open(struct app_flash *f);
/* The library's platform over it (flash_area_*, sys_csrand_get, LOG). */
chunkprov_platform app_flash_platform(struct app_flash *f);
/* Where `len` bytes at `offset` of the partition lie in memory, or NULL. */
const uint8_t *app_flash_at(const struct app_flash *f, uint32_t offset, uint32_t len);

/* ---- TLS credentials (creds.c, modem.c on nRF91) ---- */

/* Registers the claim credentials (native_sim) or checks they are in the modem (nRF91). */
int app_creds_init(const struct app_settings *s);
/* Makes the credentials of `id` usable under a sec_tag and returns it in `tag`: the claim tag,
 * or the slot's tag with the certificate, key and CA of the slot taken straight from flash.
 * `device_key` is the device's own key in flash (CSR mode; len 0: the bundle's key). */
int app_creds_for(const struct app_flash *f, const struct cpa_identity *id,
                  chunkprov_span device_key, sec_tag_t *tag);

/* ---- key and CSR (keygen_mbedtls.c; modem.c on nRF91) ---- */

int app_keygen(void *ctx, const char *serial, char *csr, size_t csr_cap, uint8_t *key,
               size_t key_cap, size_t *key_len);

/* ---- nRF91 modem (modem.c, nRF Connect SDK only) ---- */

/* Starts the modem library and LTE, and reads the IMEI into `imei`. */
int app_modem_init(char *imei, size_t cap);

/* ---- MQTT (port_mqtt.c) ---- */

/* Fills `port` with the Zephyr MQTT client port. `app` receives its events. */
void app_mqtt_port(struct cpa_port *port, struct cpa *app, const struct app_settings *s,
                   const struct app_flash *f, chunkprov_span device_key);

#endif /* CHUNKPROV_ZEPHYR_APP_H */
