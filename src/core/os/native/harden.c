/*
 * makeUndumpable() -> undefined
 *   prctl(PR_SET_DUMPABLE, 0) and RLIMIT_CORE 0 (soft and hard). A process holding the vault's keys
 *   writes no core dump when it crashes, and other processes of the same user cannot ptrace it or read
 *   its memory through /proc (issue 22, finding 9). Node has neither call. Throws a system error when
 *   either fails.
 */
#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "os.h"

static napi_value make_undumpable(napi_env env, napi_callback_info info) {
  (void)info;
  struct rlimit none = {0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) return svault_os_throw_errno(env, errno, "setrlimit", "RLIMIT_CORE");
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return svault_os_throw_errno(env, errno, "prctl", "PR_SET_DUMPABLE");
  return NULL;
}

int svault_register_harden(napi_env env, napi_value exports) {
  napi_value fn;
  return napi_create_function(env, "makeUndumpable", NAPI_AUTO_LENGTH, make_undumpable, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, "makeUndumpable", fn) == napi_ok;
}
