# svault's AES-256-GCM into caller-owned buffers (aead.c). Built by scripts/build-aead.mjs at install.
# No OpenSSL is linked here: the addon uses the OpenSSL that Node itself is built with and exports,
# the same code that node:crypto runs, through the headers that ship with Node.
{
  "targets": [
    {
      "target_name": "svault_aead",
      "sources": ["aead.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
