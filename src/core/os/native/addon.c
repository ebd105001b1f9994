/* svault's OS addon: module set-up and the errors every function throws. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "os.h"

napi_value svault_os_errno_value(napi_env env, int err, const char *syscall, const char *path) {
  const char *name = strerrorname_np(err);
  char code[32];
  if (name == NULL) {
    snprintf(code, sizeof code, "E%d", err);
    name = code;
  }
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", name, strerror(err), syscall, path);
  napi_value code_v, msg_v, error, v;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_v) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v) != napi_ok ||
      napi_create_error(env, code_v, msg_v, &error) != napi_ok)
    return NULL;
  if (napi_create_int32(env, -err, &v) == napi_ok) napi_set_named_property(env, error, "errno", v);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, error, "syscall", v);
  if (napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, error, "path", v);
  return error;
}

napi_value svault_os_throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  napi_value error = svault_os_errno_value(env, err, syscall, path);
  if (error != NULL) napi_throw(env, error);
  return NULL;
}

napi_value svault_os_throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

NAPI_MODULE_INIT() {
  if (!svault_register_at(env, exports) || !svault_register_harden(env, exports)) return NULL;
  return exports;
}
