// svault's FUSE device layer: opens /dev/fuse, mounts it (mount(2) as root, fusermount otherwise), reads
// kernel requests from Node's event loop into buffers JS owns, and writes replies. It knows nothing of the
// FUSE protocol beyond buffer sizes: requests and replies are encoded and decoded in TypeScript
// (fs/kernel/). No libfuse, no threads: the fd is non-blocking and libuv polls it.
//
// Every function checks its arguments and throws a TypeError on misuse; system call failures throw an Error
// whose `code` is the errno name, like Node's own fs errors. All state lives in Reader instances.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

// The kernel refuses a read buffer smaller than this (FUSE_MIN_READ_BUFFER in linux/fuse.h).
#define MIN_READ_BUFFER 8192
// sizeof(struct fuse_out_header): the kernel refuses anything shorter as a reply.
#define OUT_HEADER_SIZE 16
// writev() takes at most this many parts (UIO_MAXIOV); parts beyond a few are a caller's mistake anyway.
#define MAX_REPLY_PARTS 1024
// A generous cap on strings we pass to the kernel (paths, option strings): longer is misuse.
#define MAX_STRING 65536

// ---------------------------------------------------------------------------
// Errors

#define NAPI_CALL(env, call)                                                                              \
  do {                                                                                                    \
    if ((call) != napi_ok) {                                                                              \
      rethrow_napi_failure(env, #call);                                                                   \
      return NULL;                                                                                        \
    }                                                                                                     \
  } while (0)

/** Turns a failed napi_* call into a JS exception unless one is already pending. */
static void rethrow_napi_failure(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "%s failed: %s", what, info && info->error_message ? info->error_message : "N-API error");
  napi_throw_error(env, NULL, msg);
}

static void errno_name(int err, char *out, size_t size) {
  const char *name = strerrorname_np(err); // glibc >= 2.32
  if (name) snprintf(out, size, "%s", name);
  else snprintf(out, size, "E%d", err);
}

/**
 * An Error shaped like Node's fs errors: message "CODE: description, syscall 'path'", and code, errno
 * (negative, as libuv reports it), syscall and path properties. Returns NULL if it could not be built.
 */
static napi_value errno_error(napi_env env, int err, const char *syscall, const char *path) {
  char code[64], msg[PATH_MAX + 256];
  errno_name(err, code, sizeof code);
  if (path) snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, strerror(err), syscall, path);
  else snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(err), syscall);
  napi_value code_v, msg_v, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v) != napi_ok) return NULL;
  if (napi_create_error(env, code_v, msg_v, &error) != napi_ok) return NULL;
  if (napi_create_int32(env, -err, &errno_v) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v) != napi_ok) return NULL;
  napi_set_named_property(env, error, "errno", errno_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  if (path) {
    napi_value path_v;
    if (napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &path_v) == napi_ok) {
      napi_set_named_property(env, error, "path", path_v);
    }
  }
  return error;
}

static void throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  napi_value error = errno_error(env, err, syscall, path);
  if (error) napi_throw(env, error);
  else rethrow_napi_failure(env, syscall);
}

static void throw_type_error(napi_env env, const char *fmt, const char *what) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

// ---------------------------------------------------------------------------
// Argument checks. Each returns false with a TypeError pending.

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *self,
                     const char *fn) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, self, NULL) != napi_ok) {
    rethrow_napi_failure(env, fn);
    return false;
  }
  if (argc < want) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s expects %zu arguments, got %zu", fn, want, argc);
    napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
    return false;
  }
  return true;
}

/** An integer number within [min, max]. */
static bool get_integer(napi_env env, napi_value v, const char *name, int64_t min, int64_t max, int64_t *out) {
  napi_valuetype type;
  double d;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
      d != d || d < (double)min || d > (double)max || d != (double)(int64_t)d) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be an integer from %lld to %lld", name, (long long)min, (long long)max);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool get_fd(napi_env env, napi_value v, int *fd) {
  int64_t n;
  if (!get_integer(env, v, "fd", 0, INT_MAX, &n)) return false;
  *fd = (int)n;
  return true;
}

/** A string without NUL bytes (the kernel would silently cut it there), malloc'ed; free() it. */
static char *get_string(napi_env env, napi_value v, const char *name, bool allow_empty) {
  napi_valuetype type;
  size_t len = 0;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    throw_type_error(env, "%s must be a string", name);
    return NULL;
  }
  if (len > MAX_STRING || (len == 0 && !allow_empty)) {
    throw_type_error(env, "%s must be a non-empty string of at most 65536 bytes", name);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, v, s, len + 1, &copied) != napi_ok || copied != len || strlen(s) != len) {
    free(s);
    throw_type_error(env, "%s must not contain NUL characters", name);
    return NULL;
  }
  return s;
}

/** A Buffer or Uint8Array (any ArrayBufferView); its bytes stay where they are while it is referenced. */
static bool get_bytes(napi_env env, napi_value v, const char *name, void **data, size_t *len) {
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) == napi_ok && is_buffer &&
      napi_get_buffer_info(env, v, data, len) == napi_ok) {
    return true;
  }
  bool is_typed = false;
  napi_typedarray_type ttype;
  size_t elements;
  napi_value ab;
  size_t offset;
  if (napi_is_typedarray(env, v, &is_typed) == napi_ok && is_typed &&
      napi_get_typedarray_info(env, v, &ttype, &elements, data, &ab, &offset) == napi_ok && ttype == napi_uint8_array) {
    *len = elements;
    return true;
  }
  throw_type_error(env, "%s must be a Buffer or Uint8Array", name);
  return false;
}

static bool get_function(napi_env env, napi_value v, const char *name) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_function) {
    throw_type_error(env, "%s must be a function", name);
    return false;
  }
  return true;
}

static bool fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

// ---------------------------------------------------------------------------
// openDevice(): number

static napi_value js_open_device(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    throw_errno(env, errno, "open", "/dev/fuse");
    return NULL;
  }
  napi_value result;
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    rethrow_napi_failure(env, "openDevice");
    return NULL;
  }
  return result;
}

// ---------------------------------------------------------------------------
// mount(fd, mountpoint, fstype, source, flags, data): undefined

static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, NULL, "mount")) return NULL;
  int fd;
  int64_t flags;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  if (!get_integer(env, argv[4], "flags", 0, UINT32_MAX, &flags)) return NULL;
  char *target = get_string(env, argv[1], "mountpoint", false);
  char *fstype = target ? get_string(env, argv[2], "fstype", false) : NULL;
  char *source = fstype ? get_string(env, argv[3], "source", false) : NULL;
  char *data = source ? get_string(env, argv[5], "data", true) : NULL;
  if (data) {
    // The fd is named inside data; a closed one would otherwise surface as a vague EINVAL from the kernel.
    if (!fd_is_open(fd)) throw_errno(env, EBADF, "mount", target);
    else if (mount(source, target, fstype, (unsigned long)flags, data) != 0) throw_errno(env, errno, "mount", target);
  }
  free(target);
  free(fstype);
  free(source);
  free(data);
  return NULL;
}

// ---------------------------------------------------------------------------
// umount(mountpoint, flags): undefined

static napi_value js_umount(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, NULL, "umount")) return NULL;
  int64_t flags;
  if (!get_integer(env, argv[1], "flags", 0, MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW, &flags)) return NULL;
  char *target = get_string(env, argv[0], "mountpoint", false);
  if (!target) return NULL;
  if (umount2(target, (int)flags) != 0) throw_errno(env, errno, "umount2", target);
  free(target);
  return NULL;
}

// ---------------------------------------------------------------------------
// mountWithFusermount(mountpoint, options, fusermountPath): number
//
// The protocol libfuse and go-fuse use to mount without privileges: the setuid fusermount opens /dev/fuse,
// mounts it, and sends the descriptor back over the socket named by _FUSE_COMMFD.

/** environ without any _FUSE_COMMFD, plus ours. Only the array is allocated; free() it. */
static char **spawn_environment(char *commfd_var) {
  size_t n = 0;
  while (environ && environ[n]) n++;
  char **envp = malloc((n + 2) * sizeof *envp);
  if (!envp) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (strncmp(environ[i], "_FUSE_COMMFD=", 13) != 0) envp[k++] = environ[i];
  }
  envp[k++] = commfd_var;
  envp[k] = NULL;
  return envp;
}

/** Receives one descriptor sent with SCM_RIGHTS; -1 if none came (errno set, or 0 for end of stream). */
static int receive_fd(int sock) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) {
    if (n == 0) errno = 0;
    return -1;
  }
  int fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      memcpy(&fd, CMSG_DATA(c), sizeof fd);
    }
  }
  if (fd < 0) errno = 0;
  return fd;
}

/** What fusermount wrote to stderr, read after it exited (so never blocks), trailing newline dropped. */
static void read_child_stderr(int fd, char *out, size_t size) {
  size_t used = 0;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  while (used + 1 < size) {
    ssize_t n = read(fd, out + used, size - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += (size_t)n;
  }
  while (used > 0 && (out[used - 1] == '\n' || out[used - 1] == '\r')) used--;
  out[used] = '\0';
}

static napi_value js_mount_with_fusermount(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, NULL, "mountWithFusermount")) return NULL;
  char *target = get_string(env, argv[0], "mountpoint", false);
  char *options = target ? get_string(env, argv[1], "options", false) : NULL;
  char *program = options ? get_string(env, argv[2], "fusermountPath", false) : NULL;
  napi_value result = NULL;
  if (!program) goto out_strings;

  // Our end stays close-on-exec; the child's end loses it only inside the child (dup2 onto itself below),
  // so no other process this one spawns meanwhile inherits it.
  int sv[2], errpipe[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    throw_errno(env, errno, "socketpair", NULL);
    goto out_strings;
  }
  if (pipe2(errpipe, O_CLOEXEC) != 0) {
    throw_errno(env, errno, "pipe2", NULL);
    close(sv[0]);
    close(sv[1]);
    goto out_strings;
  }
  char commfd_var[32];
  snprintf(commfd_var, sizeof commfd_var, "_FUSE_COMMFD=%d", sv[1]);
  char **envp = spawn_environment(commfd_var);
  char *child_argv[] = {program, "-o", options, "--", target, NULL};

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  // dup2 of an fd onto itself clears its close-on-exec flag in the child (glibc >= 2.29, POSIX 2024).
  posix_spawn_file_actions_adddup2(&actions, sv[1], sv[1]);
  // Its stderr comes to us so that a failure's message is fusermount's own.
  posix_spawn_file_actions_adddup2(&actions, errpipe[1], 2);
  // Node ignores SIGPIPE and may block signals; fusermount should start as from a shell.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int spawn_err = envp ? posix_spawn(&pid, program, &actions, &attr, child_argv, envp) : ENOMEM;
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  free(envp);
  close(sv[1]);
  close(errpipe[1]);
  if (spawn_err != 0) {
    throw_errno(env, spawn_err, "posix_spawn", program);
    close(sv[0]);
    close(errpipe[0]);
    goto out_strings;
  }

  // Blocks the event loop until fusermount has mounted: it does not touch the filesystem, so this is short.
  int fd = receive_fd(sv[0]);
  int recv_err = errno;
  int status = 0;
  pid_t waited;
  do waited = waitpid(pid, &status, 0);
  while (waited < 0 && errno == EINTR);
  char errtext[1024];
  read_child_stderr(errpipe[0], errtext, sizeof errtext);
  close(errpipe[0]);
  close(sv[0]);

  bool exited_ok = waited == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (fd < 0 || !exited_ok) {
    char how[64], msg[1536];
    if (waited != pid) snprintf(how, sizeof how, "could not be waited for");
    else if (WIFEXITED(status)) snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(status));
    else snprintf(how, sizeof how, "ended with wait status %d", status);
    if (fd >= 0) {
      // A descriptor and a failure: the mount may exist, but we cannot trust it; the caller cleans up.
      close(fd);
      snprintf(msg, sizeof msg, "%s %s after sending a descriptor%s%s", program, how, errtext[0] ? ": " : "", errtext);
    } else if (exited_ok) {
      snprintf(msg, sizeof msg, "%s sent no descriptor%s%s%s", program, recv_err ? " (" : "", recv_err ? strerror(recv_err) : "",
               recv_err ? ")" : "");
    } else {
      snprintf(msg, sizeof msg, "%s %s%s%s", program, how, errtext[0] ? ": " : "", errtext);
    }
    napi_throw_error(env, "ERR_FUSERMOUNT", msg);
    goto out_strings;
  }
  // Its warnings would have gone to our stderr had we not captured them.
  if (errtext[0]) {
    size_t len = strlen(errtext);
    errtext[len] = '\n';
    ssize_t ignored = write(2, errtext, len + 1);
    (void)ignored;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    rethrow_napi_failure(env, "mountWithFusermount");
    result = NULL;
  }

out_strings:
  free(target);
  free(options);
  free(program);
  return result;
}

// ---------------------------------------------------------------------------
// writeReply(fd, parts: Buffer[]): number

static napi_value js_write_reply(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, NULL, "writeReply")) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok || count == 0 || count > MAX_REPLY_PARTS) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "parts must be an array of 1 to 1024 Buffers");
    return NULL;
  }
  struct iovec local[16];
  struct iovec *iov = count <= 16 ? local : malloc(count * sizeof *iov);
  if (!iov) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_value result = NULL;
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value part;
    if (napi_get_element(env, argv[1], i, &part) != napi_ok) {
      rethrow_napi_failure(env, "writeReply");
      goto out;
    }
    if (!get_bytes(env, part, "each part", &iov[i].iov_base, &iov[i].iov_len)) goto out;
    total += iov[i].iov_len;
  }
  if (total < OUT_HEADER_SIZE) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "a reply is at least a 16-byte fuse_out_header");
    goto out;
  }
  ssize_t n;
  do n = writev(fd, iov, (int)count);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    // ENOENT: the request is gone (interrupted, or its unique was never issued); nobody waits for a reply.
    if (errno != ENOENT) {
      throw_errno(env, errno, "writev", NULL);
      goto out;
    }
    n = 0;
  }
  if (napi_create_double(env, (double)n, &result) != napi_ok) {
    rethrow_napi_failure(env, "writeReply");
    result = NULL;
  }
out:
  if (iov != local) free(iov);
  return result;
}

// ---------------------------------------------------------------------------
// new Reader(fd, onRequests, onClosed); reader.supply(buffer): boolean; reader.stop(): undefined

typedef struct {
  napi_ref ref; // keeps the Buffer (and so its memory) alive until it is handed back to JS
  uint8_t *data;
  size_t len;
} slot_t;

typedef struct {
  napi_env env;
  napi_ref self; // strong while the reader runs: a reader must not vanish while it may still call back
  napi_ref on_requests, on_closed;
  napi_async_context async;
  uv_poll_t *poll; // allocated apart: uv_close frees it later, maybe after the reader itself
  int fd;
  bool polling, stopped;
  /** How long to watch the device after a batch before sleeping (see spin_until_readable); 0: not at all. */
  long long spin_ns;
  slot_t *slots; // ring of supplied buffers, read into in the order supplied
  size_t head, count, cap;
  slot_t *filled; // the current wake-up's filled buffers (len = bytes read); at most cap of them
} reader_t;

static void free_poll_handle(uv_handle_t *handle) { free(handle); }

/** Stops polling and lets go of every JS value the reader holds. Safe to call twice. */
static void reader_release(reader_t *r) {
  if (r->stopped) return;
  r->stopped = true;
  r->polling = false;
  if (r->poll) {
    uv_poll_stop(r->poll);
    r->poll->data = NULL;
    uv_close((uv_handle_t *)r->poll, free_poll_handle);
    r->poll = NULL;
  }
  for (size_t i = 0; i < r->count; i++) napi_delete_reference(r->env, r->slots[(r->head + i) % r->cap].ref);
  r->count = 0;
  if (r->on_requests) napi_delete_reference(r->env, r->on_requests);
  if (r->on_closed) napi_delete_reference(r->env, r->on_closed);
  r->on_requests = r->on_closed = NULL;
  if (r->async) napi_async_destroy(r->env, r->async);
  r->async = NULL;
  if (r->self) napi_reference_unref(r->env, r->self, NULL);
}

static void reader_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  reader_t *r = data;
  reader_release(r); // only does anything at environment teardown: otherwise stop() already ran
  if (r->self) napi_delete_reference(r->env, r->self);
  free(r->slots);
  free(r->filled);
  free(r);
}

/** Calls fn (this = the reader) the way Node calls back from I/O; a throw becomes an uncaught exception. */
static void call_back(reader_t *r, napi_value self, napi_value fn, size_t argc, napi_value *argv) {
  napi_value ignored;
  napi_status status = napi_make_callback(r->env, r->async, self, fn, argc, argv, &ignored);
  if (status == napi_pending_exception) {
    napi_value exception;
    if (napi_get_and_clear_last_exception(r->env, &exception) == napi_ok) napi_fatal_exception(r->env, exception);
  }
}

/** Refreshes slot->data and len from its Buffer; false if it no longer has room for a request. */
static bool slot_memory(napi_env env, slot_t *slot) {
  napi_value v;
  void *data = NULL;
  size_t len = 0;
  if (napi_get_reference_value(env, slot->ref, &v) != napi_ok || !v) return false;
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) == napi_ok && is_buffer) {
    if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return false;
  } else {
    napi_typedarray_type type;
    napi_value ab;
    size_t offset;
    if (napi_get_typedarray_info(env, v, &type, &len, &data, &ab, &offset) != napi_ok) return false;
  }
  if (!data || len < MIN_READ_BUFFER) return false;
  slot->data = data;
  slot->len = len;
  return true;
}

/** How long a reader watches the device after a batch by default, in ns (SVAULT_FUSE_SPIN_US overrides). */
#define DEFAULT_SPIN_NS 20000LL

/** Reads every queued request and hands them to JS; true when it delivered some and the reader goes on. */
static bool process_ready(uv_poll_t *handle, int status) {
  reader_t *r = handle->data;
  if (!r || r->stopped) return false;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return false;
  int closed_err = 0;
  size_t nfilled = 0;
  // The device polls as EPOLLERR once the connection is gone (unmounted, aborted, or never mounted), and
  // libuv then reports UV_EBADF and stops the handle. read() says what really happened (ENODEV, EPERM, ...)
  // and still hands over any request queued before.
  int poll_err = status < 0 ? -status : 0;
  if (poll_err) r->polling = false;
  if (poll_err && r->count == 0) closed_err = poll_err;
  // Each read() returns exactly one whole request; take as many as are queued and we have buffers for.
  while (!closed_err && r->count > 0) {
    slot_t *slot = &r->slots[r->head];
    // Where the buffer's bytes are now: its ArrayBuffer may have been transferred (detached) since supply().
    if (!slot_memory(env, slot)) {
      napi_delete_reference(env, slot->ref);
      r->head = (r->head + 1) % r->cap;
      r->count--;
      continue;
    }
    ssize_t n = read(r->fd, slot->data, slot->len);
    if (n < 0) {
      if (errno == EINTR || errno == ENOENT) continue; // ENOENT: that request was interrupted; read the next
      if (errno == EAGAIN) {
        if (poll_err) closed_err = poll_err; // libuv will not poll this handle again
        break;
      }
      closed_err = errno; // ENODEV: unmounted; ECONNABORTED: aborted through fusectl
      break;
    }
    if (n == 0) {
      closed_err = ENODEV; // not something /dev/fuse does; treat it as the end rather than spin
      break;
    }
    r->filled[nfilled].ref = slot->ref;
    r->filled[nfilled].data = slot->data;
    r->filled[nfilled].len = (size_t)n;
    nfilled++;
    r->head = (r->head + 1) % r->cap;
    r->count--;
  }
  // Backpressure: with no buffer left, leave the requests in the kernel until supply() brings one.
  if (!closed_err && r->count == 0 && r->polling) {
    uv_poll_stop(handle);
    r->polling = false;
  }
  if (nfilled == 0 && !closed_err) {
    napi_close_handle_scope(env, scope);
    return false;
  }
  // Holding `self` in this scope keeps the reader alive even if the callbacks stop() it.
  napi_value self = NULL, on_requests = NULL, on_closed = NULL;
  napi_get_reference_value(env, r->self, &self);
  napi_get_reference_value(env, r->on_requests, &on_requests);
  napi_get_reference_value(env, r->on_closed, &on_closed);
  if (nfilled > 0) {
    napi_value batch;
    napi_create_array_with_length(env, nfilled, &batch);
    for (size_t i = 0; i < nfilled; i++) {
      napi_value pair, buffer = NULL, length;
      napi_get_reference_value(env, r->filled[i].ref, &buffer);
      napi_delete_reference(env, r->filled[i].ref);
      napi_create_array_with_length(env, 2, &pair);
      napi_create_double(env, (double)r->filled[i].len, &length);
      napi_set_element(env, pair, 0, buffer);
      napi_set_element(env, pair, 1, length);
      napi_set_element(env, batch, (uint32_t)i, pair);
    }
    if (self && on_requests) call_back(r, self, on_requests, 1, &batch);
  }
  // Not after stop(): whoever stopped the reader knows already.
  if (closed_err && !r->stopped) {
    napi_async_context async = r->async;
    r->async = NULL; // destroyed after the last callback, not before
    reader_release(r);
    napi_value reason = NULL;
    size_t argc = 0;
    if (closed_err != ENODEV) {
      char code[64];
      errno_name(closed_err, code, sizeof code);
      if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &reason) == napi_ok) argc = 1;
    }
    if (self && on_closed) {
      napi_value ignored;
      if (napi_make_callback(env, async, self, on_closed, argc, &reason, &ignored) == napi_pending_exception) {
        napi_value exception;
        if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
      }
    }
    napi_async_destroy(env, async);
  }
  napi_close_handle_scope(env, scope);
  return nfilled > 0 && !closed_err && !r->stopped && r->polling;
}

/**
 * After a batch, watch the device for a moment before going back to sleep in the event loop: a client
 * that makes its next request right after our reply (most do) then finds us awake, instead of paying the
 * wake-up of a sleeping thread (on a VM, the idle CPU's halt and the interrupt that ends it). Spins at
 * most spin_ns, checking with a zero-timeout poll; false when nothing came.
 */
/** SVAULT_FUSE_SPIN_US, in microseconds (0 to 1000), else the default. */
static long long spin_ns_setting(void) {
  const char *v = getenv("SVAULT_FUSE_SPIN_US");
  if (!v || !*v) return DEFAULT_SPIN_NS;
  long long us = atoll(v);
  return us < 0 ? 0 : us > 1000 ? 1000000LL : us * 1000LL;
}

static bool spin_until_readable(reader_t *r) {
  if (r->spin_ns <= 0) return false;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  struct pollfd p = { .fd = r->fd, .events = POLLIN };
  for (;;) {
    int n = poll(&p, 1, 0);
    if (n > 0) return (p.revents & POLLIN) != 0;
    if (n < 0 && errno != EINTR) return false;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long elapsed = (long long)(now.tv_sec - start.tv_sec) * 1000000000LL + (now.tv_nsec - start.tv_nsec);
    if (elapsed >= r->spin_ns) return false;
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  if (!process_ready(handle, status)) return;
  reader_t *r = handle->data;
  while (r && !r->stopped && r->count > 0 && spin_until_readable(r)) {
    if (!process_ready(handle, 0)) return;
    r = handle->data;
  }
}

static reader_t *unwrap_reader(napi_env env, napi_value self) {
  reader_t *r = NULL;
  if (napi_unwrap(env, self, (void **)&r) != napi_ok || !r) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a Reader");
    return NULL;
  }
  return r;
}

static napi_value js_reader_new(napi_env env, napi_callback_info info) {
  napi_value target;
  if (napi_get_new_target(env, info, &target) != napi_ok || !target) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "Reader must be called with new");
    return NULL;
  }
  napi_value argv[3], self;
  if (!get_args(env, info, 3, argv, &self, "Reader")) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return NULL;
  if (!get_function(env, argv[1], "onRequests") || !get_function(env, argv[2], "onClosed")) return NULL;
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));

  reader_t *r = calloc(1, sizeof *r);
  uv_poll_t *poll = malloc(sizeof *poll);
  slot_t *slots = malloc(8 * sizeof *slots), *filled = malloc(8 * sizeof *filled);
  if (!r || !poll || !slots || !filled) {
    free(r);
    free(poll);
    free(slots);
    free(filled);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  r->env = env;
  r->spin_ns = spin_ns_setting();
  r->fd = fd;
  r->slots = slots;
  r->filled = filled;
  r->cap = 8;
  int err = uv_poll_init(loop, poll, fd);
  if (err != 0) {
    free(r);
    free(poll);
    free(slots);
    free(filled);
    throw_errno(env, -err, "uv_poll_init", NULL);
    return NULL;
  }
  poll->data = r;
  r->poll = poll;
  napi_value name;
  if (napi_create_reference(env, argv[1], 1, &r->on_requests) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &r->on_closed) != napi_ok ||
      napi_create_string_utf8(env, "svault:FuseDeviceReader", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &r->async) != napi_ok ||
      napi_wrap(env, self, r, reader_finalize, NULL, &r->self) != napi_ok ||
      napi_reference_ref(env, r->self, NULL) != napi_ok) {
    rethrow_napi_failure(env, "Reader");
    if (r->self) return NULL; // wrapped: the finalizer cleans up
    reader_release(r);
    free(r->slots);
    free(r->filled);
    free(r);
    return NULL;
  }
  return self;
}

static bool overlaps(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) { return a < b + blen && b < a + alen; }

static napi_value js_reader_supply(napi_env env, napi_callback_info info) {
  napi_value argv[1], self, result;
  if (!get_args(env, info, 1, argv, &self, "supply")) return NULL;
  reader_t *r = unwrap_reader(env, self);
  if (!r) return NULL;
  void *data;
  size_t len;
  if (!get_bytes(env, argv[0], "buffer", &data, &len)) return NULL;
  if (len < MIN_READ_BUFFER) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "a read buffer must hold at least 8192 bytes (FUSE_MIN_READ_BUFFER)");
    return NULL;
  }
  // Two requests read into the same memory would corrupt each other silently.
  for (size_t i = 0; i < r->count; i++) {
    slot_t *s = &r->slots[(r->head + i) % r->cap];
    if (overlaps(s->data, s->len, data, len)) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "this buffer (or memory it shares) is already supplied");
      return NULL;
    }
  }
  if (r->stopped) {
    NAPI_CALL(env, napi_get_boolean(env, false, &result));
    return result;
  }
  if (r->count == r->cap) {
    size_t cap = r->cap * 2;
    slot_t *slots = malloc(cap * sizeof *slots);
    slot_t *filled = realloc(r->filled, cap * sizeof *filled);
    if (filled) r->filled = filled;
    if (!slots || !filled) {
      free(slots);
      napi_throw_error(env, "ENOMEM", "out of memory");
      return NULL;
    }
    for (size_t i = 0; i < r->count; i++) slots[i] = r->slots[(r->head + i) % r->cap];
    free(r->slots);
    r->slots = slots;
    r->head = 0;
    r->cap = cap;
  }
  slot_t slot = {.data = data, .len = len};
  NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &slot.ref));
  if (!r->polling) {
    int err = uv_poll_start(r->poll, UV_READABLE, on_readable);
    if (err != 0) {
      napi_delete_reference(env, slot.ref);
      throw_errno(env, -err, "uv_poll_start", NULL);
      return NULL;
    }
    r->polling = true;
  }
  r->slots[(r->head + r->count) % r->cap] = slot;
  r->count++;
  NAPI_CALL(env, napi_get_boolean(env, true, &result));
  return result;
}

static napi_value js_reader_stop(napi_env env, napi_callback_info info) {
  napi_value self;
  size_t argc = 0;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, NULL, &self, NULL));
  reader_t *r = unwrap_reader(env, self);
  if (r) reader_release(r);
  return NULL;
}

// ---------------------------------------------------------------------------
// Module

static bool set_number(napi_env env, napi_value obj, const char *name, double value) {
  napi_value v;
  return napi_create_double(env, value, &v) == napi_ok && napi_set_named_property(env, obj, name, v) == napi_ok;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"openDevice", NULL, js_open_device, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"umount", NULL, js_umount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mountWithFusermount", NULL, js_mount_with_fusermount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeReply", NULL, js_write_reply, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns));

  napi_property_descriptor methods[] = {
      {"supply", NULL, js_reader_supply, NULL, NULL, NULL, napi_default_method, NULL},
      {"stop", NULL, js_reader_stop, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value reader_class;
  NAPI_CALL(env, napi_define_class(env, "Reader", NAPI_AUTO_LENGTH, js_reader_new, NULL, 2, methods, &reader_class));
  NAPI_CALL(env, napi_set_named_property(env, exports, "Reader", reader_class));

  const struct {
    const char *name;
    double value;
  } constants[] = {
      {"MS_RDONLY", MS_RDONLY},       {"MS_NOSUID", MS_NOSUID},         {"MS_NODEV", MS_NODEV},
      {"MS_NOEXEC", MS_NOEXEC},       {"MS_SYNCHRONOUS", MS_SYNCHRONOUS}, {"MS_DIRSYNC", MS_DIRSYNC},
      {"MS_NOATIME", MS_NOATIME},     {"MS_NODIRATIME", MS_NODIRATIME}, {"MS_RELATIME", MS_RELATIME},
      {"MS_STRICTATIME", MS_STRICTATIME}, {"MS_LAZYTIME", MS_LAZYTIME},
      {"MNT_FORCE", MNT_FORCE},       {"MNT_DETACH", MNT_DETACH},       {"MNT_EXPIRE", MNT_EXPIRE},
      {"UMOUNT_NOFOLLOW", UMOUNT_NOFOLLOW},
      {"MIN_READ_BUFFER", MIN_READ_BUFFER},
  };
  napi_value consts;
  NAPI_CALL(env, napi_create_object(env, &consts));
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
    if (!set_number(env, consts, constants[i].name, constants[i].value)) {
      rethrow_napi_failure(env, "constants");
      return NULL;
    }
  }
  NAPI_CALL(env, napi_object_freeze(env, consts));
  NAPI_CALL(env, napi_set_named_property(env, exports, "constants", consts));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
