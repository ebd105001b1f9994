/*
 * HMAC-SHA256 and HKDF-SHA256 into buffers the caller owns, with OpenSSL's EVP_MAC and EVP_KDF.
 *
 * Why this exists: svault computes an HMAC for every record name and every piece address, and an HKDF
 * for every new file's key. node:crypto builds a KeyObject, an Hmac object and a result buffer for each:
 * 3 µs per HMAC and 16 to 24 µs per hkdfSync in a tight loop, against 1.5 and 3 to 4.5 µs here, and the
 * file key's hkdfSync took 67 µs of a 1 KiB file's 1.05 ms in a mount's profile (reports/
 * optimization-log.md, entries 16 and 17). Nothing cryptographic is implemented here: HMAC and HKDF are
 * OpenSSL's (RFC 2104, RFC 5869), the same code node:crypto runs.
 *
 *   hmacSha256(key, data, out) -> undefined
 *     out.length must be 32. Writes HMAC-SHA256(key, data).
 *   hkdfSha256(key, salt, info, out) -> undefined
 *     out.length must be 1 to 8160 (255 blocks). Writes HKDF-SHA256(key, salt, info) (extract, then expand).
 *
 * Misuse throws a TypeError before any byte is written: wrong types or lengths, an empty key (svault's
 * keys are 32 bytes), and an out that overlaps an input. A failure of OpenSSL throws an Error, and out
 * is wiped.
 */
#include <string.h>
#include <pthread.h>

#include <node_api.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "native.h"

#define HMAC_BYTES 32
#define HKDF_MAX_BYTES (255 * 32)

/*
 * Set up once per process: the HMAC context with its digest chosen, duplicated for each call (choosing
 * the digest by name costs a provider lookup), and the fetched HKDF. OpenSSL 3.0's HKDF contexts cannot
 * be duplicated, so each call makes its own. Both are only read after set-up, so threads may share them.
 */
static EVP_MAC_CTX *hmac_template;
static EVP_KDF *hkdf_method;
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static void set_up(void) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (mac != NULL) {
    hmac_template = EVP_MAC_CTX_new(mac);
    if (hmac_template != NULL && EVP_MAC_CTX_set_params(hmac_template, params) != 1) {
      EVP_MAC_CTX_free(hmac_template);
      hmac_template = NULL;
    }
    EVP_MAC_free(mac); /* the context holds its own reference */
  }
  hkdf_method = EVP_KDF_fetch(NULL, "HKDF", NULL);
}

static napi_value hmac_sha256(napi_env env, napi_callback_info info) {
  unsigned char *arg[3];
  size_t arg_len[3];
  if (!svault_buffer_args(env, info, 3, arg, arg_len, "hmacSha256(key, data, out)")) return NULL;
  unsigned char *key = arg[0], *data = arg[1], *out = arg[2];
  size_t key_len = arg_len[0], data_len = arg_len[1], out_len = arg_len[2];
  if (key_len == 0) return svault_throw_type(env, "hmacSha256: the key must not be empty");
  if (out_len != HMAC_BYTES) return svault_throw_type(env, "hmacSha256: out must be 32 bytes");
  if (svault_overlaps(out, out_len, key, key_len) || svault_overlaps(out, out_len, data, data_len))
    return svault_throw_type(env, "hmacSha256: out must not overlap key or data");

  pthread_once(&setup_once, set_up);
  size_t written = 0;
  EVP_MAC_CTX *ctx = hmac_template != NULL ? EVP_MAC_CTX_dup(hmac_template) : NULL;
  int ok = ctx != NULL && EVP_MAC_init(ctx, key, key_len, NULL) == 1 && EVP_MAC_update(ctx, data, data_len) == 1 &&
           EVP_MAC_final(ctx, out, &written, out_len) == 1 && written == HMAC_BYTES;
  EVP_MAC_CTX_free(ctx);
  if (!ok) {
    OPENSSL_cleanse(out, out_len);
    return svault_throw_openssl(env, "hmacSha256: OpenSSL's HMAC-SHA256 failed");
  }
  return NULL;
}

static napi_value hkdf_sha256(napi_env env, napi_callback_info info) {
  unsigned char *arg[4];
  size_t arg_len[4];
  if (!svault_buffer_args(env, info, 4, arg, arg_len, "hkdfSha256(key, salt, info, out)")) return NULL;
  unsigned char *key = arg[0], *salt = arg[1], *inf = arg[2], *out = arg[3];
  size_t key_len = arg_len[0], salt_len = arg_len[1], info_len = arg_len[2], out_len = arg_len[3];
  if (key_len == 0) return svault_throw_type(env, "hkdfSha256: the key must not be empty");
  if (out_len == 0 || out_len > HKDF_MAX_BYTES) return svault_throw_type(env, "hkdfSha256: out must be 1 to 8160 bytes");
  if (svault_overlaps(out, out_len, key, key_len) || svault_overlaps(out, out_len, salt, salt_len) ||
      svault_overlaps(out, out_len, inf, info_len))
    return svault_throw_type(env, "hkdfSha256: out must not overlap key, salt or info");

  pthread_once(&setup_once, set_up);
  /* OpenSSL's HKDF treats an absent salt as HashLen zero bytes, as RFC 5869 says; an empty one is the same. */
  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, key, key_len);
  if (salt_len > 0) params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, salt_len);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, inf, info_len);
  params[n] = OSSL_PARAM_construct_end();
  EVP_KDF_CTX *ctx = hkdf_method != NULL ? EVP_KDF_CTX_new(hkdf_method) : NULL;
  int ok = ctx != NULL && EVP_KDF_derive(ctx, out, out_len, params) == 1;
  EVP_KDF_CTX_free(ctx); /* clears the key material it copied */
  if (!ok) {
    OPENSSL_cleanse(out, out_len);
    return svault_throw_openssl(env, "hkdfSha256: OpenSSL's HKDF-SHA256 failed");
  }
  return NULL;
}

int svault_register_mac(napi_env env, napi_value exports) {
  napi_value fn;
  return napi_create_function(env, "hmacSha256", NAPI_AUTO_LENGTH, hmac_sha256, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, "hmacSha256", fn) == napi_ok &&
         napi_create_function(env, "hkdfSha256", NAPI_AUTO_LENGTH, hkdf_sha256, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, "hkdfSha256", fn) == napi_ok;
}
