/* svault's addon: AES-256-GCM (aead.c), HMAC-SHA256 and HKDF-SHA256 (mac.c), over Node's own OpenSSL. */
#ifndef SVAULT_NATIVE_H
#define SVAULT_NATIVE_H

#include <stddef.h>
#include <node_api.h>

/* Throws a TypeError (misuse: nothing was written) and returns NULL, for `return svault_throw_type(...)`. */
napi_value svault_throw_type(napi_env env, const char *msg);
/* Throws an Error for a failure inside OpenSSL and returns NULL. */
napi_value svault_throw_openssl(napi_env env, const char *msg);
/* Whether [a, a + a_len) and [b, b + b_len) share a byte. */
int svault_overlaps(const unsigned char *a, size_t a_len, const unsigned char *b, size_t b_len);
/* A Buffer (or any Uint8Array) argument's bytes; 0 when the value is not one. */
int svault_bytes_of(napi_env env, napi_value v, unsigned char **data, size_t *len);
/*
 * A call's arguments, all Buffers: exactly n of them (n at most 4), their bytes in data[] and len[].
 * On misuse throws a TypeError naming `usage` (the call as documented) and returns 0.
 */
int svault_buffer_args(napi_env env, napi_callback_info info, size_t n, unsigned char **data, size_t *len, const char *usage);
/* The most Buffers svault_array_buffers takes from one array. */
#define SVAULT_MAX_ARRAY 16
/*
 * The Buffers of an array argument of at most `max` (at most SVAULT_MAX_ARRAY): their bytes in data[]
 * and len[]. Every element is read before any pointer is taken, since reading one may run JS (a getter)
 * that could detach a buffer; so a caller takes this before its other arguments' bytes, and runs no JS
 * after it. Returns the count, or -1 after throwing: a TypeError with `msg` for anything but an array of
 * at most `max` Buffers, or the getter's own exception.
 */
int svault_array_buffers(napi_env env, napi_value array, uint32_t max, unsigned char **data, size_t *len, const char *msg);
/* Adds hmacSha256 and hkdfSha256 to the exports; 0 on failure. */
int svault_register_mac(napi_env env, napi_value exports);

#endif
