/*
 * Stand-in for the cloud's encoder, written from the wire-format spec: see
 * frames.h. Bitwise CRC-32 and a tiny CBOR head writer of its own.
 */
#include "frames.h"

#include <stdio.h>
#include <string.h>

/* ---- CBOR ---- */

size_t cbor_head_len(uint64_t value)
{
    if (value < 24) {
        return 1;
    }
    if (value <= 0xFFu) {
        return 2;
    }
    if (value <= 0xFFFFu) {
        return 3;
    }
    if (value <= 0xFFFFFFFFu) {
        return 5;
    }
    return 9;
}

size_t cbor_head(uint8_t major, uint64_t value, uint8_t *out)
{
    size_t n = cbor_head_len(value);
    static const uint8_t info[10] = {0, 0, 24, 25, 0, 26, 0, 0, 0, 27};
    uint8_t m = (uint8_t)(major << 5);
    if (n == 1) {
        out[0] = (uint8_t)(m | (uint8_t)value);
        return 1;
    }
    out[0] = (uint8_t)(m | info[n]);
    for (size_t i = 1; i < n; i++) {
        out[i] = (uint8_t)(value >> (8 * (n - 1 - i)));
    }
    return n;
}

/* ---- CRC-32 (reflected 0xEDB88320, init and final XOR 0xFFFFFFFF) ---- */

uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
    uint32_t c = ~crc;
    for (size_t i = 0; i < len; i++) {
        c ^= data[i];
        for (int k = 0; k < 8; k++) {
            c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        }
    }
    return ~c;
}

uint32_t crc32_of(const uint8_t *data, size_t len) { return crc32_update(0, data, len); }

/* ---- bundles ---- */

typedef struct writer {
    uint8_t *out;
    size_t cap;
    size_t at;
    bool overflow;
} writer;

static void put(writer *w, const void *bytes, size_t len)
{
    if (w->overflow || len > w->cap - w->at) {
        w->overflow = true;
        return;
    }
    memcpy(w->out + w->at, bytes, len);
    w->at += len;
}

static void put_head(writer *w, uint8_t major, uint64_t value)
{
    uint8_t head[9];
    put(w, head, cbor_head(major, value, head));
}

static frames_span put_text(writer *w, const char *s)
{
    size_t len = strlen(s);
    put_head(w, CBOR_MAJOR_TEXT, len);
    frames_span span = {(uint32_t)w->at, (uint32_t)len};
    put(w, s, len);
    return span;
}

static frames_span put_pem(writer *w, const char *pem)
{
    frames_span span = {0, 0};
    if (pem == NULL) {
        uint8_t null = CBOR_NULL;
        put(w, &null, 1);
        return span;
    }
    size_t len = strlen(pem) + 1; /* the NUL is part of the item */
    put_head(w, CBOR_MAJOR_BYTES, len);
    span.offset = (uint32_t)w->at;
    span.len = (uint32_t)len;
    put(w, pem, len);
    return span;
}

size_t frames_bundle_encode(const frames_bundle *b, uint8_t *out, size_t cap,
                            frames_layout *layout)
{
    writer w = {out, cap, 0, false};
    frames_layout l;
    put_head(&w, CBOR_MAJOR_ARRAY, 5);
    l.thing_name = put_text(&w, b->thing_name);
    l.certificate_id = put_text(&w, b->certificate_id);
    l.certificate = put_pem(&w, b->certificate_pem);
    l.private_key = put_pem(&w, b->private_key_pem);
    l.server_ca = put_pem(&w, b->server_ca_pem);
    if (w.overflow) {
        return 0;
    }
    if (layout != NULL) {
        *layout = l;
    }
    return w.at;
}

size_t frames_pem(char *out, size_t cap, const char *label, size_t approx_len, unsigned seed)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t at = 0;
    size_t label_len = strlen(label);
    /* BEGIN line + body lines of 65 + END line + NUL must fit. */
    size_t need = 2 * (label_len + 17) + approx_len + 66 + 1;
    if (cap < need) {
        return 0;
    }
    at += (size_t)sprintf(out + at, "-----BEGIN %s-----\n", label);
    uint32_t i = 0;
    while (at < approx_len) {
        for (int k = 0; k < 64; k++) {
            out[at++] = alphabet[(i * 31u + seed) % 64u];
            i++;
        }
        out[at++] = '\n';
    }
    at += (size_t)sprintf(out + at, "-----END %s-----\n", label);
    return at;
}

/* ---- chunking ---- */

static uint32_t div_ceil(uint32_t a, uint32_t b) { return a / b + (a % b != 0); }

bool frames_plan_from_header(uint32_t bundle_len, uint32_t count, frames_plan *out)
{
    if (bundle_len == 0 || bundle_len > FRAMES_MAX_BUNDLE || count == 0 ||
        count > FRAMES_MAX_COUNT) {
        return false;
    }
    uint32_t chunk = div_ceil(div_ceil(bundle_len, count), FRAMES_ALIGN) * FRAMES_ALIGN;
    if (div_ceil(bundle_len, chunk) != count) {
        return false;
    }
    out->bundle_len = bundle_len;
    out->count = count;
    out->chunk = chunk;
    return true;
}

bool frames_plan_for_bundle(uint32_t bundle_len, uint32_t max_chunk, frames_plan *out)
{
    max_chunk -= max_chunk % FRAMES_ALIGN;
    if (max_chunk == 0 || bundle_len == 0) {
        return false;
    }
    return frames_plan_from_header(bundle_len, div_ceil(bundle_len, max_chunk), out);
}

void frames_plan_frame(const frames_plan *p, uint32_t index, uint32_t *offset, uint32_t *len)
{
    uint32_t off = index * p->chunk;
    uint32_t rest = p->bundle_len - off;
    *offset = off;
    *len = rest < p->chunk ? rest : p->chunk;
}

/* ---- frames ---- */

size_t frames_encode(const frames_header *h, const uint8_t *payload, uint32_t payload_len,
                     uint8_t *out, size_t cap)
{
    writer w = {out, cap, 0, false};
    put_head(&w, CBOR_MAJOR_ARRAY, 8);
    put_head(&w, CBOR_MAJOR_BYTES, CHUNKPROV_NONCE_LEN);
    put(&w, h->nonce, CHUNKPROV_NONCE_LEN);
    put_head(&w, CBOR_MAJOR_UINT, h->transfer_id);
    put_head(&w, CBOR_MAJOR_UINT, h->index);
    put_head(&w, CBOR_MAJOR_UINT, h->count);
    put_head(&w, CBOR_MAJOR_UINT, h->bundle_len);
    put_head(&w, CBOR_MAJOR_BYTES, sizeof h->sha256);
    put(&w, h->sha256, sizeof h->sha256);
    put_head(&w, CBOR_MAJOR_UINT, h->crc32);
    put_head(&w, CBOR_MAJOR_BYTES, payload_len);
    put(&w, payload, payload_len);
    return w.overflow ? 0 : w.at;
}

bool frames_transfer_init(frames_transfer *t, const uint8_t *bundle, uint32_t len,
                          uint32_t max_chunk, const uint8_t nonce[CHUNKPROV_NONCE_LEN],
                          uint32_t transfer_id)
{
    memset(t, 0, sizeof *t);
    if (!frames_plan_for_bundle(len, max_chunk, &t->plan)) {
        return false;
    }
    t->bundle = bundle;
    memcpy(t->nonce, nonce, CHUNKPROV_NONCE_LEN);
    t->transfer_id = transfer_id;
    return chunkprov_sha256(bundle, len, t->sha256) == CHUNKPROV_STATUS_OK;
}

void frames_transfer_header(const frames_transfer *t, uint32_t index, frames_header *h,
                            const uint8_t **payload, uint32_t *payload_len)
{
    uint32_t offset, len;
    frames_plan_frame(&t->plan, index, &offset, &len);
    memcpy(h->nonce, t->nonce, CHUNKPROV_NONCE_LEN);
    h->transfer_id = t->transfer_id;
    h->index = index;
    h->count = t->plan.count;
    h->bundle_len = t->plan.bundle_len;
    memcpy(h->sha256, t->sha256, sizeof h->sha256);
    h->crc32 = crc32_of(t->bundle + offset, len);
    *payload = t->bundle + offset;
    *payload_len = len;
}

size_t frames_transfer_frame(const frames_transfer *t, uint32_t index, uint8_t *out, size_t cap)
{
    frames_header h;
    const uint8_t *payload;
    uint32_t len;
    frames_transfer_header(t, index, &h, &payload, &len);
    return frames_encode(&h, payload, len, out, cap);
}
