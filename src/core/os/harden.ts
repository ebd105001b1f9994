// Issue 22, finding 9: a process that will hold a vault's keys makes itself non-dumpable. No core file
// is written when it crashes (RLIMIT_CORE 0), and other processes of the same user can neither ptrace it
// nor read its memory or environment through /proc (PR_SET_DUMPABLE 0). root still can: nothing in a
// process protects it from root.

import { nativeOs } from './native-os.js';

export function makeProcessUndumpable(): void {
  if (process.platform !== 'linux') return;
  nativeOs().makeUndumpable();
}
