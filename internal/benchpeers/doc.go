// Package benchpeers holds the programs `secrunctl bench` measures secrun's
// own process against, built from source in the same run:
//
//   - naive: the least a Go runtime wrapper does on create (read
//     config.json, decode it as runtime-spec, set no_new_privs, write it
//     back, execve the delegate);
//   - goexec: a static Go binary that only execs the delegate, the floor
//     of any Go wrapper;
//   - goexit: a static Go binary that only exits, the floor of any Go
//     process.
//
// They are benchmark fixtures, never installed.
package benchpeers
