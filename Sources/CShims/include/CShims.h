#ifndef SHARDVAULT_CSHIMS_H
#define SHARDVAULT_CSHIMS_H

/// Hardens the calling process before it handles keys or plaintext: no core dumps
/// (RLIMIT_CORE 0), not dumpable (PR_SET_DUMPABLE 0, which also keeps other processes of
/// the same user from ptrace-attaching), and no new privileges (PR_SET_NO_NEW_PRIVS).
/// Returns 0, or -1 with errno set. prctl is variadic, so Swift cannot call it directly.
int shardvault_harden_process(void);

/// Whether the process is dumpable (1) or not (0), or -1 on error.
int shardvault_is_dumpable(void);

/// fork(2), which Swift does not import. Only for a single-threaded process (the worker's
/// fork server), whose child runs one task and exits with _exit.
int shardvault_fork(void);

/// memfd_create(2) with MFD_CLOEXEC: an anonymous file in memory (the worker's warm-up
/// reads a throwaway shard body from one). Returns a descriptor, or -1 with errno set.
int shardvault_memfd(const char *name);

/// mallopt(3) M_TRIM_THRESHOLD and M_MMAP_THRESHOLD (from <malloc.h>, which Swift does not
/// import): freed blocks below `trim` bytes at the top of a heap are kept, and blocks below
/// `mmap_threshold` bytes come from the heap. Returns 1 when both were set, 0 otherwise.
int shardvault_keep_freed_memory(int trim, int mmap_threshold);

/// Starts `path` with `argv` and `envp` (both NULL-terminated) through posix_spawn(3): its
/// standard input and output are new pipes, its standard error /dev/null, it holds no other
/// descriptor of this process, and its signals are unblocked and at their defaults. The
/// pipes' other ends (close-on-exec) are stored in `to_child` and `from_child`. Returns the
/// child's pid, or -1 with errno set and nothing left open.
int shardvault_spawn(const char *path, char *const argv[], char *const envp[], int *to_child, int *from_child);

#endif
