/* svault's OS addon: what at.c and harden.c share, and how each adds its functions to the exports. */
#ifndef SVAULT_OS_H
#define SVAULT_OS_H

#include <node_api.h>

/* Throws an Error shaped like Node's system errors (code 'ENOENT', errno -2, syscall, path); returns NULL. */
napi_value svault_os_throw_errno(napi_env env, int err, const char *syscall, const char *path);
/* Throws a TypeError (misuse: no system call was made) and returns NULL. */
napi_value svault_os_throw_type(napi_env env, const char *msg);
/* The error value svault_os_throw_errno would throw, for rejecting a promise. */
napi_value svault_os_errno_value(napi_env env, int err, const char *syscall, const char *path);

/* Adds openAt, mkdirAt, unlinkAt, renameAt and syncfs; 0 on failure. */
int svault_register_at(napi_env env, napi_value exports);
/* Adds makeUndumpable; 0 on failure. */
int svault_register_harden(napi_env env, napi_value exports);

#endif
