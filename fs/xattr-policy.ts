// Which extended attributes svault stores, for both FUSE transports: user.* and trusted.* like any
// filesystem; file capabilities, POSIX ACLs and security labels are refused.

import { FsError } from '../src/core/errors.js';

/** The attribute the kernel asks for before writes (to clear it); svault never stores it. */
export const FILE_CAPS = 'security.capability';

/**
 * POSIX ACLs and security labels (SELinux, IMA, ...) are refused with ENOTSUP rather than stored as
 * plain attributes: the kernel would not enforce an ACL stored that way, so setfacl "succeeding" would
 * mislead. ENOTSUP also tells ls -l, cp -a and tar that this filesystem has neither, and they stop
 * asking for every file (each question is a FUSE round trip).
 */
export function refuseUnsupportedXattr(name: string): void {
  if (name === FILE_CAPS) throw new FsError('ENOTSUP', 'file capabilities are not supported');
  if (name.startsWith('system.posix_acl_') || name.startsWith('security.')) throw new FsError('ENOTSUP', `${name}: not supported by svault`);
}
