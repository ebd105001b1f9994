// The ways svault can serve a mount to the kernel (svault mount --binding): fuse-native, libfuse 2's
// path-based API in its own threads; devfuse, svault's own transport (fs/kernel/), the FUSE protocol
// spoken on /dev/fuse from the event loop.

export type BindingName = 'fuse-native' | 'devfuse';
export const BINDINGS: readonly BindingName[] = ['fuse-native', 'devfuse'];
export const DEFAULT_BINDING: BindingName = 'devfuse';
