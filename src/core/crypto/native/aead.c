/*
 * AES-256-GCM seal and open into buffers the caller owns, with OpenSSL's EVP interface.
 *
 * Why this exists: node:crypto's decipher.update() returns a new, zero-filled buffer for every call.
 * On a 128 KiB piece that allocation, its zeroing and the copy out of it cost about as much as the
 * cipher itself (reports/optimization-log.md, entries 15 and 16). Node 20 has no API that decrypts into
 * a buffer of the caller's, so this addon calls the same OpenSSL that Node is linked with and exports.
 * Nothing cryptographic is implemented here: key schedule, GHASH, the tag and its constant-time check
 * are OpenSSL's (EVP_DecryptFinal_ex fails on a wrong tag).
 *
 * Format, the same as src/crypto.ts: sealed = nonce (12) || ciphertext || tag (16).
 *
 *   open(key, aad, sealed, out) -> boolean
 *     out.length must be sealed.length - 28. Returns false when the blob does not authenticate; out is
 *     then wiped, so no unauthenticated plaintext is left in it. Any other failure of OpenSSL throws:
 *     only a tag that does not match may read as damage (fsck --repair acts on damage).
 *   openParts(key, aad, sealed, outs) -> boolean
 *     open() across several buffers: the plaintext is written into the outs in order (at most 16; their
 *     lengths must add up to sealed.length - 28), so a caller can put a header, the data and the padding
 *     of a piece each where it belongs. Wipes every out when the blob does not authenticate.
 *   seal(key, nonce, aad, parts, out) -> undefined
 *     out.length must be 12 + the parts' total + 16. Writes nonce || ciphertext of the parts || tag.
 *
 * Misuse throws a TypeError before any byte is touched: wrong types or lengths, and an out that
 * overlaps an input. Every N-API call that could run JS (reading the parts array, whose elements may
 * be getters) comes before the first pointer into a buffer is taken, so no buffer can be detached or
 * resized under us.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "native.h"

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define MAX_PARTS SVAULT_MAX_ARRAY /* 16, as src/native-aead.ts's NATIVE_MAX_PARTS */

/* The cipher is fetched once per process: an implicit fetch on every init costs a provider lookup. */
static EVP_CIPHER *fetched_gcm;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static void fetch_gcm(void) { fetched_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL); }
static const EVP_CIPHER *gcm(void) {
  pthread_once(&fetch_once, fetch_gcm);
  return fetched_gcm ? fetched_gcm : EVP_aes_256_gcm();
}

/*
 * Decrypts sealed's body across the outs, in order (their lengths must add up to the body's), and
 * checks the tag. Returns 1 if authentic, 0 if not (every out wiped), -1 after throwing on misuse or
 * an OpenSSL failure. Nothing may run JS once the pointers are taken: callers read their arguments first.
 */
static int open_to(napi_env env, const char *name, unsigned char *key, size_t key_len, unsigned char *aad, size_t aad_len,
                   unsigned char *sealed, size_t sealed_len, unsigned char **out, size_t *out_len, uint32_t count) {
  char msg[160];
#define MISUSE(text) (snprintf(msg, sizeof msg, "%s: %s", name, text), svault_throw_type(env, msg), -1)
  if (key_len != KEY_BYTES) return MISUSE("the key must be 32 bytes");
  if (sealed_len < NONCE_BYTES + TAG_BYTES || sealed_len - NONCE_BYTES - TAG_BYTES > INT_MAX || aad_len > INT_MAX)
    return MISUSE("sealed is shorter than nonce and tag, or too large");
  size_t body_len = sealed_len - NONCE_BYTES - TAG_BYTES, total = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (out_len[i] > body_len - total) return MISUSE(count == 1 ? "out must be sealed.length - 28 bytes" : "the outs must add up to sealed.length - 28 bytes");
    total += out_len[i];
  }
  if (total != body_len) return MISUSE(count == 1 ? "out must be sealed.length - 28 bytes" : "the outs must add up to sealed.length - 28 bytes");
  int overlap = 0;
  for (uint32_t i = 0; i < count; i++) {
    overlap = overlap || svault_overlaps(out[i], out_len[i], sealed, sealed_len) || svault_overlaps(out[i], out_len[i], key, key_len) ||
              svault_overlaps(out[i], out_len[i], aad, aad_len);
    for (uint32_t j = 0; j < i; j++) overlap = overlap || svault_overlaps(out[i], out_len[i], out[j], out_len[j]);
  }
  if (overlap) return MISUSE(count == 1 ? "out must not overlap key, aad or sealed" : "an out must not overlap key, aad, sealed or another out");
#undef MISUSE

  int n = 0, tail = 0, set_up = 0, authentic = 0;
  size_t at = NONCE_BYTES;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx != NULL &&
      EVP_DecryptInit_ex(ctx, gcm(), NULL, NULL, NULL) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
      EVP_DecryptInit_ex(ctx, NULL, NULL, key, sealed) == 1 &&
      (aad_len == 0 || EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1)) {
    set_up = 1;
    /* GCM is a stream mode: each update writes exactly what it is given. */
    for (uint32_t i = 0; set_up && i < count; i++) {
      if (out_len[i] == 0) continue;
      set_up = EVP_DecryptUpdate(ctx, out[i], &n, sealed + at, (int)out_len[i]) == 1 && (size_t)n == out_len[i];
      at += out_len[i];
    }
    set_up = set_up && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, sealed + sealed_len - TAG_BYTES) == 1;
    /* The one failure that means "not authentic": the tag does not match (GCM writes nothing here). */
    unsigned char final_out[TAG_BYTES]; /* GCM's final writes no bytes; it gets room it may not use */
    if (set_up) authentic = EVP_DecryptFinal_ex(ctx, final_out, &tail) == 1 && tail == 0;
  }
  EVP_CIPHER_CTX_free(ctx);
  if (!authentic)
    for (uint32_t i = 0; i < count; i++) OPENSSL_cleanse(out[i], out_len[i]);
  if (!set_up) {
    snprintf(msg, sizeof msg, "%s: OpenSSL's AES-256-GCM could not be set up", name);
    svault_throw_openssl(env, msg);
    return -1;
  }
  return authentic;
}

static napi_value boolean(napi_env env, int value) {
  napi_value result;
  napi_get_boolean(env, value, &result);
  return result;
}

static napi_value open_gcm(napi_env env, napi_callback_info info) {
  unsigned char *arg[4];
  size_t arg_len[4];
  if (!svault_buffer_args(env, info, 4, arg, arg_len, "open(key, aad, sealed, out)")) return NULL;
  int authentic = open_to(env, "open", arg[0], arg_len[0], arg[1], arg_len[1], arg[2], arg_len[2], &arg[3], &arg_len[3], 1);
  return authentic < 0 ? NULL : boolean(env, authentic);
}

static napi_value open_parts_gcm(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4)
    return svault_throw_type(env, "openParts(key, aad, sealed, outs) takes 4 arguments");

  /* First the outs array, whose getters may run JS; from then on nothing runs JS until we return. */
  unsigned char *key, *aad, *sealed, *out[MAX_PARTS];
  size_t key_len, aad_len, sealed_len, out_len[MAX_PARTS];
  int count = svault_array_buffers(env, argv[3], MAX_PARTS, out, out_len, "openParts: outs must be an array of at most 16 Buffers");
  if (count < 0) return NULL;
  if (!svault_bytes_of(env, argv[0], &key, &key_len) || !svault_bytes_of(env, argv[1], &aad, &aad_len) ||
      !svault_bytes_of(env, argv[2], &sealed, &sealed_len))
    return svault_throw_type(env, "openParts(key, aad, sealed, outs): key, aad and sealed must be Buffers");
  int authentic = open_to(env, "openParts", key, key_len, aad, aad_len, sealed, sealed_len, out, out_len, (uint32_t)count);
  return authentic < 0 ? NULL : boolean(env, authentic);
}

static napi_value seal_gcm(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5)
    return svault_throw_type(env, "seal(key, nonce, aad, parts, out) takes 5 arguments");

  /* First the parts array, whose getters may run JS; from then on nothing runs JS until we return. */
  unsigned char *key, *nonce, *aad, *out, *part[MAX_PARTS];
  size_t key_len, nonce_len, aad_len, out_len, part_len[MAX_PARTS], total = 0;
  int listed = svault_array_buffers(env, argv[3], MAX_PARTS, part, part_len, "seal: parts must be an array of at most 16 Buffers");
  if (listed < 0) return NULL;
  uint32_t count = (uint32_t)listed;
  if (!svault_bytes_of(env, argv[0], &key, &key_len) || !svault_bytes_of(env, argv[1], &nonce, &nonce_len) ||
      !svault_bytes_of(env, argv[2], &aad, &aad_len) || !svault_bytes_of(env, argv[4], &out, &out_len))
    return svault_throw_type(env, "seal(key, nonce, aad, parts, out): key, nonce, aad and out must be Buffers");
  if (key_len != KEY_BYTES) return svault_throw_type(env, "seal: the key must be 32 bytes");
  if (nonce_len != NONCE_BYTES) return svault_throw_type(env, "seal: the nonce must be 12 bytes");
  if (aad_len > INT_MAX) return svault_throw_type(env, "seal: aad is too large");
  for (uint32_t i = 0; i < count; i++) {
    if (part_len[i] > INT_MAX || total > (size_t)INT_MAX - part_len[i]) return svault_throw_type(env, "seal: parts are too large");
    total += part_len[i];
  }
  if (out_len != NONCE_BYTES + total + TAG_BYTES) return svault_throw_type(env, "seal: out must be 12 + the parts' length + 16 bytes");
  int overlap = svault_overlaps(out, out_len, key, key_len) || svault_overlaps(out, out_len, nonce, nonce_len) || svault_overlaps(out, out_len, aad, aad_len);
  for (uint32_t i = 0; i < count; i++) overlap = overlap || svault_overlaps(out, out_len, part[i], part_len[i]);
  if (overlap) return svault_throw_type(env, "seal: out must not overlap key, nonce, aad or a part");

  int ok = 0, n = 0;
  size_t at = NONCE_BYTES;
  memcpy(out, nonce, NONCE_BYTES);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx != NULL &&
      EVP_EncryptInit_ex(ctx, gcm(), NULL, NULL, NULL) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_BYTES, NULL) == 1 &&
      EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
      (aad_len == 0 || EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1)) {
    ok = 1;
    for (uint32_t i = 0; ok && i < count; i++) {
      if (part_len[i] == 0) continue;
      ok = EVP_EncryptUpdate(ctx, out + at, &n, part[i], (int)part_len[i]) == 1;
      at += (size_t)n;
    }
    ok = ok && EVP_EncryptFinal_ex(ctx, out + at, &n) == 1;
    at += (size_t)n;
    ok = ok && at == NONCE_BYTES + total &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, out + at) == 1;
  }
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    OPENSSL_cleanse(out, out_len);
    return svault_throw_openssl(env, "seal: OpenSSL's AES-256-GCM failed");
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_gcm, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "open", fn) != napi_ok ||
      napi_create_function(env, "openParts", NAPI_AUTO_LENGTH, open_parts_gcm, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "openParts", fn) != napi_ok ||
      napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal_gcm, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "seal", fn) != napi_ok || !svault_register_mac(env, exports))
    return NULL;
  return exports;
}
