/*
 * Claim credentials compiled into the image from CONFIG_CHUNKPROV_APP_CLAIM_PEM_DIR, for
 * development boards with neither a modem nor a command line (QEMU). A device keeps its claim
 * key in its modem or in secure storage, never in the firmware image.
 */
#include "app.h"

static const char ca[] = {
#include "chunkprov/ca.pem.inc"
    0};
static const char cert[] = {
#include "chunkprov/claim.crt.inc"
    0};
static const char key[] = {
#include "chunkprov/claim.key.inc"
    0};

void app_settings_embedded(struct app_settings *s)
{
    s->ca_pem = ca;
    s->claim_cert_pem = cert;
    s->claim_key_pem = key;
}
