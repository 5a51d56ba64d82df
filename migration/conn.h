/*
 * A migration connection: one small transport interface with two
 * implementations, plain TCP (conn.c) and TLS 1.3 over it (tls.c), so
 * that the protocol lines, the stream writer and the stream reader do
 * not care which one they talk through.
 *
 * Writes are buffered (the stream writes a 16-byte record header, then
 * the body: unbuffered, each would be a TCP segment, or a TLS record);
 * a read, a wait for the peer and mig_conn_flush() send what is
 * buffered.  The socket's timeouts (mig_set_timeouts()) bound every
 * read and write of both transports: a stalled peer fails them.
 * shutdown() of fd from another thread (cancel) fails them at once.
 */
#ifndef MIGRATION_CONN_H
#define MIGRATION_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MIG_CONN_WBUF	(64u << 10)

struct mig_conn;

struct mig_conn_ops {
	const char *name;		/* "TCP", "TLS" */
	/* Like send(2)/recv(2): bytes moved, or -1 with c->err set. */
	ssize_t (*send)(struct mig_conn *c, const void *buf, size_t len);
	ssize_t (*recv)(struct mig_conn *c, void *buf, size_t len);
	/* Bytes the transport holds already decoded (no poll needed). */
	bool (*pending)(struct mig_conn *c);
	/* Release the transport (not the socket). */
	void (*release)(struct mig_conn *c);
};

struct mig_conn {
	int fd;
	const struct mig_conn_ops *ops;
	void *tls;			/* gnutls_session_t */
	char err[256];			/* why the last operation failed */
	size_t wlen;
	unsigned char *wbuf;		/* MIG_CONN_WBUF bytes */
};

/* conn.c */
/*
 * Plain TCP over fd.  Here and in mig_tls_*(), the connection owns fd
 * once set up; on failure (c->err says why) fd stays the caller's.
 */
int mig_conn_plain(struct mig_conn *c, int fd);
int mig_conn_write(struct mig_conn *c, const void *buf, size_t len);
int mig_conn_flush(struct mig_conn *c);
/* Exactly len bytes: 0, or -1 on EOF or error (c->err says which). */
int mig_conn_read(struct mig_conn *c, void *buf, size_t len);
/* Readable within ms milliseconds (after a flush)?  1 yes, 0 no. */
int mig_conn_wait(struct mig_conn *c, int ms);
/* Release the transport and close the socket. */
void mig_conn_close(struct mig_conn *c);
/* The stream writer's sink and the stream reader's source. */
int mig_conn_sink(void *opaque, const void *buf, size_t len);
int mig_conn_source(void *opaque, void *buf, size_t len);
/* For the transports: allocate the write buffer, set c->fd and ops. */
int mig_conn_init(struct mig_conn *c, int fd,
		  const struct mig_conn_ops *ops);

/* tls.c: the credentials of a QEMU tls-creds-x509 style directory. */
int mig_tls_load(const char *dir, bool server);
bool mig_tls_loaded(void);
const char *mig_tls_dir(void);
/*
 * The TLS 1.3 handshake over fd, verifying the peer's chain against
 * ca-cert.pem (and, as the client, the server's certificate against
 * host).
 */
int mig_tls_client(struct mig_conn *c, int fd, const char *host);
int mig_tls_server(struct mig_conn *c, int fd);
/* "<suite>, certificate '<the peer certificate's subject>'". */
void mig_tls_peer(struct mig_conn *c, char *buf, size_t len);

#endif
