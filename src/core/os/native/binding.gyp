# svault's OS addon: the system calls Node does not offer. at.c opens, creates, renames and removes one
# name relative to a directory descriptor without following links (the store's files, issue 22 finding 2),
# and runs syncfs(2) on a libuv thread; harden.c makes the process non-dumpable (finding 9).
# Built by scripts/build-os.mjs at install.
{
  "targets": [
    {
      "target_name": "svault_os",
      "sources": ["at.c", "harden.c", "addon.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["_GNU_SOURCE"]
    }
  ]
}
