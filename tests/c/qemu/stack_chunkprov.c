/*
 * Every function of include/chunkprov.h, measured: linked with
 * -Wl,--wrap=<function> for each (qemu.cmake: chunkprov_qemu_stack()), so a
 * program's calls reach the library through these wrappers, which run each
 * call under STACK_CALL (stack.h) with CHUNKPROV_STACK_BUDGET bytes of stack
 * (0: measured only), or the function's own budget from CHUNKPROV_STACK_EXCEPT.
 * The figure includes the platform callbacks the call makes. A function added to the header needs a line here: the link fails
 * with "undefined reference to `__wrap_<function>'" until it has one.
 */
#include <stdlib.h>
#include <string.h>

#include "chunkprov.h"
#include "stack.h"

/* Bytes of stack every call gets; 0: measured only. */
#ifndef CHUNKPROV_STACK_BUDGET
#define CHUNKPROV_STACK_BUDGET 0u
#endif
/* Functions with a budget of their own: "name=bytes,name=bytes" (ignored when the budget
 * above is 0). */
#ifndef CHUNKPROV_STACK_EXCEPT
#define CHUNKPROV_STACK_EXCEPT ""
#endif

static uint32_t budget_of(const char *name)
{
    if (CHUNKPROV_STACK_BUDGET == 0u) {
        return 0u;
    }
    size_t n = strlen(name);
    for (const char *p = CHUNKPROV_STACK_EXCEPT; *p != '\0';) {
        const char *eq = strchr(p, '=');
        if (eq == NULL) {
            break;
        }
        char *end;
        unsigned long bytes = strtoul(eq + 1, &end, 10);
        if ((size_t)(eq - p) == n && strncmp(p, name, n) == 0) {
            return (uint32_t)bytes;
        }
        p = *end == ',' ? end + 1 : end;
    }
    return CHUNKPROV_STACK_BUDGET;
}

#define MEASURED(ret, name, params, args)                                                \
    ret __real_##name params;                                                            \
    ret __wrap_##name params;                                                            \
    ret __wrap_##name params                                                             \
    {                                                                                    \
        static stack_entry entry = STACK_ENTRY(#name);                                   \
        static uint32_t budget = UINT32_MAX;                                             \
        if (budget == UINT32_MAX) {                                                      \
            budget = budget_of(#name);                                                   \
        }                                                                                \
        ret result;                                                                      \
        STACK_CALL(&entry, budget, result = __real_##name args);                         \
        return result;                                                                   \
    }

typedef enum chunkprov_status status;
typedef const struct chunkprov_platform *platform_p;
typedef const struct chunkprov_client_config *config_p;

MEASURED(status, chunkprov_sha256, (const uint8_t *data, uintptr_t len, uint8_t *out),
         (data, len, out))
MEASURED(status, chunkprov_client_start,
         (struct chunkprov_client *c, platform_p platform, config_p cfg), (c, platform, cfg))
MEASURED(status, chunkprov_client_poll,
         (struct chunkprov_client *c, platform_p platform, config_p cfg, uint8_t *buf,
          uintptr_t buf_len, struct chunkprov_action *out),
         (c, platform, cfg, buf, buf_len, out))
MEASURED(status, chunkprov_client_connected, (struct chunkprov_client *c), (c))
MEASURED(status, chunkprov_client_disconnected,
         (struct chunkprov_client *c, platform_p platform, config_p cfg), (c, platform, cfg))
MEASURED(status, chunkprov_client_subscribed, (struct chunkprov_client *c), (c))
MEASURED(status, chunkprov_client_tick, (struct chunkprov_client *c, uint32_t ticks), (c, ticks))
MEASURED(status, chunkprov_client_message_begin,
         (struct chunkprov_client *c, config_p cfg, const char *topic, uintptr_t topic_len),
         (c, cfg, topic, topic_len))
MEASURED(status, chunkprov_client_message_data,
         (struct chunkprov_client *c, platform_p platform, const uint8_t *data, uintptr_t len),
         (c, platform, data, len))
MEASURED(status, chunkprov_client_message_end,
         (struct chunkprov_client *c, platform_p platform, config_p cfg,
          struct chunkprov_notice *notice),
         (c, platform, cfg, notice))
MEASURED(status, chunkprov_client_progress,
         (struct chunkprov_client *c, uint16_t *held, uint16_t *count), (c, held, count))
MEASURED(status, chunkprov_reassembler_init,
         (struct chunkprov_reassembler *r, platform_p platform, uint32_t slot_offset,
          uint32_t slot_size, const uint8_t *nonce),
         (r, platform, slot_offset, slot_size, nonce))
MEASURED(status, chunkprov_reassembler_feed,
         (struct chunkprov_reassembler *r, platform_p platform, const uint8_t *data,
          uintptr_t len),
         (r, platform, data, len))
MEASURED(status, chunkprov_reassembler_end,
         (struct chunkprov_reassembler *r, platform_p platform, uint16_t *index),
         (r, platform, index))
MEASURED(status, chunkprov_reassembler_progress,
         (struct chunkprov_reassembler *r, uint32_t *transfer_id, uint16_t *held,
          uint16_t *count),
         (r, transfer_id, held, count))
MEASURED(status, chunkprov_reassembler_missing,
         (struct chunkprov_reassembler *r, uint16_t *out, uintptr_t capacity, uintptr_t *missing),
         (r, out, capacity, missing))
MEASURED(status, chunkprov_reassembler_credentials,
         (struct chunkprov_reassembler *r, platform_p platform, struct chunkprov_credentials *out),
         (r, platform, out))
MEASURED(const char *, chunkprov_status_name, (uint32_t status_value), (status_value))
