#define _GNU_SOURCE
#include "CShims.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

int shardvault_harden_process(void) {
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return 0;
}

int shardvault_is_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
}

int shardvault_fork(void) {
    return (int)fork();
}

int shardvault_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC);
}

int shardvault_keep_freed_memory(int trim, int mmap_threshold) {
    return mallopt(M_TRIM_THRESHOLD, trim) == 1 && mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1;
}

int shardvault_spawn(const char *path, char *const argv[], char *const envp[], int *to_child, int *from_child) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) return -1;
    if (pipe2(out, O_CLOEXEC) != 0) {
        int saved = errno;
        close(in[0]);
        close(in[1]);
        errno = saved;
        return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    pid_t pid = -1;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc == 0) {
        rc = posix_spawnattr_init(&attributes);
        if (rc == 0) {
            // dup2 leaves the copies without close-on-exec; everything else above 2 is closed.
            rc = posix_spawn_file_actions_adddup2(&actions, in[0], 0);
            if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, out[1], 1);
            if (rc == 0) rc = posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
            if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
            if (rc == 0) rc = posix_spawnattr_setsigmask(&attributes, &none);
            if (rc == 0) rc = posix_spawnattr_setsigdefault(&attributes, &all);
            if (rc == 0) rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
            if (rc == 0) rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp);
            posix_spawnattr_destroy(&attributes);
        }
        posix_spawn_file_actions_destroy(&actions);
    }
    close(in[0]);
    close(out[1]);
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        errno = rc;
        return -1;
    }
    *to_child = in[1];
    *from_child = out[0];
    return (int)pid;
}
