#ifndef SG_DAEMON_CRASH_H
#define SG_DAEMON_CRASH_H
/*
 * crash.h: what shieldd does on a fault it cannot recover from. The model's weights (and the
 * pack cache) are mmapped read-only; a file replaced by rename is harmless (the mapping keeps
 * the old inode), but one truncated or rewritten in place turns the next read of a lost page
 * into SIGBUS. The handler writes one line saying so (with the address, and the journal's
 * critical priority when stderr is the journal), then dies of the signal (a core dump, and
 * systemd's Restart=on-failure starts a fresh daemon on the new file). Other faults are left
 * to their default action (and to the sanitizers' handlers in those builds).
 */

/* Install the SIGBUS handler; `journal`: prefix the line with <2> for journald. */
void crash_install(int journal);

#endif /* SG_DAEMON_CRASH_H */
