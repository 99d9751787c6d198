/* process.h - finding and ending the QEMU processes qvm started.
 *
 * A pid alone is not trusted (pids are reused): a process is ours only if
 * its command line carries the -pidfile path qvm gave it. */
#ifndef QVM_CORE_PROCESS_H
#define QVM_CORE_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

/* The pid of the live QEMU started with -pidfile PID_FILE, or 0. Reads the
 * pid file first, then scans /proc (covers a QEMU that has not written its
 * pid file yet). */
pid_t qvm_qemu_pid(const char *pid_file);

/* SIGKILLs PID and waits up to TIMEOUT_MS for it to disappear. */
bool qvm_process_kill_wait(pid_t pid, int timeout_ms);

/* Waits up to TIMEOUT_MS for PID to exit (it is not our child). */
bool qvm_process_wait_gone(pid_t pid, int timeout_ms);

/* Seconds since PID started, or -1. */
long qvm_process_uptime(pid_t pid);

/* True if PID exists and is not a zombie (a killed QEMU whose parent does
 * not reap it is dead for us). */
bool qvm_process_alive(pid_t pid);

/* PID's command line with spaces between arguments, cut to MAX bytes, or
 * NULL if it is gone. Caller frees. */
char *qvm_process_cmdline(pid_t pid, size_t max);

/* The pid holding a flock on the file at PATH (from /proc/locks), or 0
 * when it cannot be told. */
pid_t qvm_flock_holder(const char *path);

#endif
