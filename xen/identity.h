/*
 * The daemon's identity for its supervisor: the pid file and systemd's
 * notification socket.  A live update moves the daemon to a new process
 * (docs/live-update.md, "One daemon, a new pid"); both follow it.
 */
#ifndef XEN_IDENTITY_H
#define XEN_IDENTITY_H

/* DIR/xen.pid holds our pid, replaced atomically (rename): 0 or -1. */
int pid_file_write(const char *dir);
/*
 * A state line to $NOTIFY_SOCKET ("READY=1", "MAINPID=123"), as
 * sd_notify(3) sends it; nothing without the variable.  0 or -1.
 */
int supervisor_notify(const char *msg);

#endif
