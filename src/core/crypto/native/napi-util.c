/* Argument checks and errors shared by the addon's functions (aead.c, mac.c). */
#include <stdbool.h>
#include <stdio.h>

#include "native.h"

napi_value svault_throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

napi_value svault_throw_openssl(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* Whether [a, a + a_len) and [b, b + b_len) share a byte. */
int svault_overlaps(const unsigned char *a, size_t a_len, const unsigned char *b, size_t b_len) {
  return a_len > 0 && b_len > 0 && a < b + b_len && b < a + a_len;
}

/* A Buffer (or any Uint8Array) argument's bytes; 0 when the value is not one. */
int svault_bytes_of(napi_env env, napi_value v, unsigned char **data, size_t *len) {
  bool is_typed;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  size_t length, offset;
  void *ptr;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  *data = ptr;
  *len = length;
  return 1;
}

int svault_buffer_args(napi_env env, napi_callback_info info, size_t n, unsigned char **data, size_t *len, const char *usage) {
  char msg[160];
  size_t argc = 4;
  napi_value argv[4];
  if (n > 4 || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != n) {
    snprintf(msg, sizeof msg, "%s takes %zu arguments", usage, n);
    svault_throw_type(env, msg);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!svault_bytes_of(env, argv[i], &data[i], &len[i])) {
      snprintf(msg, sizeof msg, "%s: every argument must be a Buffer", usage);
      svault_throw_type(env, msg);
      return 0;
    }
  }
  return 1;
}

int svault_array_buffers(napi_env env, napi_value array, uint32_t max, unsigned char **data, size_t *len, const char *msg) {
  bool is_array;
  uint32_t count;
  napi_value values[SVAULT_MAX_ARRAY];
  if (max > SVAULT_MAX_ARRAY || napi_is_array(env, array, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, array, &count) != napi_ok || count > max) {
    svault_throw_type(env, msg);
    return -1;
  }
  /* Every element first: a getter may run JS, which could detach a buffer whose pointer we held. */
  for (uint32_t i = 0; i < count; i++)
    if (napi_get_element(env, array, i, &values[i]) != napi_ok) return -1; /* a getter threw: it propagates */
  for (uint32_t i = 0; i < count; i++) {
    if (!svault_bytes_of(env, values[i], &data[i], &len[i])) {
      svault_throw_type(env, msg);
      return -1;
    }
  }
  return (int)count;
}
