//go:build !(386 || amd64 || arm || arm64 || mips || mipsle || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package syscalls

// Arch is empty: the libseccomp secrun's tables were generated from does
// not know this architecture, so no name is known and every profile that
// names a syscall is refused (fail closed) until the table is generated
// with a libseccomp that does.
const Arch = ""

// LibseccompVersion is empty: there is no table for this architecture.
const LibseccompVersion = ""

var table = [0]Syscall{}
