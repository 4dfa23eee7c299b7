/*
 * Every function of include/chunkprov.h, measured: linked with
 * -Wl,--wrap=<function> for each (qemu.cmake: chunkprov_qemu_stack()), so a
 * program's calls reach the library through these wrappers, which run each
 * call under STACK_CALL (stack.h) with CHUNKPROV_STACK_BUDGET bytes of stack
 * (0: measured only). The figure includes the platform callbacks the call
 * makes. A function added to the header needs a line here: the link fails
 * with "undefined reference to `__wrap_<function>'" until it has one.
 */
#include "chunkprov.h"
#include "stack.h"

#ifndef CHUNKPROV_STACK_BUDGET
#define CHUNKPROV_STACK_BUDGET 0u
#endif

#define MEASURED(ret, name, params, args)                        \
    ret __real_##name params;                                    \
    ret __wrap_##name params;                                    \
    ret __wrap_##name params                                     \
    {                                                            \
        static stack_entry entry = STACK_ENTRY(#name);           \
        ret result;                                              \
        STACK_CALL(&entry, CHUNKPROV_STACK_BUDGET, result = __real_##name args); \
        return result;                                           \
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
