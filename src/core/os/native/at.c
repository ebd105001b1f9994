/*
 * One name relative to a directory descriptor, never following a link (issue 22, finding 2). Node opens
 * every file by path, following links in every component; a link planted in the store could then make
 * svault, often running as root, write or truncate any file on the machine. svault keeps descriptors of
 * the store directory and its subdirectories, and reaches each file through these calls:
 *
 *   openAt(dirfd, name, flags, mode) -> fd      openat(2) with O_NOFOLLOW | O_CLOEXEC added
 *   mkdirAt(dirfd, name, mode) -> undefined     mkdirat(2); an existing name (even a link) is EEXIST
 *   unlinkAt(dirfd, name, isDir) -> undefined   unlinkat(2), AT_REMOVEDIR when isDir; never follows
 *   renameAt(fromDirfd, from, toDirfd, to)      renameat(2); neither name is followed
 *   syncfs(fd) -> Promise<undefined>            syncfs(2) of fd's filesystem, on a libuv thread
 *   closeFd(fd) -> undefined                    close(2). Node warns when a worker thread's fs.closeSync
 *                                               closes a descriptor its own fs did not open: these are closed here
 *
 * A name is one path component: 1 to 255 bytes, no '/', no NUL, not "." or "..". Anything else is a
 * TypeError before any system call, so a path can never sneak in. A failing call throws (or rejects with)
 * an Error shaped like Node's: code ('ELOOP' for a link where a file should be), errno, syscall, path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os.h"

#define NAME_MAX_BYTES 255
#define NAME_BYTES (NAME_MAX_BYTES + 2) /* one byte more than a name may have, and the terminator: too long shows */

/* A descriptor argument: a non-negative int32. */
static int fd_arg(napi_env env, napi_value v, int *fd) {
  int32_t n;
  if (napi_get_value_int32(env, v, &n) != napi_ok || n < 0) return 0;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != (double)n) return 0;
  *fd = n;
  return 1;
}

/* A name argument, checked as the header says. */
static int name_arg(napi_env env, napi_value v, char *name) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, name, NAME_BYTES, &len) != napi_ok) return 0;
  if (len == 0 || len > NAME_MAX_BYTES || strlen(name) != len) return 0; /* empty, too long, or holding a NUL */
  if (strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
  return 1;
}

static int int_arg(napi_env env, napi_value v, int *out) {
  int32_t n;
  if (napi_get_value_int32(env, v, &n) != napi_ok) return 0;
  *out = n;
  return 1;
}

static int args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == n;
}

static napi_value open_at(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int dirfd, flags, mode;
  char name[NAME_BYTES];
  if (!args(env, info, 4, argv) || !fd_arg(env, argv[0], &dirfd) || !name_arg(env, argv[1], name) ||
      !int_arg(env, argv[2], &flags) || !int_arg(env, argv[3], &mode) || mode < 0 || mode > 07777)
    return svault_os_throw_type(env, "openAt(dirfd, name, flags, mode): a descriptor, one path component, int flags, a mode");
  int fd;
  do fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return svault_os_throw_errno(env, errno, "openat", name);
  napi_value result;
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

static napi_value mkdir_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int dirfd, mode;
  char name[NAME_BYTES];
  if (!args(env, info, 3, argv) || !fd_arg(env, argv[0], &dirfd) || !name_arg(env, argv[1], name) ||
      !int_arg(env, argv[2], &mode) || mode < 0 || mode > 07777)
    return svault_os_throw_type(env, "mkdirAt(dirfd, name, mode): a descriptor, one path component, a mode");
  if (mkdirat(dirfd, name, (mode_t)mode) != 0) return svault_os_throw_errno(env, errno, "mkdirat", name);
  return NULL;
}

static napi_value unlink_at(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int dirfd;
  bool is_dir;
  char name[NAME_BYTES];
  if (!args(env, info, 3, argv) || !fd_arg(env, argv[0], &dirfd) || !name_arg(env, argv[1], name) ||
      napi_get_value_bool(env, argv[2], &is_dir) != napi_ok)
    return svault_os_throw_type(env, "unlinkAt(dirfd, name, isDir): a descriptor, one path component, a boolean");
  if (unlinkat(dirfd, name, is_dir ? AT_REMOVEDIR : 0) != 0) return svault_os_throw_errno(env, errno, "unlinkat", name);
  return NULL;
}

static napi_value rename_at(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int from_dir, to_dir;
  char from[NAME_BYTES], to[NAME_BYTES];
  if (!args(env, info, 4, argv) || !fd_arg(env, argv[0], &from_dir) || !name_arg(env, argv[1], from) ||
      !fd_arg(env, argv[2], &to_dir) || !name_arg(env, argv[3], to))
    return svault_os_throw_type(env, "renameAt(fromDirfd, from, toDirfd, to): descriptors and one path component each");
  if (renameat(from_dir, from, to_dir, to) != 0) return svault_os_throw_errno(env, errno, "renameat", from);
  return NULL;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!args(env, info, 1, argv) || !fd_arg(env, argv[0], &fd)) return svault_os_throw_type(env, "closeFd(fd): a descriptor");
  /* Linux releases the descriptor even when close fails (EINTR included): never retry. */
  if (close(fd) != 0 && errno != EINTR) return svault_os_throw_errno(env, errno, "close", "");
  return NULL;
}

/* syncfs on a libuv thread: it waits for the disk, which the event loop must not. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int err;
} syncfs_job;

static void syncfs_execute(napi_env env, void *data) {
  (void)env;
  syncfs_job *job = data;
  job->err = syncfs(job->fd) == 0 ? 0 : errno;
}

static void syncfs_complete(napi_env env, napi_status status, void *data) {
  syncfs_job *job = data;
  napi_value value;
  if (status == napi_ok && job->err == 0) {
    napi_get_undefined(env, &value);
    napi_resolve_deferred(env, job->deferred, value);
  } else {
    value = svault_os_errno_value(env, job->err != 0 ? job->err : ECANCELED, "syncfs", "");
    napi_reject_deferred(env, job->deferred, value);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value syncfs_async(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!args(env, info, 1, argv) || !fd_arg(env, argv[0], &fd)) return svault_os_throw_type(env, "syncfs(fd): a descriptor");
  syncfs_job *job = calloc(1, sizeof *job);
  if (job == NULL) return svault_os_throw_errno(env, ENOMEM, "syncfs", "");
  job->fd = fd;
  napi_value promise, resource_name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "svault.syncfs", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, syncfs_execute, syncfs_complete, job, &job->work) != napi_ok) {
    free(job);
    return NULL;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_delete_async_work(env, job->work);
    free(job);
    return NULL;
  }
  return promise;
}

int svault_register_at(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"openAt", open_at}, {"mkdirAt", mkdir_at}, {"unlinkAt", unlink_at}, {"renameAt", rename_at}, {"syncfs", syncfs_async}, {"closeFd", close_fd},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, functions[i].name, fn) != napi_ok)
      return 0;
  }
  return 1;
}
