# svault's crypto addon: AES-256-GCM (aead.c), HMAC-SHA256 and HKDF-SHA256 (mac.c) into caller-owned
# buffers, with shared argument checks (napi-util.c). Built by scripts/build-aead.mjs at install.
# No OpenSSL is linked here: the addon uses the OpenSSL that Node itself is built with and exports,
# the same code that node:crypto runs, through the headers that ship with Node.
{
  "targets": [
    {
      "target_name": "svault_aead",
      "sources": ["aead.c", "mac.c", "napi-util.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
