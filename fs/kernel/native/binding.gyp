# svault's FUSE device addon (fuse_dev.c): /dev/fuse opened, mounted and read from Node's event loop, in
# N-API and plain Linux system calls; no libfuse. Built by scripts/build-fuse-dev.mjs at install.
{
  "targets": [
    {
      "target_name": "svault_fuse_dev",
      "sources": ["fuse_dev.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
